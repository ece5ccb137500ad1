"""Training tasks (:class:`generative.task.TrainTask`) for autoencoders, VAEs and GANs.

A task wraps a model for the shared loop :func:`generative.train.fit`: it names the networks,
builds their optimisers, performs one optimisation step on a batch, draws samples for the sample
grids (images in ``[0, 1]``) and evaluates on a held-out batch. The models stay usable on their own
(``vae.elbo(x)``); ``task.config()`` is what :func:`generative.registry.build_task` rebuilds from.

Inside :meth:`training_step` a task uses the networks the loop passes in (they may be DDP
wrappers), never its own attributes, for forward passes.

Examples
--------
>>> import torch
>>> from probforge.ops import make_generator
>>> from generative.vae import VAE
>>> from generative.tasks import VAETask
>>> task = VAETask(VAE((4,), latent_dim=2, hidden=(8,)), lr=1e-3)
>>> nets = task.networks()
>>> opts, _ = task.make_optimizers(nets)
>>> x = (torch.rand(16, 4, generator=make_generator(0)) > 0.5).float()
>>> terms = task.training_step(nets, opts, (x, None), 0, make_generator(1))
>>> sorted(terms)
['kl', 'loss', 'recon']
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from probforge.errors import ValidationError
from probforge.validate import check_choice, check_int, check_real

from .autoencoder import Autoencoder, DenoisingAutoencoder, SparseAutoencoder
from .checks import check_batch, check_positive_real, check_vector_batch, first_parameter
from .gan import GAN, GAN_LOSSES, GENERATOR_LOSSES, train_step
from .metrics.two_sample import mmd2
from .task import Batch
from .vae import VAE

__all__ = ["AETask", "GANTask", "VAETask", "model_config"]

Optimizers = dict[str, torch.optim.Optimizer]
Schedulers = dict[str, torch.optim.lr_scheduler.LRScheduler]


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put modules in eval mode for the block and restore their previous modes afterwards."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)


def _unwrap(net: nn.Module) -> nn.Module:
    inner = getattr(net, "module", None)
    return inner if isinstance(inner, nn.Module) else net


def _params(net: nn.Module) -> tuple[torch.dtype, torch.device]:
    p = next(net.parameters())
    return p.dtype, p.device


def _to_net(x: Tensor, net: nn.Module) -> Tensor:
    dtype, device = _params(net)
    return x.to(device=device, dtype=dtype if x.is_floating_point() else x.dtype)


def _labels(y: Tensor | None, num_classes: int | None, where: str) -> Tensor | None:
    if num_classes is None:
        return None
    if y is None:
        raise ValidationError(where, "the model is conditional but the batch has no labels",
                              fix="use a labelled data set or build an unconditional model")
    return y


def _batch(batch: Any, where: str) -> tuple[Tensor, Tensor | None]:
    """``(x, y)`` of a batch: a tuple or list of a tensor and labels (or None)."""
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        raise ValidationError(f"{where} batch", "must be a pair (x, y) with y None when "
                              "unlabelled", found=type(batch).__name__)
    x, y = batch
    if not isinstance(x, Tensor):
        raise ValidationError(f"{where} batch x", "must be a torch.Tensor",
                              found=type(x).__name__)
    if y is not None and not isinstance(y, Tensor):
        raise ValidationError(f"{where} batch y", "must be a torch.Tensor of labels or None",
                              found=type(y).__name__)
    return x, y


def _net(nets: Any, name: str, where: str) -> nn.Module:
    if not isinstance(nets, Mapping) or name not in nets or not isinstance(nets[name],
                                                                           nn.Module):
        raise ValidationError(f"{where} nets", f"must map {name!r} to the task's network",
                              found=sorted(nets) if isinstance(nets, Mapping)
                              else type(nets).__name__, fix="pass task.networks()")
    return cast(nn.Module, nets[name])


def _optimizer(optimizers: Any, name: str, where: str) -> torch.optim.Optimizer:
    if not isinstance(optimizers, Mapping) or not isinstance(optimizers.get(name),
                                                             torch.optim.Optimizer):
        raise ValidationError(f"{where} optimizers", f"must map {name!r} to an optimiser",
                              found=sorted(optimizers) if isinstance(optimizers, Mapping)
                              else type(optimizers).__name__,
                              fix="pass the first element of task.make_optimizers(nets)")
    return cast(torch.optim.Optimizer, optimizers[name])


def _sample_count(n: Any, where: str) -> int:
    return check_int(n, f"{where}.sample n", minimum=1)


def model_config(model: nn.Module) -> dict[str, Any]:
    """The constructor arguments of an AE, VAE or built GAN, as a JSON-serialisable dict."""
    if isinstance(model, VAE):
        return {"event_shape": list(model.event_shape), "latent_dim": model.latent_dim,
                "likelihood": model.likelihood, "arch": model.arch,
                "hidden": list(getattr(model, "_hidden", [])),
                "channels": list(getattr(model, "_channels", [])),
                "num_classes": model.num_classes, "beta": model.beta,
                "gaussian_std": model.gaussian_std, "num_categories": model.num_categories,
                "seed": getattr(model, "_seed", 0)}
    if isinstance(model, Autoencoder):
        cfg = {"event_shape": list(model.event_shape), "latent_dim": model.latent_dim,
               "hidden": [layer.out_features for layer in model.encoder_layers()][:-1],
               "tied": model.tied,
               "activation": model.activation, "output": model.output,
               "weight_decay": model.weight_decay, "seed": getattr(model, "_seed", 0)}
        if isinstance(model, DenoisingAutoencoder):
            cfg.update(mask_ratio=model.mask_ratio, noise_std=model.noise_std,
                       code_activation=model.code_activation)
        elif isinstance(model, SparseAutoencoder):
            cfg.update(target=model.target, sparsity_weight=model.sparsity_weight)
        else:
            cfg["code_activation"] = model.code_activation
        return cfg
    if isinstance(model, GAN):
        if model.spec is None:
            raise ValidationError("GAN", "was built from custom networks, so it has no config",
                                  fix="build it with GAN.build(...) or generative.registry")
        return dict(model.spec)
    raise ValidationError("model_config", "unsupported model type", found=type(model).__name__)


class AETask:
    """Train an :class:`~generative.autoencoder.Autoencoder` (plain, denoising or sparse).

    Parameters
    ----------
    model : Autoencoder
    lr : float
        Adam learning rate.
    """

    def __init__(self, model: Autoencoder, *, lr: float = 1e-3) -> None:
        if not isinstance(model, Autoencoder):
            raise ValidationError("AETask model", "must be a generative.autoencoder.Autoencoder",
                                  found=type(model).__name__)
        self.model, self.lr = model, check_positive_real(lr, "AETask lr")

    def kind(self) -> str:
        """Registry kind: "ae", "dae" or "sparse-ae"."""
        if isinstance(self.model, DenoisingAutoencoder):
            return "dae"
        if isinstance(self.model, SparseAutoencoder):
            return "sparse-ae"
        return "ae"

    def config(self) -> dict[str, object]:
        return {"kind": self.kind(), **model_config(self.model), "lr": self.lr}

    def networks(self) -> dict[str, nn.Module]:
        return {"autoencoder": self.model}

    def make_optimizers(self, nets: Mapping[str, nn.Module]) -> tuple[Optimizers, Schedulers]:
        net = _net(nets, "autoencoder", "AETask.make_optimizers")
        return {"autoencoder": torch.optim.Adam(net.parameters(), lr=self.lr)}, {}

    def training_step(self, nets: Mapping[str, nn.Module], optimizers: Mapping[str, Any],
                      batch: Batch, step: int,
                      generator: torch.Generator | None) -> dict[str, Tensor]:
        net = _net(nets, "autoencoder", "AETask.training_step")
        opt = _optimizer(optimizers, "autoencoder", "AETask.training_step")
        model = _unwrap(net)
        assert isinstance(model, Autoencoder)
        net.train()
        x = _to_net(_batch(batch, "AETask.training_step")[0], model)
        # through the (possibly DDP-wrapped) network, so gradients are synchronised
        terms = cast(Any, net).loss_terms(x, generator)
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(terms["loss"])
        opt.step()
        with torch.no_grad():
            # a diverged network's NaN codes leave the moments alone (no raise, no host sync):
            # the loop reports the non-finite loss itself
            model.track_codes(model.encode(x))
        return {k: v.detach() for k, v in terms.items()}

    def sample(self, nets: Mapping[str, nn.Module], n: int, generator: torch.Generator | None,
               labels: Tensor | None = None) -> Tensor:
        n = _sample_count(n, "AETask")
        model = _unwrap(_net(nets, "autoencoder", "AETask.sample"))
        assert isinstance(model, Autoencoder)
        with eval_mode(model):
            return model.sample(n, generator).clamp(0, 1) if model.output == "sigmoid" \
                else model.sample(n, generator)

    def evaluate(self, nets: Mapping[str, nn.Module], batch: Batch,
                 generator: torch.Generator | None) -> dict[str, float]:
        model = _unwrap(_net(nets, "autoencoder", "AETask.evaluate"))
        assert isinstance(model, Autoencoder)
        with eval_mode(model), torch.no_grad():
            x = _to_net(_batch(batch, "AETask.evaluate")[0], model)
            terms = model.loss_terms(x, generator)
            mse = float(((model(x) - x) ** 2).mean())
        return {**{k: float(v) for k, v in terms.items()}, "clean_mse": mse}


class VAETask:
    """Train a :class:`~generative.vae.VAE` on the (beta-)ELBO or the IWAE bound.

    Parameters
    ----------
    model : VAE
    lr : float
        Adam learning rate.
    objective : {"elbo", "iwae"}
    num_samples : int
        ``M`` of the Monte Carlo ELBO (objective "elbo").
    k : int
        Importance samples of the IWAE bound (objective "iwae"; also reported by evaluate).
    eval_importance_samples : int
        ``k`` of the importance-sampled log-likelihood in :meth:`evaluate` (0: skip it).
    """

    def __init__(self, model: VAE, *, lr: float = 1e-3, objective: str = "elbo",
                 num_samples: int = 1, k: int = 5, eval_importance_samples: int = 100) -> None:
        if not isinstance(model, VAE):
            raise ValidationError("VAETask model", "must be a generative.vae.VAE",
                                  found=type(model).__name__)
        check_choice(objective, "VAETask objective", ("elbo", "iwae"))
        self.model, self.lr, self.objective = model, check_positive_real(lr, "VAETask lr"), \
            objective
        self.num_samples = check_int(num_samples, "VAETask num_samples", minimum=1)
        self.k = check_int(k, "VAETask k", minimum=1)
        self.eval_importance_samples = check_int(eval_importance_samples,
                                                 "VAETask eval_importance_samples", minimum=0)

    def kind(self) -> str:
        """Registry kind: "iwae", "cvae" or "vae"."""
        if self.objective == "iwae":
            return "iwae"
        return "cvae" if self.model.num_classes is not None else "vae"

    def config(self) -> dict[str, object]:
        cfg: dict[str, object] = {"kind": self.kind(), **model_config(self.model),
                                  "lr": self.lr, "num_samples": self.num_samples, "k": self.k,
                                  "eval_importance_samples": self.eval_importance_samples}
        return cfg

    def networks(self) -> dict[str, nn.Module]:
        return {"vae": self.model}

    def make_optimizers(self, nets: Mapping[str, nn.Module]) -> tuple[Optimizers, Schedulers]:
        net = _net(nets, "vae", "VAETask.make_optimizers")
        return {"vae": torch.optim.Adam(net.parameters(), lr=self.lr)}, {}

    def training_step(self, nets: Mapping[str, nn.Module], optimizers: Mapping[str, Any],
                      batch: Batch, step: int,
                      generator: torch.Generator | None) -> dict[str, Tensor]:
        net = _net(nets, "vae", "VAETask.training_step")
        opt = _optimizer(optimizers, "vae", "VAETask.training_step")
        model = _unwrap(net)
        assert isinstance(model, VAE)
        net.train()
        bx, by = _batch(batch, "VAETask.training_step")
        x = _to_net(bx, model)
        y = _labels(by, model.num_classes, "VAETask")
        if self.objective == "iwae":
            # through the (possibly DDP-wrapped) network, so gradients are synchronised
            bound = cast(Any, net).iwae_bound(x, y, k=self.k, generator=generator)
            loss = -bound.mean()
            out = {"loss": loss, "iwae": bound.mean()}
        else:
            loss, t = cast(Any, net).loss(x, y, num_samples=self.num_samples, generator=generator)
            out = {"loss": loss, "recon": t.recon.mean(), "kl": t.kl.mean()}
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        opt.step()
        return {k: v.detach() for k, v in out.items()}

    def sample(self, nets: Mapping[str, nn.Module], n: int, generator: torch.Generator | None,
               labels: Tensor | None = None) -> Tensor:
        n = _sample_count(n, "VAETask")
        model = _unwrap(_net(nets, "vae", "VAETask.sample"))
        assert isinstance(model, VAE)
        if model.num_classes is not None and labels is None:
            labels = torch.arange(n, device=_params(model)[1]) % model.num_classes
        with eval_mode(model):
            s = model.sample(n, labels, generator=generator)
        if model.likelihood == "categorical":
            assert model.num_categories is not None
            s = s / (model.num_categories - 1)
        return s

    def evaluate(self, nets: Mapping[str, nn.Module], batch: Batch,
                 generator: torch.Generator | None) -> dict[str, float]:
        model = _unwrap(_net(nets, "vae", "VAETask.evaluate"))
        assert isinstance(model, VAE)
        bx, by = _batch(batch, "VAETask.evaluate")
        x = _to_net(bx, model)
        y = _labels(by, model.num_classes, "VAETask")
        with eval_mode(model), torch.no_grad():
            t = model.elbo_terms(x, y, generator=generator)
            out = {"elbo": float(t.elbo.mean()), "recon": float(t.recon.mean()),
                   "kl": float(t.kl.mean()),
                   f"iwae_k{self.k}": float(model.iwae_bound(x, y, k=self.k,
                                                             generator=generator).mean())}
            if self.eval_importance_samples:
                est = model.log_marginal(x, y, num_samples=self.eval_importance_samples,
                                         generator=generator)
                out[f"nll_k{self.eval_importance_samples}"] = float(-est.log_likelihood.mean())
        return out


_GAN_DEFAULTS: dict[str, dict[str, Any]] = {
    # Radford et al. 2016: Adam 2e-4, beta1 0.5
    "non-saturating": {"optimizer": "adam", "lr": 2e-4, "betas": (0.5, 0.999), "n_critic": 1},
    "minimax": {"optimizer": "adam", "lr": 2e-4, "betas": (0.5, 0.999), "n_critic": 1},
    "label-swap": {"optimizer": "adam", "lr": 2e-4, "betas": (0.5, 0.999), "n_critic": 1},
    "lsgan": {"optimizer": "adam", "lr": 2e-4, "betas": (0.5, 0.999), "n_critic": 1},
    # Arjovsky et al. 2017 / Algorithm 13.2: RMSProp 5e-5, c = 0.01, n_critic = 5
    "wgan": {"optimizer": "rmsprop", "lr": 5e-5, "betas": (0.5, 0.999), "n_critic": 5},
    # Gulrajani et al. 2017: Adam 1e-4, betas (0, 0.9), lambda 10, n_critic 5
    "wgan-gp": {"optimizer": "adam", "lr": 1e-4, "betas": (0.0, 0.9), "n_critic": 5},
}


class GANTask:
    """Train a :class:`~generative.gan.GAN` with ``n_critic`` D steps per G step (Alg. 13.1/13.2).

    Parameters
    ----------
    gan : GAN
    loss : str
        One of :data:`generative.gan.GAN_LOSSES`.
    n_critic : int, optional
        Discriminator steps per generator step (default: 5 for WGAN/WGAN-GP, else 1).
    lr : float, optional
        Learning rate of both networks (defaults per loss: 2e-4, WGAN 5e-5, WGAN-GP 1e-4).
    lr_d : float, optional
        Discriminator learning rate when it differs from ``lr``.
    optimizer : {"adam", "rmsprop"}, optional
        Default: RMSProp for WGAN (Algorithm 13.2), Adam otherwise.
    betas : (float, float), optional
        Adam betas (default (0.5, 0.999); WGAN-GP (0, 0.9)).
    clip : float
        WGAN weight clip ``c`` (textbook default 0.01).
    gp_weight : float
        WGAN-GP ``lambda``.
    kind : str, optional
        Registry kind reported by :meth:`config` (default: derived from loss, conditioning and
        architecture).
    """

    def __init__(self, gan: GAN, *, loss: str = "non-saturating", n_critic: int | None = None,
                 lr: float | None = None, lr_d: float | None = None,
                 optimizer: str | None = None, betas: Sequence[float] | None = None,
                 clip: float = 0.01, gp_weight: float = 10.0, kind: str | None = None) -> None:
        if not isinstance(gan, GAN):
            raise ValidationError("GANTask gan", "must be a generative.gan.GAN",
                                  found=type(gan).__name__)
        check_choice(loss, "GANTask loss", GAN_LOSSES)
        d = _GAN_DEFAULTS[loss]
        self.gan, self.loss = gan, loss
        self.n_critic = check_int(d["n_critic"] if n_critic is None else n_critic,
                                  "GANTask n_critic", minimum=1)
        self.lr = check_positive_real(d["lr"] if lr is None else lr, "GANTask lr")
        self.lr_d = check_positive_real(self.lr if lr_d is None else lr_d, "GANTask lr_d")
        self.optimizer = check_choice(d["optimizer"] if optimizer is None else optimizer,
                                      "GANTask optimizer", ("adam", "rmsprop"))
        raw_betas = d["betas"] if betas is None else betas
        if isinstance(raw_betas, str | bytes) or not isinstance(raw_betas, Sequence) \
                or len(raw_betas) != 2:
            raise ValidationError("GANTask betas", "must be two numbers (beta1, beta2)",
                                  found=repr(raw_betas), fix="e.g. betas=(0.5, 0.999)")
        self.betas = tuple(check_real(b, f"GANTask betas[{i}]", minimum=0.0, maximum=1.0,
                                      strict_maximum=True) for i, b in enumerate(raw_betas))
        self.clip = check_positive_real(clip, "GANTask clip")
        self.gp_weight = check_real(gp_weight, "GANTask gp_weight", minimum=0.0)
        if kind is not None and not isinstance(kind, str):
            raise ValidationError("GANTask kind", "must be a string or None",
                                  found=type(kind).__name__)
        self._kind = kind

    def _check_data(self, x: Tensor, where: str) -> None:
        """A data batch: finite floating ``(B, *event)``, in ``[0, 1]`` for image GANs (the
        generator's Tanh covers ``[-1, 1]`` = ``to_model_space([0, 1])`` only)."""
        p = first_parameter(self.gan.generator)
        shape = self.gan.event_shape
        if shape is None:
            check_vector_batch(x, f"{where} x", like=p)
        elif self.gan.image:
            check_batch(x, f"{where} x", shape, like=p, value_range=(0.0, 1.0),
                        range_rule="image data must lie in [0, 1]")
        else:
            check_batch(x, f"{where} x", shape, like=p)

    def kind(self) -> str:
        """Registry kind: as given, else derived from the loss, conditioning and architecture."""
        if self._kind is not None:
            return self._kind
        if self.loss in ("wgan", "wgan-gp", "lsgan"):
            return self.loss
        if self.gan.num_classes is not None:
            return "cgan"
        spec = self.gan.spec or {}
        return "dcgan" if spec.get("arch") == "dcgan" else "gan"

    def config(self) -> dict[str, object]:
        cfg: dict[str, object] = {"kind": self.kind(), **model_config(self.gan)}
        if self.loss in GENERATOR_LOSSES:
            cfg["loss"] = self.loss
        cfg.update(n_critic=self.n_critic, lr=self.lr, lr_d=self.lr_d, optimizer=self.optimizer,
                   betas=list(self.betas), clip=self.clip, gp_weight=self.gp_weight)
        return cfg

    def networks(self) -> dict[str, nn.Module]:
        return {"generator": self.gan.generator, "discriminator": self.gan.discriminator}

    def _opt(self, params: Any, lr: float) -> torch.optim.Optimizer:
        if self.optimizer == "rmsprop":
            return torch.optim.RMSprop(params, lr=lr)
        return torch.optim.Adam(params, lr=lr, betas=(self.betas[0], self.betas[1]))

    def make_optimizers(self, nets: Mapping[str, nn.Module]) -> tuple[Optimizers, Schedulers]:
        g = _net(nets, "generator", "GANTask.make_optimizers")
        d = _net(nets, "discriminator", "GANTask.make_optimizers")
        return {"g": self._opt(g.parameters(), self.lr),
                "d": self._opt(d.parameters(), self.lr_d)}, {}

    def training_step(self, nets: Mapping[str, nn.Module], optimizers: Mapping[str, Any],
                      batch: Batch, step: int,
                      generator: torch.Generator | None) -> dict[str, Tensor]:
        g_net = _net(nets, "generator", "GANTask.training_step")
        d_net = _net(nets, "discriminator", "GANTask.training_step")
        g_net.train()
        d_net.train()
        bx, by = _batch(batch, "GANTask.training_step")
        x = _to_net(bx, _unwrap(d_net))
        self._check_data(x, "GANTask.training_step")
        real = self.gan.to_model_space(x)
        y = _labels(by, self.gan.num_classes, "GANTask")
        return train_step(self.gan, dict(optimizers), real, y, step, loss=self.loss,
                          n_critic=self.n_critic, clip=self.clip, gp_weight=self.gp_weight,
                          generator=generator, nets={"generator": g_net, "discriminator": d_net})

    def sample(self, nets: Mapping[str, nn.Module], n: int, generator: torch.Generator | None,
               labels: Tensor | None = None) -> Tensor:
        n = _sample_count(n, "GANTask")
        g = _unwrap(_net(nets, "generator", "GANTask.sample"))
        with eval_mode(g):
            return self.gan.sample(n, labels, generator=generator)

    def evaluate(self, nets: Mapping[str, nn.Module], batch: Batch,
                 generator: torch.Generator | None) -> dict[str, float]:
        g = _unwrap(_net(nets, "generator", "GANTask.evaluate"))
        d = _unwrap(_net(nets, "discriminator", "GANTask.evaluate"))
        bx, by = _batch(batch, "GANTask.evaluate")
        x = _to_net(bx, d)
        self._check_data(x, "GANTask.evaluate")
        y = _labels(by, self.gan.num_classes, "GANTask")
        n = x.shape[0]
        with eval_mode(g, d), torch.no_grad():
            fake = self.gan.sample(n, y, generator=generator)
            r = d(self.gan.to_model_space(x)) if y is None else d(self.gan.to_model_space(x), y)
            f = d(self.gan.to_model_space(fake)) if y is None else \
                d(self.gan.to_model_space(fake), y)
            out = {"d_real": float(r.mean()), "d_fake": float(f.mean())}
            if x[0].numel() <= 64 and n >= 2:
                out["mmd2"] = float(mmd2(fake, x))
        return out
