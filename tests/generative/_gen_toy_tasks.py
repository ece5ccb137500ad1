"""Tiny TrainTasks for testing generative.train.fit without the real models."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from generative.task import Batch


class _Regressor(nn.Module):
    """x[:, :1] -> x[:, 1:] with an optional dropout layer; ``loss`` is a custom method."""

    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Dropout(dropout),
                                  nn.Linear(hidden, 1))

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.body(x)
        return out

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        return ((self(x) - y) ** 2).mean()


class RegressionTask:
    """Least squares on the 2-D toys: predict the second coordinate from the first.

    ``noise`` adds N(0, noise^2) drawn from the loop's generator to the inputs; ``dropout`` uses
    torch's global RNG (so exact resume needs its state); ``call`` picks how the network is used
    ("forward", "method": a custom method, "submodule": ``net.body(x)``); ``nan_at`` /
    ``crash_at`` inject a NaN loss term or an exception at that (0-based) step.
    """

    def __init__(self, hidden: int = 8, dropout: float = 0.1, noise: float = 0.05,
                 lr: float = 0.01, seed: int = 0, call: str = "forward",
                 nan_at: int | None = None, crash_at: int | None = None,
                 nan_value: float = float("nan")) -> None:
        self.hidden, self.dropout, self.noise, self.lr, self.seed = hidden, dropout, noise, lr, seed
        self.call, self.nan_at, self.crash_at, self.nan_value = call, nan_at, crash_at, nan_value
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = _Regressor(hidden, dropout)

    def config(self) -> dict[str, object]:
        return {"kind": "toy-regression", "hidden": self.hidden, "dropout": self.dropout,
                "noise": self.noise, "lr": self.lr, "seed": self.seed}

    def networks(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def make_optimizers(self, nets: Mapping[str, nn.Module]) -> tuple[
            dict[str, torch.optim.Optimizer], dict[str, torch.optim.lr_scheduler.LRScheduler]]:
        opt = torch.optim.Adam(nets["net"].parameters(), lr=self.lr)
        return {"adam": opt}, {"adam": torch.optim.lr_scheduler.StepLR(opt, 4, gamma=0.9)}

    def training_step(self, nets: Mapping[str, nn.Module],
                      optimizers: Mapping[str, torch.optim.Optimizer], batch: Batch, step: int,
                      generator: torch.Generator | None) -> dict[str, Tensor]:
        if self.crash_at is not None and step == self.crash_at:
            raise RuntimeError("simulated kill")
        x = batch[0]
        inp, target = x[:, :1], x[:, 1:]
        if self.noise:
            inp = inp + self.noise * torch.randn(inp.shape, generator=generator,
                                                 dtype=inp.dtype, device=inp.device)
        net = nets["net"]
        if self.call == "method":
            mse = net.loss(inp, target)  # type: ignore[operator]
        elif self.call == "submodule":
            mse = ((net.body(inp) - target) ** 2).mean()  # type: ignore[operator]
        else:
            mse = ((net(inp) - target) ** 2).mean()
        opt = optimizers["adam"]
        opt.zero_grad()
        mse.backward()
        opt.step()
        penalty = sum((p.detach() ** 2).sum() for p in net.parameters())
        assert isinstance(penalty, Tensor)
        if self.nan_at is not None and step == self.nan_at:
            penalty = penalty * self.nan_value
        return {"loss": mse.detach(), "kl": penalty}

    def sample(self, nets: Mapping[str, nn.Module], n: int, generator: torch.Generator | None,
               labels: Tensor | None = None) -> Tensor:
        p = next(nets["net"].parameters())
        u = 2 * torch.rand(n, 1, generator=generator, dtype=p.dtype, device=p.device) - 1
        return torch.cat([u, nets["net"](u)], 1)

    def evaluate(self, nets: Mapping[str, nn.Module], batch: Batch,
                 generator: torch.Generator | None) -> dict[str, float]:
        x = batch[0]
        return {"mse": float(((nets["net"](x[:, :1]) - x[:, 1:]) ** 2).mean())}


class TwoNetTask:
    """A GAN-shaped task: ``k`` critic steps then one generator step, from the loop's generator.

    The generator is ``z -> A z + b`` on 2-D points; the critic is linear (a WGAN-style critic
    with weight clipping), so every step is cheap.
    """

    def __init__(self, k: int = 2, seed: int = 0) -> None:
        self.k, self.seed = k, seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.g = nn.Linear(2, 2)
            self.d = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))

    def config(self) -> dict[str, object]:
        return {"kind": "toy-two-net", "k": self.k, "seed": self.seed}

    def networks(self) -> dict[str, nn.Module]:
        return {"generator": self.g, "critic": self.d}

    def make_optimizers(self, nets: Mapping[str, nn.Module]) -> tuple[
            dict[str, torch.optim.Optimizer], dict[str, torch.optim.lr_scheduler.LRScheduler]]:
        return ({"g": torch.optim.RMSprop(nets["generator"].parameters(), lr=5e-3),
                 "d": torch.optim.RMSprop(nets["critic"].parameters(), lr=5e-3)}, {})

    def training_step(self, nets: Mapping[str, nn.Module],
                      optimizers: Mapping[str, torch.optim.Optimizer], batch: Batch, step: int,
                      generator: torch.Generator | None) -> dict[str, Tensor]:
        x = batch[0]
        g, d = nets["generator"], nets["critic"]
        for _ in range(self.k):
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            with torch.no_grad():
                fake = g(z)
            d_loss = d(fake).mean() - d(x).mean()
            optimizers["d"].zero_grad()
            d_loss.backward()
            optimizers["d"].step()
            with torch.no_grad():
                for p in d.parameters():
                    p.clamp_(-0.5, 0.5)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        g_loss = -d(g(z)).mean()
        optimizers["g"].zero_grad()
        g_loss.backward()
        optimizers["g"].step()
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}

    def sample(self, nets: Mapping[str, nn.Module], n: int, generator: torch.Generator | None,
               labels: Tensor | None = None) -> Tensor:
        p = next(nets["generator"].parameters())
        z = torch.randn(n, 2, generator=generator, dtype=p.dtype, device=p.device)
        out: Tensor = nets["generator"](z)
        return out

    def evaluate(self, nets: Mapping[str, nn.Module], batch: Batch,
                 generator: torch.Generator | None) -> dict[str, float]:
        fake = self.sample(nets, batch[0].shape[0], generator)
        return {"mean_gap": float((fake.mean(0) - batch[0].mean(0)).norm())}


class MeanImageTask:
    """Learns a mean image by least squares; samples are that image plus noise, in [0, 1]."""

    def __init__(self, shape: tuple[int, ...] = (1, 8, 8)) -> None:
        self.shape = shape
        self.net = nn.Module()
        self.net.register_parameter("mean", nn.Parameter(torch.full(shape, 0.5)))

    def config(self) -> dict[str, object]:
        return {"kind": "toy-mean-image", "shape": list(self.shape)}

    def networks(self) -> dict[str, nn.Module]:
        return {"image": self.net}

    def make_optimizers(self, nets: Mapping[str, nn.Module]) -> tuple[
            dict[str, torch.optim.Optimizer], dict[str, torch.optim.lr_scheduler.LRScheduler]]:
        return {"sgd": torch.optim.SGD(nets["image"].parameters(), lr=0.5)}, {}

    def training_step(self, nets: Mapping[str, nn.Module],
                      optimizers: Mapping[str, torch.optim.Optimizer], batch: Batch, step: int,
                      generator: torch.Generator | None) -> dict[str, Tensor]:
        mean = next(nets["image"].parameters())
        loss = ((batch[0] - mean) ** 2).mean()
        optimizers["sgd"].zero_grad()
        loss.backward()
        optimizers["sgd"].step()
        return {"loss": loss.detach()}

    def sample(self, nets: Mapping[str, nn.Module], n: int, generator: torch.Generator | None,
               labels: Tensor | None = None) -> Tensor:
        mean = next(nets["image"].parameters())
        noise = 0.1 * torch.randn((n, *self.shape), generator=generator, dtype=mean.dtype,
                                  device=mean.device)
        return (mean + noise).clamp(0, 1)

    def evaluate(self, nets: Mapping[str, nn.Module], batch: Batch,
                 generator: torch.Generator | None) -> dict[str, float]:
        mean = next(nets["image"].parameters())
        return {"mse": float(((batch[0] - mean) ** 2).mean())}
