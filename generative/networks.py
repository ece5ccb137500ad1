"""Network builders for autoencoders, VAEs and GANs: MLPs, conv encoders/decoders, DCGAN.

Sized for the project's data: 28x28 images (Fashion-MNIST), 8x8 images (sklearn digits) and 2-D
toys, but written for any square image whose side is divisible by the number of stride-2 stages.

- :func:`mlp` a plain multilayer perceptron;
- :class:`ConvEncoder` / :class:`ConvDecoder`: stride-2 convolutions down (kernel 4, padding 1
  halves the side), a linear head; a linear stem then stride-2 transposed convolutions up
  (``out = (in - 1) * 2 - 2 + 4 = 2 in``, DL7 Fig. 7.29's size rule ``(in - 1) s + k - 2p``);
- :class:`DCGANGenerator` / :class:`DCGANDiscriminator` following the five DCGAN rules of the
  textbook (NNDL 13.3.4, Radford et al. 2016): (1) strided convolutions in D and fractionally
  strided (transposed) convolutions in G instead of pooling; (2) batch normalisation (not on G's
  output nor on D's input layer); (3) no fully connected hidden layers: G's projection of ``z`` is
  a transposed convolution of the ``1x1`` input (the textbook's "first layer FC + reshape", written
  as a convolution) and D ends in a convolution covering the last feature map; (4) ReLU in G with
  Tanh at the output; (5) LeakyReLU (slope 0.2) everywhere in D. Weights ``N(0, 0.02)``, batch-norm
  scales ``N(1, 0.02)`` (Radford et al.), drawn from a seeded generator;
- :class:`MLPGenerator` / :class:`MLPDiscriminator` for low-dimensional toys.

Conditioning: every network takes an optional ``num_classes``; labels ``y`` (B,) are one-hot
encoded and concatenated to the input (to ``z``, to the flattened ``x``, or as constant feature
maps for convolutional discriminators / to the features before the head of conv encoders).

Initialisation never touches the global RNG: builders take ``seed`` and draw their initial
weights inside :func:`seeded`, which forks and restores the global RNG state.

Examples
--------
>>> import torch
>>> from generative.networks import DCGANGenerator, DCGANDiscriminator
>>> g = DCGANGenerator(16, (1, 28, 28), base_channels=8)
>>> d = DCGANDiscriminator((1, 28, 28), base_channels=8)
>>> x = g(torch.zeros(2, 16))
>>> tuple(x.shape), tuple(d(x).shape)
((2, 1, 28, 28), (2,))
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from probforge.errors import ShapeError, ValidationError
from probforge.validate import check_choice, check_int

from .checks import check_event_shape, check_num_classes, check_sizes

__all__ = [
    "ConvDecoder",
    "ConvEncoder",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "LeakyReLU02",
    "MLPDiscriminator",
    "MLPGenerator",
    "dcgan_init_",
    "dcgan_stages",
    "mlp",
    "one_hot",
    "seeded",
]


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with the CPU global RNG seeded by ``seed``, restoring its state afterwards.

    Module constructors in torch draw initial weights from the global RNG; building them inside
    this block makes the weights a function of ``seed`` and leaves the caller's RNG untouched.
    """
    seed = check_int(seed, "seed")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def one_hot(y: Tensor, num_classes: int, like: Tensor) -> Tensor:
    """One-hot float encoding of labels ``y`` (B,) in ``like``'s dtype and device; checks range."""
    num_classes = check_int(num_classes, "one_hot num_classes", minimum=1)
    if not isinstance(y, Tensor):
        raise ValidationError("labels", "must be a torch.Tensor of class indices",
                              found=type(y).__name__)
    if y.dim() != 1:
        raise ShapeError("labels", "must be a 1-D integer tensor (B,)", found=tuple(y.shape))
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValidationError("labels", "must be integers (class indices)", found=y.dtype)
    if y.numel() and bool(((y < 0) | (y >= num_classes)).any()):
        raise ValidationError("labels", f"must lie in [0, {num_classes - 1}]",
                              found=(int(y.min()), int(y.max())))
    return F.one_hot(y.long(), num_classes).to(dtype=like.dtype, device=like.device)


def _check_input(name: str, x: Tensor, shape: tuple[int, ...], what: str = "input") -> None:
    """Shape-only check of a network input (no host synchronisation): (B, *shape)."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise ValidationError(f"{name} {what}", "must be a floating-point tensor",
                              found=getattr(x, "dtype", type(x).__name__))
    if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        raise ShapeError(f"{name} {what}", f"must be (B, {', '.join(map(str, shape))})",
                         found=tuple(x.shape))


def _check_cond(name: str, num_classes: int | None, y: Tensor | None, batch: int) -> None:
    if num_classes is None and y is not None:
        raise ValidationError(name, "got labels but the network is unconditional",
                              fix="build it with num_classes=... or pass y=None")
    if num_classes is not None:
        if y is None:
            raise ValidationError(name, "is conditional: labels y (B,) are required")
        if y.shape[:1] != (batch,):
            raise ShapeError(name, f"labels must be ({batch},)", found=tuple(y.shape))


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU,
        out_activation: nn.Module | None = None) -> nn.Sequential:
    """``Linear -> act -> ... -> Linear [-> out_activation]`` through ``sizes``.

    Parameters
    ----------
    sizes : sequence of int
        ``(in, hidden..., out)``, at least two entries.
    activation : nn.Module class
        Hidden activation.
    out_activation : nn.Module, optional

    Returns
    -------
    nn.Sequential
    """
    sizes = check_sizes(sizes, "mlp sizes")
    if len(sizes) < 2:
        raise ValidationError("mlp", "sizes must list at least input and output sizes, all >= 1",
                              found=list(sizes))
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(_pairs(sizes)):
        layers.append(nn.Linear(int(a), int(b)))
        if i < len(sizes) - 2:
            layers.append(activation())
    if out_activation is not None:
        layers.append(out_activation)
    return nn.Sequential(*layers)


def _pairs(s: Sequence[int]) -> list[tuple[int, int]]:
    return list(itertools.pairwise(s))


class LeakyReLU02(nn.LeakyReLU):
    """LeakyReLU with the DCGAN slope 0.2 (a class, so that :func:`mlp` can build it)."""

    def __init__(self) -> None:
        super().__init__(0.2)


def _image_shape(name: str, event_shape: Sequence[int]) -> tuple[int, int, int]:
    event_shape = check_event_shape(event_shape, f"{name} event_shape")
    if len(event_shape) != 3:
        raise ShapeError(name, "needs an image event shape (C, H, W)", found=tuple(event_shape))
    c, h, w = event_shape
    if h != w:
        raise ShapeError(name, "needs square images", found=(c, h, w),
                         fix="use the MLP architecture for non-square data")
    return c, h, w


def _down_sizes(name: str, side: int, stages: int) -> list[int]:
    sizes = [side]
    for _ in range(stages):
        if sizes[-1] < 2:
            raise ShapeError(name, f"image side {side} is too small for {stages} stride-2 stages",
                             fix="use fewer channel stages")
        sizes.append(sizes[-1] // 2)
    return sizes


class ConvEncoder(nn.Module):
    """Stride-2 conv stages (kernel 4, padding 1; BN + LeakyReLU) then a linear head.

    Parameters
    ----------
    event_shape : (C, H, W)
    out_dim : int
        Output features (a VAE uses ``2 * latent_dim``).
    channels : sequence of int
        Channels of each stage; each halves the side (28 -> 14 -> 7, 8 -> 4 -> 2).
    num_classes : int, optional
        Conditional encoder: the one-hot label joins the flattened features before the head.

    Shapes: ``forward(x (B, C, H, W), y (B,) | None) -> (B, out_dim)``.
    """

    def __init__(self, event_shape: Sequence[int], out_dim: int,
                 channels: Sequence[int] = (32, 64), num_classes: int | None = None) -> None:
        super().__init__()
        c, h, w = _image_shape("ConvEncoder", event_shape)
        out_dim = check_int(out_dim, "ConvEncoder out_dim", minimum=1)
        channels = check_sizes(channels, "ConvEncoder channels", allow_empty=False)
        num_classes = check_num_classes(num_classes, "ConvEncoder num_classes")
        self.event_shape = (c, h, w)
        sides = _down_sizes("ConvEncoder", h, len(channels))
        layers: list[nn.Module] = []
        prev = c
        for i, ch in enumerate(channels):
            layers.append(nn.Conv2d(prev, ch, 4, 2, 1))
            if i > 0:
                layers.append(nn.BatchNorm2d(ch))
            layers.append(nn.LeakyReLU(0.2))
            prev = ch
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.num_classes = num_classes
        feat = prev * sides[-1] ** 2 + (num_classes or 0)
        self.head = nn.Linear(feat, out_dim)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        _check_input("ConvEncoder", x, self.event_shape)
        _check_cond("ConvEncoder", self.num_classes, y, x.shape[0])
        f = self.features(x)
        if self.num_classes is not None and y is not None:
            f = torch.cat([f, one_hot(y, self.num_classes, f)], -1)
        out: Tensor = self.head(f)
        return out


class ConvDecoder(nn.Module):
    """Linear stem to ``channels[0]`` maps of side ``H / 2^n``, then stride-2 transposed convs.

    Parameters
    ----------
    in_dim : int
        Latent size.
    event_shape : (C, H, W)
    out_per_channel : int
        Outputs per pixel channel (1 for Bernoulli logits or Gaussian means, K for K-category
        logits); the output has ``C * out_per_channel`` channels.
    channels : sequence of int
        Channels after the stem and after each hidden up-stage; ``len(channels)`` stride-2 stages.
    num_classes : int, optional
        Conditional decoder: the one-hot label is concatenated to ``z``.

    Shapes: ``forward(z (B, in_dim), y (B,) | None) -> (B, C * out_per_channel, H, W)``.
    """

    def __init__(self, in_dim: int, event_shape: Sequence[int], out_per_channel: int = 1,
                 channels: Sequence[int] = (64, 32), num_classes: int | None = None) -> None:
        super().__init__()
        c, h, _ = _image_shape("ConvDecoder", event_shape)
        in_dim = check_int(in_dim, "ConvDecoder in_dim", minimum=1)
        out_per_channel = check_int(out_per_channel, "ConvDecoder out_per_channel", minimum=1)
        channels = check_sizes(channels, "ConvDecoder channels", allow_empty=False)
        num_classes = check_num_classes(num_classes, "ConvDecoder num_classes")
        self.in_dim = in_dim
        n = len(channels)
        if n < 1 or h % (2**n):
            raise ShapeError("ConvDecoder", f"image side {h} must be divisible by 2^{n} "
                             f"for {n} stride-2 stages", fix="change the number of channels")
        self.side0 = h // 2**n
        self.ch0 = int(channels[0])
        self.num_classes = num_classes
        self.stem = nn.Sequential(
            nn.Linear(in_dim + (num_classes or 0), self.ch0 * self.side0**2), nn.ReLU())
        layers: list[nn.Module] = []
        outs = [*list(channels[1:]), c * out_per_channel]
        prev = self.ch0
        for i, ch in enumerate(outs):
            layers.append(nn.ConvTranspose2d(prev, ch, 4, 2, 1))
            if i < len(outs) - 1:
                layers += [nn.BatchNorm2d(ch), nn.ReLU()]
            prev = ch
        self.up = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        _check_input("ConvDecoder", z, (self.in_dim,), "z")
        _check_cond("ConvDecoder", self.num_classes, y, z.shape[0])
        if self.num_classes is not None and y is not None:
            z = torch.cat([z, one_hot(y, self.num_classes, z)], -1)
        h = self.stem(z).reshape(z.shape[0], self.ch0, self.side0, self.side0)
        out: Tensor = self.up(h)
        return out


def dcgan_stages(side: int) -> tuple[int, int]:
    """``(s0, n)``: the DCGAN's first feature-map side and its number of stride-2 stages.

    The side is halved while it stays even, the half is >= 2 and at most 4 stages are used:
    28 -> (7, 2), 8 -> (2, 2), 64 -> (4, 4) (the textbook's 4x4x1024 -> 64x64 generator).
    """
    side = check_int(side, "DCGAN image side", minimum=1)
    s0, n = side, 0
    while s0 % 2 == 0 and s0 // 2 >= 2 and n < 4:
        s0 //= 2
        n += 1
    if n == 0:
        raise ShapeError("DCGAN", "image side must be even (at least one stride-2 stage)",
                         found=side, fix="use the MLP architecture")
    return s0, n


def dcgan_init_(module: nn.Module) -> nn.Module:
    """Radford et al.'s init in place: conv weights ``N(0, 0.02)``, BN ``N(1, 0.02)``, biases 0.

    Draws from the global RNG: call it inside :func:`seeded`.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


class DCGANGenerator(nn.Module):
    """DCGAN generator: ``z (B, latent) -> image (B, C, H, W)`` in ``[-1, 1]`` (Tanh).

    Parameters
    ----------
    latent_dim : int
    event_shape : (C, H, W)
        Square; the side sets the stages (:func:`dcgan_stages`).
    base_channels : int
        Channels before the output layer; doubled at each earlier stage (the textbook's
        1024 -> 512 -> 256 -> 128 is ``base_channels=128`` at 64x64).
    num_classes : int, optional
        Conditional generator (one-hot label concatenated to ``z``).
    """

    def __init__(self, latent_dim: int, event_shape: Sequence[int], base_channels: int = 64,
                 num_classes: int | None = None) -> None:
        super().__init__()
        c, h, _ = _image_shape("DCGANGenerator", event_shape)
        latent_dim = check_int(latent_dim, "DCGANGenerator latent_dim", minimum=1)
        base_channels = check_int(base_channels, "DCGANGenerator base_channels", minimum=1)
        num_classes = check_num_classes(num_classes, "DCGANGenerator num_classes")
        s0, n = dcgan_stages(h)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        in_ch = latent_dim + (num_classes or 0)
        ch = base_channels * 2 ** (n - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(in_ch, ch, s0, 1, 0, bias=False),
                                   nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, c, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        _check_input("DCGANGenerator", z, (self.latent_dim,), "z")
        _check_cond("DCGANGenerator", self.num_classes, y, z.shape[0])
        if self.num_classes is not None and y is not None:
            z = torch.cat([z, one_hot(y, self.num_classes, z)], -1)
        out: Tensor = self.net(z[:, :, None, None])
        return out


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator / critic: ``x (B, C, H, W) -> logit (B,)`` (linear output).

    Parameters
    ----------
    event_shape : (C, H, W)
    base_channels : int
        Channels of the first stage, doubled at each later one.
    num_classes : int, optional
        Conditional: the one-hot label enters as ``num_classes`` constant input maps.
    norm : {"batch", "layer", "none"}
        Normalisation of the hidden stages: batch norm (DCGAN); "layer" (one-group GroupNorm)
        for WGAN-GP, whose per-sample gradient penalty is invalid under batch norm.
    """

    def __init__(self, event_shape: Sequence[int], base_channels: int = 64,
                 num_classes: int | None = None, norm: str = "batch") -> None:
        super().__init__()
        c, h, w = _image_shape("DCGANDiscriminator", event_shape)
        base_channels = check_int(base_channels, "DCGANDiscriminator base_channels", minimum=1)
        num_classes = check_num_classes(num_classes, "DCGANDiscriminator num_classes")
        self.event_shape = (c, h, w)
        if norm not in ("batch", "layer", "none"):
            raise ValidationError("DCGANDiscriminator", "norm must be 'batch', 'layer' or 'none'",
                                  found=repr(norm))
        s0, n = dcgan_stages(h)
        self.num_classes = num_classes
        ch = base_channels
        layers: list[nn.Module] = [nn.Conv2d(c + (num_classes or 0), ch, 4, 2, 1),
                                   nn.LeakyReLU(0.2, True)]
        for _ in range(n - 1):
            layers.append(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=norm == "none"))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(ch * 2))
            elif norm == "layer":
                layers.append(nn.GroupNorm(1, ch * 2))
            layers.append(nn.LeakyReLU(0.2, True))
            ch *= 2
        layers.append(nn.Conv2d(ch, 1, s0, 1, 0))
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        _check_input("DCGANDiscriminator", x, self.event_shape)
        _check_cond("DCGANDiscriminator", self.num_classes, y, x.shape[0])
        if self.num_classes is not None and y is not None:
            maps = one_hot(y, self.num_classes, x)[:, :, None, None]
            x = torch.cat([x, maps.expand(-1, -1, x.shape[2], x.shape[3])], 1)
        out: Tensor = self.net(x)
        return out.reshape(-1)


class MLPGenerator(nn.Module):
    """MLP generator ``z (B, latent) -> x (B, *event_shape)`` (ReLU hidden layers).

    Parameters
    ----------
    latent_dim : int
    event_shape : sequence of int
    hidden : sequence of int
    num_classes : int, optional
    output : {"linear", "tanh"}
        Output activation ("tanh" for images scaled to ``[-1, 1]``).
    """

    def __init__(self, latent_dim: int, event_shape: Sequence[int],
                 hidden: Sequence[int] = (128, 128), num_classes: int | None = None,
                 output: str = "linear") -> None:
        super().__init__()
        check_choice(output, "MLPGenerator output", ("linear", "tanh"))
        latent_dim = check_int(latent_dim, "MLPGenerator latent_dim", minimum=1)
        event_shape = check_event_shape(event_shape, "MLPGenerator event_shape")
        hidden = check_sizes(hidden, "MLPGenerator hidden")
        num_classes = check_num_classes(num_classes, "MLPGenerator num_classes")
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.event_shape = tuple(int(v) for v in event_shape)
        size = math.prod(self.event_shape)
        self.net = mlp([latent_dim + (num_classes or 0), *hidden, size],
                       out_activation=nn.Tanh() if output == "tanh" else None)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        _check_input("MLPGenerator", z, (self.latent_dim,), "z")
        _check_cond("MLPGenerator", self.num_classes, y, z.shape[0])
        if self.num_classes is not None and y is not None:
            z = torch.cat([z, one_hot(y, self.num_classes, z)], -1)
        out: Tensor = self.net(z)
        return out.reshape(z.shape[0], *self.event_shape)


class MLPDiscriminator(nn.Module):
    """MLP discriminator / critic ``x (B, *event) -> logit (B,)`` (LeakyReLU 0.2, linear output).

    Parameters
    ----------
    event_shape : sequence of int
    hidden : sequence of int
    num_classes : int, optional
    """

    def __init__(self, event_shape: Sequence[int], hidden: Sequence[int] = (128, 128),
                 num_classes: int | None = None) -> None:
        super().__init__()
        self.event_shape = check_event_shape(event_shape, "MLPDiscriminator event_shape")
        hidden = check_sizes(hidden, "MLPDiscriminator hidden")
        num_classes = check_num_classes(num_classes, "MLPDiscriminator num_classes")
        self.num_classes = num_classes
        size = math.prod(self.event_shape)
        self.net = mlp([size + (num_classes or 0), *hidden, 1], activation=LeakyReLU02)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        _check_input("MLPDiscriminator", x, self.event_shape)
        _check_cond("MLPDiscriminator", self.num_classes, y, x.shape[0])
        f = x.reshape(x.shape[0], -1)
        if self.num_classes is not None and y is not None:
            f = torch.cat([f, one_hot(y, self.num_classes, f)], -1)
        out: Tensor = self.net(f)
        return out.reshape(-1)
