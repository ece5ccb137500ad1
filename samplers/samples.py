"""The :class:`Samples` container: named draws ``(chain, draw, *shape)``, sample stats and attrs.

Every sampler driver in probforge returns one ``Samples``. Draws and stats stay torch tensors on the
device they were made on; :meth:`Samples.to_arviz` converts to an ``arviz.InferenceData`` (ArviZ is
imported there and only there).

Sample stats use probforge's names inside the container and ArviZ's standard names in
``InferenceData`` (see :data:`ARVIZ_STAT_NAMES`): ``log_density -> lp``,
``accept_prob -> acceptance_rate``, ``is_divergent -> diverging``, ...

Examples
--------
>>> import torch
>>> from samplers.samples import Samples
>>> s = Samples({"mu": torch.zeros(4, 10), "theta": torch.zeros(4, 10, 3)},
...             {"accept_prob": torch.ones(4, 10)}, {"sampler": "demo"})
>>> s.num_chains, s.num_draws, tuple(s["theta"].shape)
(4, 10, (4, 10, 3))
>>> tuple(s[:2, 5:]["theta"].shape)
(2, 5, 3)
>>> idata = s.to_arviz()
>>> sorted(idata.posterior.data_vars), list(idata.sample_stats.data_vars)
(['mu', 'theta'], ['acceptance_rate'])
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from probforge.errors import (
    DeviceMismatchError,
    ShapeError,
    UnknownVariableError,
    ValidationError,
)
from probforge.validate import check_choice, check_finite, check_names

__all__ = ["ARVIZ_STAT_NAMES", "Samples", "concat", "import_arviz"]

#: probforge sample-stat name -> ArviZ's standard ``sample_stats`` name. Names not listed here
#: are exported unchanged.
ARVIZ_STAT_NAMES: dict[str, str] = {
    "log_density": "lp",
    "accept_prob": "acceptance_rate",
    "is_divergent": "diverging",
    "num_steps": "n_steps",
    "num_integration_steps": "n_steps",
    "step_size": "step_size",
    "tree_depth": "tree_depth",
    "energy": "energy",
}


def import_arviz() -> Any:
    """Import ArviZ quietly (its 0.x releases announce a refactor with a FutureWarning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


Index = int | slice | Sequence[int] | Tensor


@dataclass(frozen=True)
class Samples:
    """Named MCMC (or i.i.d.) draws with per-draw statistics.

    Parameters
    ----------
    draws : dict str -> Tensor of shape (chain, draw, *shape)
        One entry per variable, all with the same leading (chain, draw) dimensions.
    stats : dict str -> Tensor of shape (chain, draw, ...)
        Per-draw statistics: ``log_density``, ``accept_prob``, ``is_accepted``,
        ``is_divergent``, ...
    attrs : dict
        Metadata: ``sampler``, ``seed``, ``device``, ``dtype``, versions, ``warnings``, ...

    Notes
    -----
    ``samples["name"]`` returns a variable's tensor; ``samples[chains]`` or
    ``samples[chains, draws]`` (ints, slices, index lists or tensors) returns a new ``Samples``
    restricted to those chains / draws.

    Checked on construction: names are strings; every entry is a tensor with the same leading
    (chain, draw) sizes, at least one chain and one draw; floating draws are finite (NaN / inf
    raise :class:`~probforge.errors.NonFiniteError`). Stats are the kernel's own (a Gibbs run
    without a log-density has no ``log_density`` stat).
    """

    draws: dict[str, Tensor]
    stats: dict[str, Tensor] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, table in (("draws", self.draws), ("stats", self.stats), ("attrs", self.attrs)):
            if not isinstance(table, dict):
                raise ValidationError(f"Samples {kind}", "must be a dict",
                                      found=type(table).__name__)
        if not self.draws:
            raise ValidationError("Samples", "needs at least one variable in draws",
                                  fix="pass draws={'x': tensor of shape (chain, draw, ...)}")
        lead: tuple[int, ...] | None = None
        for kind, table in (("draws", self.draws), ("stats", self.stats)):
            for name, t in table.items():
                if not isinstance(name, str):
                    raise ValidationError(f"Samples.{kind}", "names must be strings",
                                          found=repr(name))
                if not isinstance(t, Tensor) or t.dim() < 2:
                    raise ShapeError(
                        f"Samples.{kind}[{name!r}]",
                        "must be a tensor with leading (chain, draw) dimensions",
                        found=tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__,
                        fix="reshape it to (chain, draw, *shape)",
                    )
                if lead is None:
                    lead = tuple(t.shape[:2])
                elif tuple(t.shape[:2]) != lead:
                    raise ShapeError(
                        f"Samples.{kind}[{name!r}]",
                        f"has (chain, draw) = {tuple(t.shape[:2])} but other entries have {lead}",
                        fix="give every variable and stat the same chains and draws",
                    )
        assert lead is not None
        if lead[0] == 0 or lead[1] == 0:
            raise ShapeError("Samples", "needs at least one chain and one draw",
                             found=f"(chain, draw) = {lead}",
                             fix="select a non-empty range of chains and draws")
        for name, t in self.draws.items():
            if t.is_floating_point() or t.is_complex():
                check_finite(t.detach(), f"Samples.draws[{name!r}]",
                             fix="drop the failed draws or find why the sampler produced them")

    # sizes --------------------------------------------------------------------------------
    @property
    def num_chains(self) -> int:
        """Number of chains."""
        return int(next(iter(self.draws.values())).shape[0])

    @property
    def num_draws(self) -> int:
        """Number of kept draws per chain."""
        return int(next(iter(self.draws.values())).shape[1])

    @property
    def names(self) -> list[str]:
        """Variable names, in insertion order."""
        return list(self.draws)

    @property
    def device(self) -> torch.device:
        """Device of the draws."""
        return next(iter(self.draws.values())).device

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {tuple(v.shape[2:])}" for k, v in self.draws.items())
        name = self.attrs.get("sampler", "?")
        return (f"Samples(sampler={name!r}, chains={self.num_chains}, draws={self.num_draws}, "
                f"{{{shapes}}})")

    # selection ----------------------------------------------------------------------------
    def __getitem__(self, key: str | Index | tuple[Index, Index]) -> Any:
        if isinstance(key, str):
            if key in self.draws:
                return self.draws[key]
            raise UnknownVariableError(f"Samples({self.attrs.get('sampler', '?')!r})",
                                       f"has no variable {key!r}",
                                       fix=f"use one of {list(self.draws)}")
        if isinstance(key, tuple) and len(key) != 2:
            raise ValidationError("Samples index", "must be chains or (chains, draws)",
                                  found=repr(key)[:60])
        chains, draws = key if isinstance(key, tuple) else (key, slice(None))
        chains = _check_index("chains", chains, self.num_chains)
        draws = _check_index("draws", draws, self.num_draws)

        def sel(t: Tensor) -> Tensor:
            c = (torch.as_tensor(chains, dtype=torch.long, device=t.device)
                 if isinstance(chains, list) else chains)
            d = (torch.as_tensor(draws, dtype=torch.long, device=t.device)
                 if isinstance(draws, list) else draws)
            return t[c][:, d]

        return Samples({k: sel(v) for k, v in self.draws.items()},
                       {k: sel(v) for k, v in self.stats.items()}, dict(self.attrs))

    def to(self, *args: Any, **kwargs: Any) -> Samples:
        """A copy with every tensor moved / cast like :meth:`torch.Tensor.to`.

        Raises
        ------
        ValidationError
            For arguments ``Tensor.to`` refuses (an unknown or unavailable device, ...).
        """
        try:
            for v in (*self.draws.values(), *self.stats.values()):
                v[:0].to(*args, **kwargs)  # an empty slice: checks the arguments cheaply
        except (RuntimeError, TypeError, ValueError) as err:
            raise ValidationError("Samples.to", "arguments not accepted by Tensor.to",
                                  found=f"{args} {kwargs}: {str(err).splitlines()[0]}",
                                  fix="pass a device ('cpu', 'cuda') and / or a dtype") from err
        return Samples({k: v.to(*args, **kwargs) for k, v in self.draws.items()},
                       {k: v.to(*args, **kwargs) for k, v in self.stats.items()},
                       dict(self.attrs))

    def concat(self, *others: Samples, dim: str = "chain") -> Samples:
        """This and ``others`` joined along chains or draws (see :func:`concat`)."""
        return concat([self, *others], dim=dim)

    def flatten(self, name: str) -> Tensor:
        """Draws of ``name`` with chains and draws merged: shape (chain * draw, *shape)."""
        if not isinstance(name, str):
            raise ValidationError("Samples.flatten name", "must be a variable name (str)",
                                  found=repr(name)[:60])
        t: Tensor = self[name]
        return t.reshape((-1, *t.shape[2:]))

    # export -------------------------------------------------------------------------------
    def to_arviz(
        self,
        dims: Mapping[str, Sequence[str]] | None = None,
        coords: Mapping[str, Sequence[Any]] | None = None,
    ) -> Any:
        """Convert to ``arviz.InferenceData``.

        Parameters
        ----------
        dims : mapping str -> list of str, optional
            Names of each variable's event dimensions (ArviZ's ``dims``); default
            ``<name>_dim_0``, ...
        coords : mapping str -> sequence, optional
            Coordinates for those dimensions.

        Returns
        -------
        arviz.InferenceData
            ``posterior`` (chain, draw, *shape) per variable, ``sample_stats`` under ArviZ's
            names (:data:`ARVIZ_STAT_NAMES`); the attrs (seed, device, dtype, sampler,
            probforge / torch / arviz versions, warnings, ...) are set on the InferenceData and
            on both groups.
        """
        dims, coords = self._check_dims(dims, coords)
        az = import_arviz()
        posterior = {k: v.detach().cpu().numpy() for k, v in self.draws.items()}
        stats: dict[str, Any] = {}
        for k, v in self.stats.items():
            stats[ARVIZ_STAT_NAMES.get(k, k)] = v.detach().cpu().numpy()
        attrs = _netcdf_attrs({**self.attrs, "arviz_version": az.__version__})
        with warnings.catch_warnings():
            # our arrays are (chain, draw, ...) by construction; ArviZ's shape guess is moot
            warnings.filterwarnings("ignore", message="More chains", category=UserWarning)
            idata = az.from_dict(
                posterior=posterior,
                sample_stats=stats or None,
                dims=dict(dims) if dims else None,
                coords=dict(coords) if coords else None,
                attrs=attrs,
            )
        for group in ("posterior", "sample_stats"):
            if hasattr(idata, group):
                getattr(idata, group).attrs.update(attrs)
        return idata

    def _check_dims(
        self, dims: Any, coords: Any
    ) -> tuple[dict[str, list[str]] | None, dict[str, list[Any]] | None]:
        """Check ``to_arviz``'s ``dims`` (known variables, one name per event dimension) and
        ``coords`` (one value per position of a named dimension)."""
        if dims is None:
            out_dims = None
        else:
            if not isinstance(dims, Mapping):
                raise ValidationError("to_arviz dims", "must map variable names to dim names",
                                      found=type(dims).__name__)
            out_dims = {}
            for k, names in dims.items():
                if k not in self.draws:
                    raise UnknownVariableError("to_arviz dims", f"has no variable {k!r}",
                                               fix=f"use some of {list(self.draws)}")
                lst = check_names(names, f"to_arviz dims[{k!r}]")
                event = self.draws[k].shape[2:]
                if len(lst) != len(event):
                    raise ShapeError(f"to_arviz dims[{k!r}]",
                                     f"needs one name per event dimension of {tuple(event)}",
                                     found=lst)
                out_dims[k] = lst
        if coords is None:
            return out_dims, None
        if not isinstance(coords, Mapping):
            raise ValidationError("to_arviz coords", "must map dim names to coordinate values",
                                  found=type(coords).__name__)
        sizes: dict[str, int] = {}
        for k, names in (out_dims or {}).items():
            for name, size in zip(names, self.draws[k].shape[2:], strict=True):
                sizes[name] = int(size)
        out_coords: dict[str, list[Any]] = {}
        for name, values in coords.items():
            if isinstance(values, str) or not isinstance(values, Sequence | Tensor):
                raise ValidationError(f"to_arviz coords[{name!r}]", "must be a sequence",
                                      found=type(values).__name__)
            vals = list(values)
            if name in sizes and len(vals) != sizes[name]:
                raise ShapeError(f"to_arviz coords[{name!r}]",
                                 f"needs {sizes[name]} value(s), one per position of the dim",
                                 found=len(vals))
            out_coords[name] = vals
        return out_dims, out_coords

    def summary(self, **kwargs: Any) -> Any:
        """``arviz.summary`` of the posterior (a pandas DataFrame); kwargs go to ArviZ."""
        az = import_arviz()
        return az.summary(self.to_arviz(), **kwargs)


def _netcdf_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attrs NetCDF can store: str, int, float, bool (as int), lists of str joined; private
    (``_``-prefixed) and other values are left out."""
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        if v is None or k.startswith("_"):
            continue
        if isinstance(v, bool):
            out[k] = int(v)
        elif isinstance(v, str):
            out[k] = str(v)  # plain str: a str subclass (torch's TorchVersion) breaks h5netcdf
        elif isinstance(v, int | float):
            out[k] = v
        elif isinstance(v, Tensor) and v.numel() == 1:
            out[k] = v.item()
        elif isinstance(v, list | tuple) and all(isinstance(x, str) for x in v):
            out[k] = "\n".join(v)
        elif isinstance(v, list | tuple) and all(
                isinstance(x, int | float) and not isinstance(x, bool) for x in v):
            out[k] = list(v)
    return out


def _check_index(what: str, idx: Any, size: int) -> Any:
    """A chain / draw selector: an int, a slice, a list of ints or an integer / bool tensor,
    within range (bools and floats refused)."""
    subject = f"Samples index ({what})"
    if isinstance(idx, slice):
        for part in (idx.start, idx.stop, idx.step):
            if part is not None and (isinstance(part, bool)
                                     or not isinstance(part, numbers.Integral)):
                raise ValidationError(subject, "slice bounds must be ints", found=repr(idx))
        if idx.step is not None and idx.step <= 0:
            raise ValidationError(subject, "slices must have a positive step (torch cannot "
                                  "index backwards)", found=repr(idx),
                                  fix="select with a list of indices, e.g. list(range(n))[::-1]")
        return idx
    if isinstance(idx, Tensor):
        if idx.is_floating_point() or idx.is_complex() or idx.dim() > 1:
            raise ValidationError(subject, "must be an integer or bool tensor of one dimension",
                                  found=(idx.dtype, tuple(idx.shape)))
        if idx.dtype == torch.bool:
            if idx.shape != (size,):
                raise ShapeError(subject, f"a mask must have shape ({size},)",
                                 found=tuple(idx.shape))
            return idx
        values = idx.reshape(-1).tolist()
    elif isinstance(idx, numbers.Integral) and not isinstance(idx, bool):
        idx = int(idx)
        values = [idx]
    elif isinstance(idx, Sequence) and not isinstance(idx, str) and all(
            isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in idx):
        idx = [int(i) for i in idx]
        values = idx
    else:
        raise ValidationError(subject, "must be an int, a slice, a list of ints or a tensor",
                              found=repr(idx)[:60])
    bad = [i for i in values if not -size <= i < size]
    if bad:
        raise ShapeError(subject, f"out of range for {size} {what}", found=bad[:5])
    return [idx] if isinstance(idx, int) else (list(idx) if isinstance(idx, Sequence) else idx)


def concat(samples: Sequence[Samples], dim: str = "chain") -> Samples:
    """Join ``Samples`` along chains (``dim="chain"``) or draws (``dim="draw"``).

    Attrs come from the first element; ``num_chains`` is updated when joining chains.

    Examples
    --------
    >>> import torch
    >>> a = Samples({"x": torch.zeros(2, 5)})
    >>> concat([a, a]).num_chains, concat([a, a], dim="draw").num_draws
    (4, 10)
    """
    if isinstance(samples, Samples) or not isinstance(samples, Sequence):
        raise ValidationError("concat", "takes a list of Samples",
                              found=type(samples).__name__, fix="pass [a, b, ...]")
    if not samples:
        raise ValidationError("concat", "needs at least one Samples")
    for i, s in enumerate(samples):
        if not isinstance(s, Samples):
            raise ValidationError(f"concat: item {i}", "must be a Samples",
                                  found=type(s).__name__)
    check_choice(dim, "concat dim", ("chain", "draw"))
    axis = 0 if dim == "chain" else 1
    first = samples[0]
    for i, s in enumerate(samples[1:], 1):
        if set(s.draws) != set(first.draws) or set(s.stats) != set(first.stats):
            raise ShapeError(f"concat: Samples {i}",
                             "has other variables or stats than Samples 0",
                             found=f"{sorted(s.draws)} / {sorted(s.stats)}",
                             fix="join runs of the same model and sampler")
        other = "draws" if dim == "chain" else "chains"
        keep = 1 if dim == "chain" else 0
        for kind, table, ref in (("draws", s.draws, first.draws), ("stats", s.stats, first.stats)):
            for k, t in table.items():
                r = ref[k]
                if t.shape[keep] != r.shape[keep] or t.shape[2:] != r.shape[2:]:
                    raise ShapeError(f"concat: Samples {i} {kind}[{k!r}]",
                                     f"joining along {dim}s needs the same {other} and event "
                                     "shape as Samples 0",
                                     found=(tuple(t.shape), tuple(r.shape)))
                if t.device != r.device:
                    raise DeviceMismatchError(f"concat: Samples {i} {kind}[{k!r}]",
                                              "must be on the device of Samples 0",
                                              found=(t.device, r.device),
                                              fix="move them with Samples.to(device)")
    draws = {k: torch.cat([s.draws[k] for s in samples], axis) for k in first.draws}
    stats = {k: torch.cat([s.stats[k] for s in samples], axis) for k in first.stats}
    attrs = dict(first.attrs)
    out = Samples(draws, stats, attrs)
    if "num_chains" in attrs:
        attrs["num_chains"] = out.num_chains
    if "num_draws" in attrs:
        attrs["num_draws"] = out.num_draws
    return out
