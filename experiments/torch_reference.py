"""PyTorch (eager) reference of our models and train step, for speed comparisons only.

Benchmark-only: needs ``torch`` (``pip install -e ".[bench]"``); nothing in ``gan_jax`` imports
this module. ``python -m experiments.benchmark`` times it against the JAX step in interleaved
rounds.

The networks are the ones of :mod:`gan_jax.models`, layer for layer and parameter for parameter
(``thesis``: SPEC 3A, G 6,675,009 and D 1,102,721 parameters), in PyTorch's NCHW convention but
flattening / unflattening in the NHWC order of our Flax models, so that
:func:`load_flax_variables` copies a Flax parameter tree in and the two compute the same
function. Initialisation follows ours too (Xavier-uniform for G's Linear and ConvTranspose2d
weights, LeCun-normal for D, zero biases).

:class:`TorchTrainStep` is one iteration of Algorithm 1 as :func:`gan_jax.steps.train_step_fn`
does it: k times (fresh real minibatch of random indices into an in-memory tensor dataset,
fresh z, G forward in train mode without gradient, BCE-with-logits loss in softplus form,
Adam step on D), then fresh z and a G step against the updated D (D's parameters frozen for
that backward pass, so no D weight gradients are computed; JAX only differentiates w.r.t. G
either). One known difference: PyTorch's BatchNorm updates its running variance with the
unbiased batch variance, Flax with the biased one; the training computation is the same.

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

# PyTorch's BatchNorm defaults; gan_jax.models uses the same (Flax momentum 0.9 = 1 - 0.1).
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


@dataclasses.dataclass(frozen=True)
class TorchArchitecture:
    """A pair of PyTorch networks; ``image_shape`` is NCHW without the batch."""

    generator: Callable[..., nn.Module]
    discriminator: Callable[..., nn.Module]
    image_shape: tuple[int, int, int]


# Keyed like gan_jax.ARCHITECTURES; dcgan (28) and the MLPs are still to follow.
TORCH_ARCHITECTURES: dict[str, TorchArchitecture] = {
    "thesis": TorchArchitecture(ThesisGenerator, ThesisDiscriminator, (1, 28, 28)),
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


# Objectives on logits, as gan_jax.losses (softplus form; finite for any finite logit).
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


def load_flax_variables(module: nn.Module, params, batch_stats=None) -> nn.Module:
    """Copies a Flax parameter tree of :mod:`gan_jax.models` into the PyTorch twin (in place).

    Dense kernels ``[in, out]`` become Linear weights ``[out, in]``; Conv kernels HWIO become
    OIHW; our ConvTranspose kernels ``[kh, kw, out, in]`` (the strided convolution being
    transposed) become ConvTranspose2d weights ``[in, out, kh, kw]``; BatchNorm scale / bias /
    mean / var become weight / bias / running_mean / running_var.
    """
    def t(x):
        return torch.from_numpy(np.array(x, np.float32))

    layers: dict[str, list[nn.Module]] = {"Linear": [], "Conv2d": [], "ConvTranspose2d": [],
                                          "BatchNorm": []}
    for child in module.children():
        kind = "BatchNorm" if isinstance(child, nn.modules.batchnorm._BatchNorm) \
            else type(child).__name__
        layers[kind].append(child)
    flax_names = {"Linear": "Dense", "Conv2d": "Conv", "ConvTranspose2d": "ConvTranspose",
                  "BatchNorm": "BatchNorm"}
    expected = {f"{flax_names[k]}_{i}" for k, mods in layers.items() for i in range(len(mods))}
    if expected != set(params):
        raise ValueError(f"Flax layers {sorted(params)} do not match {sorted(expected)}")
    with torch.no_grad():
        for kind, mods in layers.items():
            for i, layer in enumerate(mods):
                p = params[f"{flax_names[kind]}_{i}"]
                if kind == "Linear":
                    layer.weight.copy_(t(p["kernel"]).T)
                elif kind in ("Conv2d", "ConvTranspose2d"):
                    layer.weight.copy_(t(p["kernel"]).permute(3, 2, 0, 1))
                else:
                    stats = batch_stats[f"BatchNorm_{i}"]
                    layer.weight.copy_(t(p["scale"]))
                    layer.running_mean.copy_(t(stats["mean"]))
                    layer.running_var.copy_(t(stats["var"]))
                if "bias" in p:
                    layer.bias.copy_(t(p["bias"]))
    return module
