"""PyTorch (eager) reference of our models and train step, for speed comparisons only.

Benchmark-only: needs ``torch`` (``pip install -e ".[bench]"``); nothing in ``gan_jax`` imports
this module. ``python -m experiments.benchmark`` times it against the JAX step in interleaved
rounds.

The networks are the ones of :mod:`gan_jax.models.architectures` (every entry of ``ARCHITECTURES`` but dcgan32), layer
for layer and parameter for parameter (``thesis``: SPEC 3A, G 6,675,009 and D 1,102,721
parameters), in PyTorch's NCHW convention but flattening / unflattening in the NHWC order of our
Flax models, so that :func:`load_flax_variables` copies a Flax parameter tree in and the two
compute the same function (all but ``dcgan64``, written as the PyTorch DCGAN tutorial writes it,
with its projection as a ConvTranspose2d). Initialisation follows ours too (thesis:
Xavier-uniform for G's Linear and ConvTranspose2d weights, LeCun-normal for D; DCGAN: N(0, 0.02),
BatchNorm scales N(1, 0.02); seed 003's MLP: Xavier-uniform; Goodfellow's MLP: U(-0.05, 0.05)
for G, U(-0.005, 0.005) for D; zero biases).

:class:`TorchTrainStep` is one iteration of Algorithm 1 as :func:`gan_jax.training.steps.train_step_fn`
does it: k times (fresh real minibatch of random indices into an in-memory tensor dataset,
fresh z, G forward in train mode without gradient, BCE-with-logits loss in softplus form,
Adam step on D), then fresh z and a G step against the updated D (D's parameters frozen for
that backward pass, so no D weight gradients are computed; JAX only differentiates w.r.t. G
either). Known differences, none in the training computation: PyTorch's BatchNorm updates its
running variance with the unbiased batch variance, Flax with the biased one; D's running
averages are also updated by the G step's forward pass (ours discards those); dropout
(``goodfellow_mlp``) draws its masks from PyTorch's stream.

Written the way a competent PyTorch user makes it fast on CPU: default thread count,
``zero_grad(set_to_none=True)``, channels_last memory format for the convolutional parts
(PERF-NOTES: +17-19% on the thesis GAN) and a choice of Adam implementation (``fused``,
``foreach`` or ``forloop``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ADAM_IMPLEMENTATIONS = ("fused", "foreach", "forloop")

# PyTorch's BatchNorm defaults; gan_jax.models.architectures uses the same (Flax momentum 0.9 = 1 - 0.1).
_BN_MOMENTUM = 0.1
_BN_EPSILON = 1e-5


def _xavier_uniform_(module: nn.Module) -> nn.Module:
    nn.init.xavier_uniform_(module.weight)
    nn.init.zeros_(module.bias)
    return module


def _lecun_normal_(module: nn.Module) -> nn.Module:
    """Flax's default kernel init: truncated normal (2 std) with variance 1 / fan_in."""
    fan_in = module.weight[0].numel()
    # Flax divides by the std of a standard normal truncated to [-2, 2].
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
    nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
    nn.init.zeros_(module.bias)
    return module


class ThesisGenerator(nn.Module):
    """SPEC 3A generator: z [B, 96] -> images [B, 1, 28, 28] in [-1, 1].

    Linear 96->1024, ReLU, BN1d, Linear 1024->7*7*128, ReLU, BN1d, unflatten to 7x7x128,
    ConvTranspose2d(128, 64, 4, 2, 1), ReLU, BN2d, ConvTranspose2d(64, 1, 4, 2, 1), tanh.
    The 6272 features are read as [7, 7, 128] (NHWC, as in Flax) and permuted to NCHW, which
    is a free view when ``channels_last`` (the tensor is then NHWC in memory).
    """

    def __init__(self, latent_dim: int = 96, features: int = 1024, base_channels: int = 128,
                 out_channels: int = 1, channels_last: bool = False):
        super().__init__()
        self.base_channels, self.channels_last = base_channels, channels_last
        self.fc1 = _xavier_uniform_(nn.Linear(latent_dim, features))
        self.bn1 = nn.BatchNorm1d(features, eps=_BN_EPSILON, momentum=_BN_MOMENTUM)
        self.fc2 = _xavier_uniform_(nn.Linear(features, 7 * 7 * base_channels))
        self.bn2 = nn.BatchNorm1d(7 * 7 * base_channels, eps=_BN_EPSILON, momentum=_BN_MOMENTUM)
        half = base_channels // 2
        self.deconv1 = _xavier_uniform_(nn.ConvTranspose2d(base_channels, half, 4, 2, 1))
        self.bn3 = nn.BatchNorm2d(half, eps=_BN_EPSILON, momentum=_BN_MOMENTUM)
        self.deconv2 = _xavier_uniform_(nn.ConvTranspose2d(half, out_channels, 4, 2, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.bn1(F.relu(self.fc1(z)))
        x = self.bn2(F.relu(self.fc2(x)))
        x = x.view(x.shape[0], 7, 7, self.base_channels).permute(0, 3, 1, 2)
        if not self.channels_last:
            x = x.contiguous()
        x = self.bn3(F.relu(self.deconv1(x)))
        return torch.tanh(self.deconv2(x))


class ThesisDiscriminator(nn.Module):
    """SPEC 3A discriminator: images [B, 1, 28, 28] -> logits [B].

    Conv2d(1, 32, 5), LeakyReLU(0.01), MaxPool2d(2), Conv2d(32, 64, 5), LeakyReLU(0.01),
    MaxPool2d(2), flatten (in NHWC order, as in Flax; a free view when ``channels_last``),
    Linear(1024, 1024), LeakyReLU(0.01), Linear(1024, 1).
    """

    def __init__(self, in_channels: int = 1, negative_slope: float = 0.01,
                 channels_last: bool = False):
        super().__init__()
        self.negative_slope, self.channels_last = negative_slope, channels_last
        self.conv1 = _lecun_normal_(nn.Conv2d(in_channels, 32, 5))
        self.conv2 = _lecun_normal_(nn.Conv2d(32, 64, 5))
        self.fc1 = _lecun_normal_(nn.Linear(4 * 4 * 64, 4 * 4 * 64))
        self.fc2 = _lecun_normal_(nn.Linear(4 * 4 * 64, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = lambda h: F.leaky_relu(h, self.negative_slope)  # noqa: E731
        x = F.max_pool2d(act(self.conv1(x)), 2)
        x = F.max_pool2d(act(self.conv2(x)), 2)
        x = x.permute(0, 2, 3, 1).flatten(1)  # NHWC order; a view for channels_last
        x = act(self.fc1(x))
        return self.fc2(x)[:, 0]


def _dcgan_init_(module: nn.Module) -> nn.Module:
    """Radford et al.'s init, as in the PyTorch DCGAN tutorial: conv N(0, .02), BN N(1, .02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


class DCGAN64Generator(nn.Module):
    """The PyTorch DCGAN tutorial's generator (ngf 64): z [B, 100] -> images [B, 3, 64, 64]."""

    def __init__(self, latent_dim: int = 100, channels_last: bool = False):
        super().__init__()
        layers, cin = [], latent_dim
        for i, cout in enumerate((512, 256, 128, 64)):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 1 if i == 0 else 2, 0 if i == 0 else 1,
                                          bias=False),
                       nn.BatchNorm2d(cout, eps=_BN_EPSILON, momentum=_BN_MOMENTUM), nn.ReLU(True)]
            cin = cout
        layers += [nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = _dcgan_init_(nn.Sequential(*layers))
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z.view(z.shape[0], z.shape[1], 1, 1).contiguous(memory_format=self.memory_format)
        return self.net(x)


class DCGAN64Discriminator(nn.Module):
    """The PyTorch DCGAN tutorial's discriminator (ndf 64), returning logits [B]."""

    def __init__(self, channels_last: bool = False):
        super().__init__()
        layers, cin = [], 3
        for i, cout in enumerate((64, 128, 256, 512)):
            layers.append(nn.Conv2d(cin, cout, 4, 2, 1, bias=False))
            if i > 0:
                layers.append(nn.BatchNorm2d(cout, eps=_BN_EPSILON, momentum=_BN_MOMENTUM))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            cin = cout
        layers.append(nn.Conv2d(512, 1, 4, 1, 0, bias=False))
        self.net = _dcgan_init_(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


class DCGANGenerator(nn.Module):
    """:class:`gan_jax.models.dcgan.DCGANGenerator`: z [B, latent] -> images [B, C, H, W].

    Bias-free Linear(latent, s*s*c0) read as [s, s, c0] (NHWC, as in Flax) and permuted to NCHW,
    BN2d, ReLU, then per further channel count ConvTranspose2d(4, 2, 1, bias=False), BN2d,
    ReLU, and a last ConvTranspose2d(4, 2, 1, bias=False) to ``out_channels``, tanh.
    Weights ~ N(0, 0.02) (the projection too), BatchNorm scales ~ N(1, 0.02).
    """

    def __init__(self, latent_dim: int = 100, base_size: int = 7,
                 channels: tuple[int, ...] = (256, 128), out_channels: int = 1,
                 channels_last: bool = False):
        super().__init__()
        self.base_size, self.base_channels = base_size, channels[0]
        self.channels_last = channels_last
        self.project = nn.Linear(latent_dim, base_size * base_size * channels[0], bias=False)
        nn.init.normal_(self.project.weight, 0.0, 0.02)
        self.bns = nn.ModuleList(nn.BatchNorm2d(c, eps=_BN_EPSILON, momentum=_BN_MOMENTUM)
                                 for c in channels)
        self.deconvs = nn.ModuleList(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False)
                                     for cin, cout in zip(channels, (*channels[1:], out_channels)))
        _dcgan_init_(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s = self.base_size
        x = self.project(z).view(z.shape[0], s, s, self.base_channels).permute(0, 3, 1, 2)
        if not self.channels_last:
            x = x.contiguous()
        x = F.relu(self.bns[0](x))
        for deconv, bn in zip(self.deconvs[:-1], self.bns[1:]):
            x = F.relu(bn(deconv(x)))
        return torch.tanh(self.deconvs[-1](x))


class DCGANDiscriminator(nn.Module):
    """:class:`gan_jax.models.dcgan.DCGANDiscriminator` (without dropout): images [B, C, H, W]
    -> logits [B].

    Per layer Conv2d(kernel, 2, 1, bias=False), BN2d (not on the input layer), LeakyReLU(0.2);
    then a bias-free ``final_kernel`` valid Conv2d to one logit. Weights ~ N(0, 0.02).
    """

    def __init__(self, in_channels: int = 1, channels: tuple[int, ...] = (64, 128, 256),
                 kernels: tuple[int, ...] = (4, 4, 3), final_kernel: int = 4,
                 negative_slope: float = 0.2, channels_last: bool = False):
        super().__init__()
        del channels_last  # Follows the input's memory format.
        self.negative_slope = negative_slope
        self.convs = nn.ModuleList(nn.Conv2d(cin, cout, k, 2, 1, bias=False) for cin, cout, k
                                   in zip((in_channels, *channels[:-1]), channels, kernels))
        self.bns = nn.ModuleList(nn.BatchNorm2d(c, eps=_BN_EPSILON, momentum=_BN_MOMENTUM)
                                 for c in channels[1:])
        self.final = nn.Conv2d(channels[-1], 1, final_kernel, bias=False)
        _dcgan_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.convs[0](x), self.negative_slope)
        for conv, bn in zip(self.convs[1:], self.bns):
            x = F.leaky_relu(bn(conv(x)), self.negative_slope)
        return self.final(x).flatten()


def _init_linear_(module: nn.Linear, init: Callable[[torch.Tensor], object]) -> nn.Linear:
    init(module.weight)
    nn.init.zeros_(module.bias)
    return module


def _uniform(scale: float) -> Callable[[torch.Tensor], object]:
    """pylearn2's ``irange``, as :mod:`gan_jax.models.mlp`: U(-scale, scale)."""
    return lambda w: nn.init.uniform_(w, -scale, scale)


def _to_images(x: torch.Tensor) -> torch.Tensor:
    """[B, 784] in Flax's [28, 28, 1] (NHWC) order -> [B, 1, 28, 28]."""
    return x.view(x.shape[0], 28, 28, 1).permute(0, 3, 1, 2)


def _flatten_nhwc(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, H*W*C], flattened in Flax's NHWC order."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)


class MLPGenerator(nn.Module):
    """Seed 003 (:class:`gan_jax.models.mlp.MLPGenerator`): z [B, 100] -> 128 ReLU -> 784 tanh
    -> [B, 1, 28, 28]; Xavier-uniform weights, zero biases."""

    def __init__(self, latent_dim: int = 100, hidden: int = 128, channels_last: bool = False):
        super().__init__()
        del channels_last  # No convolutions.
        self.fc1 = _init_linear_(nn.Linear(latent_dim, hidden), nn.init.xavier_uniform_)
        self.fc2 = _init_linear_(nn.Linear(hidden, 28 * 28), nn.init.xavier_uniform_)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return _to_images(torch.tanh(self.fc2(F.relu(self.fc1(z)))))


class MLPDiscriminator(nn.Module):
    """Seed 003 (:class:`gan_jax.models.mlp.MLPDiscriminator`): [B, 1, 28, 28] -> 784 -> 128
    ReLU -> logits [B]; Xavier-uniform weights, zero biases."""

    def __init__(self, hidden: int = 128, channels_last: bool = False):
        super().__init__()
        del channels_last
        self.fc1 = _init_linear_(nn.Linear(28 * 28, hidden), nn.init.xavier_uniform_)
        self.fc2 = _init_linear_(nn.Linear(hidden, 1), nn.init.xavier_uniform_)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(_flatten_nhwc(x))))[:, 0]


class GoodfellowGenerator(nn.Module):
    """Goodfellow et al. 2014 (:class:`gan_jax.models.mlp.GoodfellowGenerator`): z [B, 100] ->
    1200 ReLU -> 1200 ReLU -> 784 tanh -> [B, 1, 28, 28]; weights U(-0.05, 0.05)."""

    def __init__(self, latent_dim: int = 100, hidden: int = 1200, channels_last: bool = False):
        super().__init__()
        del channels_last
        init = _uniform(0.05)
        self.fc1 = _init_linear_(nn.Linear(latent_dim, hidden), init)
        self.fc2 = _init_linear_(nn.Linear(hidden, hidden), init)
        self.fc3 = _init_linear_(nn.Linear(hidden, 28 * 28), init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc2(F.relu(self.fc1(z))))
        return _to_images(torch.tanh(self.fc3(x)))


class Maxout(nn.Module):
    """:class:`gan_jax.models.mlp.Maxout`: Linear(in, units * pieces), output j = max over the
    pieces ``j * pieces ... j * pieces + pieces - 1`` (unit-major, as Flax's reshape)."""

    def __init__(self, in_features: int, units: int, pieces: int, scale: float = 0.005):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = _init_linear_(nn.Linear(in_features, units * pieces), _uniform(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(x.shape[0], self.units, self.pieces).amax(dim=-1)


class GoodfellowDiscriminator(nn.Module):
    """Goodfellow et al. 2014 (:class:`gan_jax.models.mlp.GoodfellowDiscriminator`):
    [B, 1, 28, 28] -> dropout 0.2 -> maxout 240x5 -> dropout 0.5 -> maxout 240x5 -> dropout 0.5
    -> logits [B]; weights U(-0.005, 0.005). Dropout (inverted, as Flax's) is active in
    ``train()`` mode; its masks are PyTorch's own stream, not ours."""

    def __init__(self, units: int = 240, pieces: int = 5, channels_last: bool = False):
        super().__init__()
        del channels_last
        self.drop_in = nn.Dropout(0.2)
        self.maxout1 = Maxout(28 * 28, units, pieces)
        self.drop1 = nn.Dropout(0.5)
        self.maxout2 = Maxout(units, units, pieces)
        self.drop2 = nn.Dropout(0.5)
        self.fc = _init_linear_(nn.Linear(units, 1), _uniform(0.005))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxout1(self.drop_in(_flatten_nhwc(x)))
        x = self.maxout2(self.drop1(x))
        return self.fc(self.drop2(x))[:, 0]


@dataclasses.dataclass(frozen=True)
class TorchArchitecture:
    """A pair of PyTorch networks; ``image_shape`` is NCHW without the batch."""

    generator: Callable[..., nn.Module]
    discriminator: Callable[..., nn.Module]
    image_shape: tuple[int, int, int]


# Keyed like gan_jax.ARCHITECTURES (every one of them has a reference).
TORCH_ARCHITECTURES: dict[str, TorchArchitecture] = {
    "thesis": TorchArchitecture(ThesisGenerator, ThesisDiscriminator, (1, 28, 28)),
    # The same networks (ours in stock Flax layers); one PyTorch reference serves both.
    "thesis_plain": TorchArchitecture(ThesisGenerator, ThesisDiscriminator, (1, 28, 28)),
    "mlp": TorchArchitecture(MLPGenerator, MLPDiscriminator, (1, 28, 28)),
    "goodfellow_mlp": TorchArchitecture(GoodfellowGenerator, GoodfellowDiscriminator,
                                        (1, 28, 28)),
    "dcgan": TorchArchitecture(DCGANGenerator, DCGANDiscriminator, (1, 28, 28)),
    "dcgan64": TorchArchitecture(DCGAN64Generator, DCGAN64Discriminator, (3, 64, 64)),
}


def get_torch_architecture(name: str) -> TorchArchitecture:
    if name not in TORCH_ARCHITECTURES:
        raise ValueError(f"No PyTorch reference for architecture {name!r}; "
                         f"available: {sorted(TORCH_ARCHITECTURES)}")
    return TORCH_ARCHITECTURES[name]


def count_params(module: nn.Module) -> int:
    """Trainable parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in module.parameters())


# Objectives on logits, as gan_jax.games.losses (softplus form; finite for any finite logit).
def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


GENERATOR_LOSSES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "minimax": lambda fake_logits: -F.softplus(fake_logits).mean(),
    "nonsaturating": lambda fake_logits: F.softplus(-fake_logits).mean(),
}

PRIORS: dict[str, Callable[[int, int], torch.Tensor]] = {
    "uniform": lambda n, d: torch.rand(n, d) * 2 - 1,
    "normal": lambda n, d: torch.randn(n, d),
}


def _adam(params, lr: float, b1: float, b2: float, implementation: str) -> torch.optim.Adam:
    if implementation not in ADAM_IMPLEMENTATIONS:
        raise ValueError(f"adam implementation must be one of {ADAM_IMPLEMENTATIONS}, "
                         f"got {implementation!r}")
    kwargs = {"fused": {"fused": True}, "foreach": {"foreach": True},
              "forloop": {"foreach": False}}[implementation]
    # eps 1e-8 as optax.adam.
    return torch.optim.Adam(params, lr=lr, betas=(b1, b2), eps=1e-8, **kwargs)


class TorchTrainStep:
    """The GAN game in PyTorch eager: networks, Adam optimisers, dataset; ``step()`` = one
    Algorithm 1 iteration.

    Args:
      config: a :class:`gan_jax.Config` (or anything with its fields ``arch``, ``objective``,
        ``prior``, ``latent_dim``, ``batch_size``, ``disc_steps``, ``learning_rate``, ``b1``,
        ``b2``).
      images: the training set, float32 ``[N, H, W, C]`` (NHWC, as gan_jax takes it) in
        [-1, 1]; held in memory as an NCHW tensor.
      channels_last: channels_last memory format for the networks and data.
      adam: ``fused``, ``foreach`` or ``forloop``.
      seed: ``torch.manual_seed`` for initialisation and the random stream.
    """

    def __init__(self, config, images: np.ndarray, channels_last: bool = True,
                 adam: str = "fused", seed: int = 0):
        torch.manual_seed(seed)
        arch = get_torch_architecture(config.arch)
        self.config, self.channels_last, self.adam = config, channels_last, adam
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.generator = arch.generator(latent_dim=config.latent_dim, channels_last=channels_last)
        self.discriminator = arch.discriminator(channels_last=channels_last)
        for net in (self.generator, self.discriminator):
            net.train()  # BatchNorm on batch statistics, as inside gan_jax's step
            net.to(memory_format=self.memory_format)
        if images.shape[1:] != (arch.image_shape[1], arch.image_shape[2], arch.image_shape[0]):
            raise ValueError(f"images of shape {images.shape[1:]} (NHWC) do not fit "
                             f"{config.arch} (NCHW {arch.image_shape})")
        if images.shape[0] < config.batch_size:
            raise ValueError(
                f"batch_size {config.batch_size} exceeds the {images.shape[0]} training images")
        self.images = torch.from_numpy(np.ascontiguousarray(images, np.float32)).permute(
            0, 3, 1, 2).contiguous(memory_format=self.memory_format)
        self.g_optimizer = _adam(self.generator.parameters(), config.learning_rate,
                                 config.b1, config.b2, adam)
        self.d_optimizer = _adam(self.discriminator.parameters(), config.learning_rate,
                                 config.b1, config.b2, adam)
        self.generator_loss = GENERATOR_LOSSES[config.objective]
        self.prior = PRIORS[config.prior]
        self.step_count = 0

    def describe(self) -> str:
        return (f"PyTorch {torch.__version__} eager, {torch.get_num_threads()} threads, "
                f"{'channels_last' if self.channels_last else 'contiguous (NCHW)'}, "
                f"{self.adam} Adam")

    def _sample_z(self) -> torch.Tensor:
        return self.prior(self.config.batch_size, self.config.latent_dim)

    def discriminator_update(self, real: torch.Tensor, z: torch.Tensor) -> dict:
        with torch.no_grad():
            fake = self.generator(z)  # train mode: BN batch statistics, running stats updated
        self.d_optimizer.zero_grad(set_to_none=True)
        real_logits = self.discriminator(real)
        fake_logits = self.discriminator(fake)
        loss = discriminator_loss(real_logits, fake_logits)
        loss.backward()
        self.d_optimizer.step()
        with torch.no_grad():
            return {"d_loss": loss.detach(), "d_real": torch.sigmoid(real_logits).mean(),
                    "d_fake": torch.sigmoid(fake_logits).mean()}

    def generator_update(self, z: torch.Tensor) -> dict:
        self.discriminator.requires_grad_(False)  # gradients w.r.t. G only
        try:
            self.g_optimizer.zero_grad(set_to_none=True)
            fake_logits = self.discriminator(self.generator(z))
            loss = self.generator_loss(fake_logits)
            loss.backward()
            self.g_optimizer.step()
        finally:
            self.discriminator.requires_grad_(True)
        with torch.no_grad():
            return {"g_loss": loss.detach(), "g_d_fake": torch.sigmoid(fake_logits).mean()}

    def step(self) -> dict:
        """One iteration; returns 0-d tensors ``d_loss d_real d_fake g_loss g_d_fake``."""
        n, batch_size = self.images.shape[0], self.config.batch_size
        for _ in range(self.config.disc_steps):
            idx = torch.randint(n, (batch_size,))
            real = self.images[idx].contiguous(memory_format=self.memory_format)
            d_metrics = self.discriminator_update(real, self._sample_z())
        g_metrics = self.generator_update(self._sample_z())
        self.step_count += 1
        return {**d_metrics, **g_metrics}


def step_flops(trainer: TorchTrainStep) -> float:
    """Floating-point operations of one ``trainer.step()`` by PyTorch's ``FlopCounterMode``
    (matrix products and convolutions; it advances the trainer by one step)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        trainer.step()
    return float(counter.get_total_flops())


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """PyTorch's float32 matrix-multiply rate on this machine (GFLOP/s, best of 3), as
    :func:`gan_jax.benchmark.matmul_gflops` measures JAX's."""
    a = torch.ones(size, size)
    a @ a
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best / 1e9


class TorchStepTimer:
    """:class:`TorchTrainStep` with the ``compile()`` / ``run(n)`` protocol of
    :func:`gan_jax.benchmark.interleave` (eager: ``compile()`` is just the first step, with
    oneDNN primitive creation and allocator warm-up)."""

    def __init__(self, config, images: np.ndarray, **kwargs):
        self.trainer = TorchTrainStep(config, images, **kwargs)
        self.metrics: Optional[dict] = None

    def describe(self) -> str:
        return self.trainer.describe()

    def compile(self) -> float:
        return self.run(1)

    def run(self, num_steps: int) -> float:
        step = self.trainer.step
        start = time.perf_counter()
        for _ in range(num_steps):
            metrics = step()
        elapsed = time.perf_counter() - start  # eager on CPU: the work is done on return
        self.metrics = metrics
        return elapsed


# PyTorch layer type -> the Flax module name it is auto-named after (``Dense_0``, ...).
_FLAX_NAMES = {nn.Linear: "Dense", nn.Conv2d: "Conv", nn.ConvTranspose2d: "ConvTranspose",
               nn.modules.batchnorm._BatchNorm: "BatchNorm", Maxout: "Maxout"}


def _flax_layers(module: nn.Module) -> dict[str, list[nn.Module]]:
    """``module``'s parameterised layers by Flax name, each list in call (= Flax) order.

    Containers (``ModuleList``, ``Sequential``) are looked through; parameter-free children
    (dropout, activations) have no Flax twin and are skipped.
    """
    layers: dict[str, list[nn.Module]] = {}
    for child in module.children():
        flax_name = next((name for kind, name in _FLAX_NAMES.items()
                          if isinstance(child, kind)), None)
        if flax_name is not None:
            layers.setdefault(flax_name, []).append(child)
        elif isinstance(child, (nn.ModuleList, nn.Sequential)):
            for name, mods in _flax_layers(child).items():
                layers.setdefault(name, []).extend(mods)
        elif any(True for _ in child.parameters()) or any(True for _ in child.buffers()):
            raise ValueError(f"No Flax twin for {type(child).__name__}")
    return layers


def load_flax_variables(module: nn.Module, params, batch_stats=None) -> nn.Module:
    """Copies a Flax parameter tree of :mod:`gan_jax.models.architectures` into the PyTorch twin (in place).

    Dense kernels ``[in, out]`` become Linear weights ``[out, in]``; Conv kernels HWIO become
    OIHW; our ConvTranspose kernels ``[kh, kw, out, in]`` (the strided convolution being
    transposed) become ConvTranspose2d weights ``[in, out, kh, kw]``; BatchNorm scale / bias /
    mean / var become weight / bias / running_mean / running_var; a ``Maxout_i`` scope's
    ``Dense_0`` becomes that :class:`Maxout`'s Linear (both keep the unit-major
    ``units * pieces`` output order, so no reordering is needed).

    Layers are matched by Flax's auto-names: the i-th layer of a kind in ``module``'s
    registration order is ``<Kind>_i``. ``batch_stats`` is needed when there is BatchNorm.
    """
    def copy(dst: torch.Tensor, src, transform=lambda x: x):
        src = transform(torch.from_numpy(np.array(src, np.float32)))
        if src.shape != dst.shape:  # copy_ would broadcast
            raise ValueError(f"Flax array of shape {tuple(src.shape)} for {tuple(dst.shape)}")
        dst.copy_(src)

    layers = _flax_layers(module)
    expected = {f"{name}_{i}" for name, mods in layers.items() for i in range(len(mods))}
    if expected != set(params):
        raise ValueError(f"Flax layers {sorted(params)} do not match {sorted(expected)}")
    with torch.no_grad():
        for kind, mods in layers.items():
            for i, layer in enumerate(mods):
                p = params[f"{kind}_{i}"]
                if kind == "Maxout":
                    load_flax_variables(layer, p)
                    continue
                if kind == "Dense":
                    copy(layer.weight, p["kernel"], lambda k: k.T)
                elif kind in ("Conv", "ConvTranspose"):
                    copy(layer.weight, p["kernel"], lambda k: k.permute(3, 2, 0, 1))
                else:
                    if batch_stats is None:
                        raise ValueError("BatchNorm layers need the Flax batch_stats")
                    stats = batch_stats[f"BatchNorm_{i}"]
                    copy(layer.weight, p["scale"])
                    copy(layer.running_mean, stats["mean"])
                    copy(layer.running_var, stats["var"])
                if "bias" in p:
                    copy(layer.bias, p["bias"])
    return module
