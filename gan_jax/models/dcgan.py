"""DCGAN (Radford et al. 2015; SPEC 3B) at 64x64x3 and at 28x28x1.

The 64x64 pair is the one of the PyTorch DCGAN tutorial that seed 003 cites (and that users
compare with): z [B, 100] -> project to 4x4x512 -> four stride-2 transposed convolutions
(4x4, padding 1) 512 -> 256 -> 128 -> 64 -> 3 with BatchNorm + ReLU in between and tanh at the
output; D mirrors it with stride-2 convolutions and LeakyReLU(0.2), BatchNorm everywhere except
on D's input layer, and a final 4x4 valid convolution to one logit. No biases (BatchNorm
follows), weights ~ N(0, 0.02), BatchNorm scales ~ N(1, 0.02). The projection "ConvTranspose2d
(100, 512, 4, 1, 0)" on a 1x1 input is exactly a bias-free Dense(100 -> 4*4*512) (same
parameters, reshaped); it is written as the Dense.

The 28x28 pair applies the same rules to MNIST: project to 7x7x256, then 7 -> 14 -> 28; D: 28 ->
14 -> 7 -> 4 (3x3 stride 2) -> one logit (4x4 valid). ``dropout`` adds seed 003's dropout
after each LeakyReLU of D (Keras DCGAN variant), off by default.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models import layers

_W_INIT = nn.initializers.normal(0.02)


def _bn_scale_init(key, shape, dtype=jnp.float32):
    return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def _batch_norm(train: bool) -> nn.BatchNorm:
    # PyTorch defaults (momentum 0.1, eps 1e-5), DCGAN's N(1, 0.02) scale init.
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        scale_init=_bn_scale_init)


class DCGANGenerator(nn.Module):
    """z [B, latent] -> images [B, H, W, C] in [-1, 1]; ``channels[0]`` at ``base_size``."""

    base_size: int = 4
    channels: Sequence[int] = (512, 256, 128, 64)
    out_channels: int = 3

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
        s, c0 = self.base_size, self.channels[0]
        x = nn.Dense(s * s * c0, use_bias=False, kernel_init=_W_INIT)(z)
        x = nn.relu(_batch_norm(train)(x.reshape(z.shape[0], s, s, c0)))
        for features in self.channels[1:]:
            x = layers.ConvTranspose(features, 4, 2, 1, use_bias=False, kernel_init=_W_INIT)(x)
            x = nn.relu(_batch_norm(train)(x))
        x = layers.ConvTranspose(self.out_channels, 4, 2, 1, use_bias=False,
                                 kernel_init=_W_INIT)(x)
        return jnp.tanh(x)


class DCGANDiscriminator(nn.Module):
    """images [B, H, W, C] -> logits [B]; strided convs (kernel, stride, padding) per layer."""

    channels: Sequence[int] = (64, 128, 256, 512)
    kernels: Sequence[int] = (4, 4, 4, 4)
    final_kernel: int = 4
    negative_slope: float = 0.2
    dropout: float = 0.0
    # "batch" (Radford et al.) or "layer": LayerNorm over each example's (H, W, C), the
    # WGAN-GP critic's choice (Gulrajani et al. 2017: no BatchNorm in a per-example penalty).
    norm: str = "batch"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        for i, (features, k) in enumerate(zip(self.channels, self.kernels)):
            # nn.Conv(features, (k, k), (2, 2), padding=((1, 1), (1, 1))), same parameters.
            x = layers.Conv(features, k, 2, 1, use_bias=False, kernel_init=_W_INIT)(x)
            if i > 0:  # no normalisation on D's input layer
                x = (_batch_norm(train)(x) if self.norm == "batch"
                     else nn.LayerNorm(reduction_axes=(-3, -2, -1), feature_axes=-1,
                                       epsilon=1e-5)(x))
            x = nn.leaky_relu(x, self.negative_slope)
            if self.dropout:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = nn.Conv(1, (self.final_kernel,) * 2, padding="VALID", use_bias=False,
                    kernel_init=_W_INIT)(x)
        return x.reshape(x.shape[0])


def dcgan64_generator() -> nn.Module:
    return DCGANGenerator(base_size=4, channels=(512, 256, 128, 64), out_channels=3)


def dcgan64_discriminator(norm: str = "batch", negative_slope: float = 0.2,
                            dropout: float = 0.0) -> nn.Module:
    return DCGANDiscriminator(channels=(64, 128, 256, 512), kernels=(4, 4, 4, 4), norm=norm,
                              negative_slope=negative_slope, dropout=dropout)


def dcgan28_generator() -> nn.Module:
    return DCGANGenerator(base_size=7, channels=(256, 128), out_channels=1)


def dcgan28_discriminator(norm: str = "batch", negative_slope: float = 0.2,
                            dropout: float = 0.0) -> nn.Module:
    return DCGANDiscriminator(channels=(64, 128, 256), kernels=(4, 4, 3), norm=norm,
                              negative_slope=negative_slope, dropout=dropout)


def dcgan32_generator() -> nn.Module:
    """CIFAR-10 size: 4x4x512 -> 8 -> 16 -> 32x32x3."""
    return DCGANGenerator(base_size=4, channels=(512, 256, 128), out_channels=3)


def dcgan32_discriminator(norm: str = "batch", negative_slope: float = 0.2,
                            dropout: float = 0.0) -> nn.Module:
    """32 -> 16 -> 8 -> 4 -> one logit."""
    return DCGANDiscriminator(channels=(128, 256, 512), kernels=(4, 4, 4), norm=norm,
                              negative_slope=negative_slope, dropout=dropout)
