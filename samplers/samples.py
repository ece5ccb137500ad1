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

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from probforge.errors import ShapeError, UnknownVariableError, ValidationError

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
    """

    draws: dict[str, Tensor]
    stats: dict[str, Tensor] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.draws:
            raise ValidationError("Samples", "needs at least one variable in draws",
                                  fix="pass draws={'x': tensor of shape (chain, draw, ...)}")
        lead: tuple[int, ...] | None = None
        for kind, table in (("draws", self.draws), ("stats", self.stats)):
            for name, t in table.items():
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
        chains, draws = key if isinstance(key, tuple) else (key, slice(None))
        if isinstance(chains, int):
            chains = [chains]
        if isinstance(draws, int):
            draws = [draws]

        def sel(t: Tensor) -> Tensor:
            c = torch.as_tensor(chains, device=t.device) if isinstance(chains, list) else chains
            d = torch.as_tensor(draws, device=t.device) if isinstance(draws, list) else draws
            return t[c][:, d]

        return Samples({k: sel(v) for k, v in self.draws.items()},
                       {k: sel(v) for k, v in self.stats.items()}, dict(self.attrs))

    def to(self, *args: Any, **kwargs: Any) -> Samples:
        """A copy with every tensor moved / cast like :meth:`torch.Tensor.to`."""
        return Samples({k: v.to(*args, **kwargs) for k, v in self.draws.items()},
                       {k: v.to(*args, **kwargs) for k, v in self.stats.items()},
                       dict(self.attrs))

    def concat(self, *others: Samples, dim: str = "chain") -> Samples:
        """This and ``others`` joined along chains or draws (see :func:`concat`)."""
        return concat([self, *others], dim=dim)

    def flatten(self, name: str) -> Tensor:
        """Draws of ``name`` with chains and draws merged: shape (chain * draw, *shape)."""
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
    if not samples:
        raise ValidationError("concat", "needs at least one Samples")
    if dim not in ("chain", "draw"):
        raise ValidationError("concat", "dim must be 'chain' or 'draw'", found=repr(dim))
    axis = 0 if dim == "chain" else 1
    first = samples[0]
    for i, s in enumerate(samples[1:], 1):
        if set(s.draws) != set(first.draws) or set(s.stats) != set(first.stats):
            raise ShapeError(f"concat: Samples {i}",
                             "has other variables or stats than Samples 0",
                             found=f"{sorted(s.draws)} / {sorted(s.stats)}",
                             fix="join runs of the same model and sampler")
    draws = {k: torch.cat([s.draws[k] for s in samples], axis) for k in first.draws}
    stats = {k: torch.cat([s.stats[k] for s in samples], axis) for k in first.stats}
    attrs = dict(first.attrs)
    out = Samples(draws, stats, attrs)
    if "num_chains" in attrs:
        attrs["num_chains"] = out.num_chains
    if "num_draws" in attrs:
        attrs["num_draws"] = out.num_draws
    return out
