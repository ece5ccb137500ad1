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

from .autoencoder import Autoencoder, DenoisingAutoencoder, SparseAutoencoder
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
        self.model, self.lr = model, float(lr)

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
        return {"autoencoder": torch.optim.Adam(nets["autoencoder"].parameters(), lr=self.lr)}, {}

    def training_step(self, nets: Mapping[str, nn.Module], optimizers: Mapping[str, Any],
                      batch: Batch, step: int,
                      generator: torch.Generator | None) -> dict[str, Tensor]:
        net = nets["autoencoder"]
        model = _unwrap(net)
        assert isinstance(model, Autoencoder)
        net.train()
        x = _to_net(batch[0], model)
        # through the (possibly DDP-wrapped) network, so gradients are synchronised
        terms = cast(Any, net).loss_terms(x, generator)
        opt = optimizers["autoencoder"]
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(terms["loss"])
        opt.step()
        with torch.no_grad():
            model.update_code_stats(model.encode(x))
        return {k: v.detach() for k, v in terms.items()}

    def sample(self, nets: Mapping[str, nn.Module], n: int, generator: torch.Generator | None,
               labels: Tensor | None = None) -> Tensor:
        model = _unwrap(nets["autoencoder"])
        assert isinstance(model, Autoencoder)
        with eval_mode(model):
            return model.sample(n, generator).clamp(0, 1) if model.output == "sigmoid" \
                else model.sample(n, generator)

    def evaluate(self, nets: Mapping[str, nn.Module], batch: Batch,
                 generator: torch.Generator | None) -> dict[str, float]:
        model = _unwrap(nets["autoencoder"])
        assert isinstance(model, Autoencoder)
        with eval_mode(model), torch.no_grad():
            x = _to_net(batch[0], model)
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
        if objective not in ("elbo", "iwae"):
            raise ValidationError("VAETask", "objective must be 'elbo' or 'iwae'",
                                  found=repr(objective))
        if num_samples < 1 or k < 1 or eval_importance_samples < 0:
            raise ValidationError("VAETask", "num_samples and k must be >= 1, "
                                  "eval_importance_samples >= 0",
                                  found=(num_samples, k, eval_importance_samples))
        self.model, self.lr, self.objective = model, float(lr), objective
        self.num_samples, self.k = int(num_samples), int(k)
        self.eval_importance_samples = int(eval_importance_samples)

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
        return {"vae": torch.optim.Adam(nets["vae"].parameters(), lr=self.lr)}, {}

    def training_step(self, nets: Mapping[str, nn.Module], optimizers: Mapping[str, Any],
                      batch: Batch, step: int,
                      generator: torch.Generator | None) -> dict[str, Tensor]:
        net = nets["vae"]
        model = _unwrap(net)
        assert isinstance(model, VAE)
        net.train()
        x = _to_net(batch[0], model)
        y = _labels(batch[1], model.num_classes, "VAETask")
        if self.objective == "iwae":
            # through the (possibly DDP-wrapped) network, so gradients are synchronised
            bound = cast(Any, net).iwae_bound(x, y, k=self.k, generator=generator)
            loss = -bound.mean()
            out = {"loss": loss, "iwae": bound.mean()}
        else:
            loss, t = cast(Any, net).loss(x, y, num_samples=self.num_samples, generator=generator)
            out = {"loss": loss, "recon": t.recon.mean(), "kl": t.kl.mean()}
        opt = optimizers["vae"]
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        opt.step()
        return {k: v.detach() for k, v in out.items()}

    def sample(self, nets: Mapping[str, nn.Module], n: int, generator: torch.Generator | None,
               labels: Tensor | None = None) -> Tensor:
        model = _unwrap(nets["vae"])
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
        model = _unwrap(nets["vae"])
        assert isinstance(model, VAE)
        x = _to_net(batch[0], model)
        y = _labels(batch[1], model.num_classes, "VAETask")
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
        if loss not in GAN_LOSSES:
            raise ValidationError("GANTask", f"loss must be one of {GAN_LOSSES}", found=repr(loss))
        d = _GAN_DEFAULTS[loss]
        self.gan, self.loss = gan, loss
        self.n_critic = int(d["n_critic"] if n_critic is None else n_critic)
        self.lr = float(d["lr"] if lr is None else lr)
        self.lr_d = float(self.lr if lr_d is None else lr_d)
        self.optimizer = str(d["optimizer"] if optimizer is None else optimizer)
        self.betas = tuple(float(b) for b in (d["betas"] if betas is None else betas))
        self.clip, self.gp_weight = float(clip), float(gp_weight)
        self._kind = kind
        if self.n_critic < 1 or self.optimizer not in ("adam", "rmsprop") or len(self.betas) != 2:
            raise ValidationError("GANTask", "need n_critic >= 1, optimizer 'adam' or 'rmsprop' "
                                  "and two betas",
                                  found=(self.n_critic, self.optimizer, self.betas))
        if not self.clip > 0 or self.gp_weight < 0:
            raise ValidationError("GANTask", "clip must be > 0 and gp_weight >= 0",
                                  found=(self.clip, self.gp_weight))

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
        return {"g": self._opt(nets["generator"].parameters(), self.lr),
                "d": self._opt(nets["discriminator"].parameters(), self.lr_d)}, {}

    def training_step(self, nets: Mapping[str, nn.Module], optimizers: Mapping[str, Any],
                      batch: Batch, step: int,
                      generator: torch.Generator | None) -> dict[str, Tensor]:
        g_net, d_net = nets["generator"], nets["discriminator"]
        g_net.train()
        d_net.train()
        real = self.gan.to_model_space(_to_net(batch[0], _unwrap(d_net)))
        y = _labels(batch[1], self.gan.num_classes, "GANTask")
        return train_step(self.gan, dict(optimizers), real, y, step, loss=self.loss,
                          n_critic=self.n_critic, clip=self.clip, gp_weight=self.gp_weight,
                          generator=generator, nets={"generator": g_net, "discriminator": d_net})

    def sample(self, nets: Mapping[str, nn.Module], n: int, generator: torch.Generator | None,
               labels: Tensor | None = None) -> Tensor:
        g = _unwrap(nets["generator"])
        with eval_mode(g):
            return self.gan.sample(n, labels, generator=generator)

    def evaluate(self, nets: Mapping[str, nn.Module], batch: Batch,
                 generator: torch.Generator | None) -> dict[str, float]:
        g, d = _unwrap(nets["generator"]), _unwrap(nets["discriminator"])
        x = _to_net(batch[0], d)
        y = _labels(batch[1], self.gan.num_classes, "GANTask")
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
