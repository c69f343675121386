"""Generator and discriminator architectures (Flax linen), selected by name.

Every discriminator returns *logits* of shape ``[B]``; no sigmoid is applied here (the
objectives in :mod:`gan_jax.games.losses` work on logits with log-sigmoid math). Generators map
``z: [B, latent_dim]`` to images ``[B, H, W, C]`` in ``[-1, 1]`` (tanh output).

Architectures register themselves in :data:`ARCHITECTURES`; ``--arch`` picks one.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from typing import Any, Callable, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax import registry
from gan_jax.models import began as began_models
from gan_jax.models import dcgan as dcgan_models, layers, mlp as mlp_models

# PyTorch's BatchNorm defaults (momentum 0.1 -> Flax 0.9, eps 1e-5); the thesis is a PyTorch
# model (CS231n assignment 3), so its running averages follow the same recursion.
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5
# CS231n initialises Linear and ConvTranspose2d weights with Xavier-uniform.
_KERNEL_INIT = nn.initializers.xavier_uniform()


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max-pool with stride 2 on ``[B, H, W, C]`` (H, W even) as reshape + max.

    Same values as ``nn.max_pool(x, (2, 2), (2, 2))``; its backward pass is a cheap select
    instead of XLA:CPU's slow generic reduce-window gradient (see shared PERF-NOTES).
    """
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class ThesisGenerator(nn.Module):
    """Seed 000 (thesis) generator, SPEC 3A; the CS231n DCGAN generator.

    z [B, 96] -> Dense 1024 -> ReLU -> BN -> Dense 7*7*128 -> ReLU -> BN -> reshape [7, 7, 128]
    -> ConvTranspose 64, 4x4, stride 2, pad 1 -> ReLU -> BN -> ConvTranspose 1, 4x4, stride 2,
    pad 1 -> tanh -> [B, 28, 28, 1].

    The transposed convolutions are PyTorch's ``ConvTranspose2d(k=4, s=2, p=1)`` (7 -> 14 ->
    28), computed by :class:`gan_jax.models.layers.ConvTranspose`; ``plain=True`` uses Flax's stock
    ``nn.ConvTranspose`` with padding ``k - 1 - p = 2`` instead (same function of its
    parameters up to a kernel flip; about 3x slower to train on XLA:CPU).
    """

    features: int = 1024
    base_channels: int = 128
    out_channels: int = 1
    plain: bool = False

    def _conv_transpose(self, features: int) -> nn.Module:
        if self.plain:
            return nn.ConvTranspose(features, (4, 4), (2, 2), padding=((2, 2), (2, 2)),
                                    kernel_init=_KERNEL_INIT)
        return layers.ConvTranspose(features, 4, 2, 1, kernel_init=_KERNEL_INIT)

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
        bn = lambda: nn.BatchNorm(  # noqa: E731
            use_running_average=not train, momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON)
        x = nn.Dense(self.features, kernel_init=_KERNEL_INIT)(z)
        x = bn()(nn.relu(x))
        x = nn.Dense(7 * 7 * self.base_channels, kernel_init=_KERNEL_INIT)(x)
        x = bn()(nn.relu(x))
        x = x.reshape(x.shape[0], 7, 7, self.base_channels)
        x = self._conv_transpose(self.base_channels // 2)(x)
        x = bn()(nn.relu(x))
        x = self._conv_transpose(self.out_channels)(x)
        return jnp.tanh(x)


class ThesisDiscriminator(nn.Module):
    """Seed 000 (thesis) discriminator, SPEC 3A (the Keras MNIST classifier as a critic).

    x [B, 28, 28, 1] -> Conv 32, 5x5, valid -> LeakyReLU(0.01) -> MaxPool 2 -> Conv 64, 5x5,
    valid -> LeakyReLU(0.01) -> MaxPool 2 -> flatten (4*4*64) -> Dense 1024 -> LeakyReLU(0.01)
    -> Dense 1 -> logits [B].

    ``plain=True`` pools with Flax's stock ``nn.max_pool`` (same values and gradients; its
    backward pass is slow on XLA:CPU) and Flax's ``nn.Conv`` (same values; slower input
    gradients) instead of :class:`gan_jax.models.layers.Conv`.
    """

    negative_slope: float = 0.01
    plain: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        del train  # No BatchNorm or dropout; kept for a uniform signature.
        act = lambda h: nn.leaky_relu(h, self.negative_slope)  # noqa: E731
        pool = ((lambda h: nn.max_pool(h, (2, 2), (2, 2))) if self.plain  # noqa: E731
                else max_pool_2x2)
        # layers.Conv: the input gradients take its col2im form (first layer, 1 input channel)
        # and its row form (second layer); same parameters, paths and forward as
        # nn.Conv(features, (5, 5), padding="VALID").
        conv = ((lambda features: nn.Conv(features, (5, 5), padding="VALID"))  # noqa: E731
                if self.plain else (lambda features: layers.Conv(features, 5, 1, 0)))
        x = pool(act(conv(32)(x)))
        x = pool(act(conv(64)(x)))
        x = x.reshape(x.shape[0], -1)
        x = act(nn.Dense(4 * 4 * 64)(x))
        return nn.Dense(1)(x)[:, 0]


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A registered pair of networks and the data shape they are built for."""

    generator: Callable[[], nn.Module]
    discriminator: Callable[[], nn.Module]
    image_shape: tuple[int, int, int]
    # Settings of the architecture's paper (Config fields), over gan_jax.config.BASE_DEFAULTS.
    defaults: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({}))
    # D has BatchNorm and accepts ``norm="layer"``: the BatchNorm-free critic that objectives
    # with a per-example gradient penalty (WGAN-GP) get.
    d_batchnorm: bool = False
    # Values of --d_activation D accepts (passed as ``negative_slope``: the architecture's
    # LeakyReLU slope, or 0 for ReLU); empty: fixed by the architecture.
    d_activations: tuple[str, ...] = ()
    d_negative_slope: float = 0.0
    # D accepts ``dropout=rate`` (--d_dropout): seed 003's Keras DCGAN, dropout after every
    # LeakyReLU of D.
    d_dropout: bool = False
    # D starts by flattening its input (an MLP): a conditional D gets [flat x, onehot(y)]
    # instead of K label planes (gan_jax.models.conditional).
    d_flattens: bool = False
    # The game whose networks these are (gan_jax.games; --game).
    game: str = "classic"


_LEAKY_OR_RELU = ("leaky_relu", "relu")
_DEFAULTS_Z100 = types.MappingProxyType({"latent_dim": 100})
_DEFAULTS_DCGAN = types.MappingProxyType(
    {"latent_dim": 100, "learning_rate": 2e-4, "b1": 0.5, "b2": 0.999, "batch_size": 128})

ARCHITECTURES: dict[str, Architecture] = {
    "thesis": Architecture(ThesisGenerator, ThesisDiscriminator, (28, 28, 1),
                           d_activations=_LEAKY_OR_RELU, d_negative_slope=0.01),
    # The same networks in stock Flax layers (nn.ConvTranspose, nn.max_pool): the reference
    # that the speed and time-to-quality comparisons measure the default against.
    "thesis_plain": Architecture(functools.partial(ThesisGenerator, plain=True),
                                 functools.partial(ThesisDiscriminator, plain=True), (28, 28, 1),
                                 d_activations=_LEAKY_OR_RELU, d_negative_slope=0.01),
    # Both MLP papers draw 100-d noise.
    "mlp": Architecture(mlp_models.MLPGenerator, mlp_models.MLPDiscriminator, (28, 28, 1),
                        defaults=_DEFAULTS_Z100, d_flattens=True),
    "goodfellow_mlp": Architecture(mlp_models.GoodfellowGenerator,
                                   mlp_models.GoodfellowDiscriminator, (28, 28, 1),
                                   defaults=_DEFAULTS_Z100, d_flattens=True),
    # Radford et al. 2015: 100-d z, Adam lr 2e-4, beta1 0.5, minibatches of 128.
    "dcgan": Architecture(dcgan_models.dcgan28_generator, dcgan_models.dcgan28_discriminator,
                          (28, 28, 1), defaults=_DEFAULTS_DCGAN, d_batchnorm=True,
                          d_activations=_LEAKY_OR_RELU, d_negative_slope=0.2, d_dropout=True),
    "dcgan32": Architecture(dcgan_models.dcgan32_generator, dcgan_models.dcgan32_discriminator,
                            (32, 32, 3), defaults=_DEFAULTS_DCGAN, d_batchnorm=True,
                            d_activations=_LEAKY_OR_RELU, d_negative_slope=0.2, d_dropout=True),
    "dcgan64": Architecture(dcgan_models.dcgan64_generator, dcgan_models.dcgan64_discriminator,
                            (64, 64, 3), defaults=_DEFAULTS_DCGAN, d_batchnorm=True,
                            d_activations=_LEAKY_OR_RELU, d_negative_slope=0.2, d_dropout=True),
    # BEGAN's ELU decoder G and autoencoder D at 28x28 (7x7 bottleneck; game "began"): G with
    # BatchNorm and tanh (the MNIST recipe, docs/began.md), and the reference's plain G with
    # the settings this project used for it before (batch 16, gamma 0.9: collapses onto "1").
    "began": Architecture(began_models.began28_generator, began_models.began28_discriminator,
                          (28, 28, 1), game="began"),
    "began_reference": Architecture(
        began_models.began28_reference_generator, began_models.began28_discriminator,
        (28, 28, 1), game="began",
        defaults=types.MappingProxyType({"batch_size": 16, "learning_rate": 2e-4, "gamma": 0.9,
                                         "lambda_k": 0.01, "lr_halve_every": 1000})),
}


def discriminator_for(arch: Architecture, per_example: bool = False,
                      d_activation: Optional[str] = None, d_dropout: float = 0.0) -> nn.Module:
    """The architecture's discriminator.

    Args:
      arch: a registered architecture.
      per_example: the objective needs a critic without BatchNorm (LayerNorm replaces it).
      d_activation: ``"leaky_relu"`` or ``"relu"`` where the architecture offers the choice
        (seed 001's ablation); None keeps its own.
      d_dropout: dropout rate after each activation of D, where the architecture offers it
        (seed 003's DCGAN variant); 0 is none.
    """
    kwargs = {}
    if per_example and arch.d_batchnorm:
        kwargs["norm"] = "layer"
    if d_activation is not None and arch.d_activations:
        if d_activation not in arch.d_activations:
            raise ValueError(f"Unknown d_activation {d_activation!r}; valid: "
                             f"{list(arch.d_activations)}")
        kwargs["negative_slope"] = arch.d_negative_slope if d_activation == "leaky_relu" else 0.0
    if d_dropout:
        if not arch.d_dropout:
            raise ValueError("d_dropout is not offered by this architecture")
        kwargs["dropout"] = d_dropout
    return arch.discriminator(**kwargs)


def register_architecture(name: str, arch: Architecture, *, overwrite: bool = False) -> None:
    """Adds ``arch`` to :data:`ARCHITECTURES` under ``name`` (then ``Config(arch=name)``, the
    train step, sampling and checkpoints use it like a built-in one).

    For networks defined outside the library: a user's own pair, or the theory lab's
    low-dimensional MLPs. Re-registering a name raises unless ``overwrite`` (or the same
    object is registered again, e.g. on re-import).
    """
    if not isinstance(arch, Architecture):
        raise TypeError(f"register_architecture needs an Architecture, got {type(arch).__name__}")
    if name in ARCHITECTURES and ARCHITECTURES[name] is not arch and not overwrite:
        raise ValueError(f"architecture {name!r} is already registered; pass overwrite=True "
                         "to replace it")
    ARCHITECTURES[name] = arch


def get_architecture(name: str) -> Architecture:
    """Looks up ``--arch``; an unknown name lists the valid ones."""
    return registry.lookup(ARCHITECTURES, "architecture", name)
