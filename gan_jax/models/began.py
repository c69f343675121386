"""BEGAN's networks (Berthelot et al. 2017): an ELU convolutional decoder as G, and an
autoencoder (encoder + decoder of the same form) as D.

All convolutions are 3x3 with "same" padding and ELU, with no normalisation and no output
nonlinearity, as in the reference code (carpedm20/BEGAN-tensorflow, described in
shared/research/families.md 1.1):

  decoder(h): Dense(s*s*n) -> [conv n, conv n, nearest-neighbour x2] x (stages - 1)
              -> conv n, conv n -> conv C                                  (s*2^(stages-1))^2
  encoder(x): conv n -> for i in 0..stages-1: conv n(i+1), conv n(i+1), and between stages a
              stride-2 conv to n(i+2) -> flatten -> Dense(h)

For 28x28 MNIST the bottleneck is 7x7 with 3 stages (7 -> 14 -> 28); for 32x32 it is the
reference's 8x8. The image's channel count is a parameter of both networks (the reference G
hard-codes 3 output channels, which breaks grayscale data).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def upsample_nearest(x: jax.Array) -> jax.Array:
    """``[B, H, W, C]`` -> ``[B, 2H, 2W, C]``, each pixel repeated 2x2."""
    b, h, w, c = x.shape
    return jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c)).reshape(
        b, 2 * h, 2 * w, c)


def _conv(features: int, stride: int = 1) -> nn.Conv:
    return nn.Conv(features, (3, 3), strides=(stride, stride), padding="SAME")


class BEGANDecoder(nn.Module):
    """``h [B, hidden]`` -> image ``[B, H, W, C]`` (H = W = bottleneck * 2^(stages-1)).

    ``norm``: BatchNorm after the dense layer and each convolution, before the ELU (the
    dense layer then also gets an ELU); ``tanh``: tanh on the output. Both off is the
    reference's decoder; both on is the MNIST generator (module docstring).
    """

    bottleneck: int = 7
    stages: int = 3
    filters: int = 32
    channels: int = 1
    norm: bool = False
    tanh: bool = False
    convs: int = 2  # convolutions per stage (the reference: 2)

    @nn.compact
    def __call__(self, h: jax.Array, train: bool = True) -> jax.Array:
        n, s = self.filters, self.bottleneck

        def normalised(x):
            if not self.norm:
                return x
            return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(x)

        x = nn.Dense(s * s * n)(h)
        if self.norm:
            x = nn.elu(normalised(x))
        x = x.reshape(h.shape[0], s, s, n)
        for stage in range(self.stages):
            for _ in range(self.convs):
                x = nn.elu(normalised(_conv(n)(x)))
            if stage < self.stages - 1:
                x = upsample_nearest(x)
        x = _conv(self.channels)(x)
        return jnp.tanh(x) if self.tanh else x


class BEGANEncoder(nn.Module):
    """Image ``[B, H, W, C]`` -> embedding ``[B, hidden]``."""

    hidden: int = 64
    stages: int = 3
    filters: int = 32
    convs: int = 2  # convolutions per stage besides the downsampling ones (the reference: 2)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n = self.filters
        x = nn.elu(_conv(n)(x))
        for stage in range(self.stages):
            width = n * (stage + 1)
            for _ in range(self.convs):
                x = nn.elu(_conv(width)(x))
            if stage < self.stages - 1:
                x = nn.elu(_conv(n * (stage + 2), stride=2)(x))
        return nn.Dense(self.hidden)(x.reshape(x.shape[0], -1))


class BEGANDiscriminator(nn.Module):
    """The autoencoder D(x) = decoder(encoder(x)): returns the reconstruction ``[B, H, W, C]``
    (not logits; the game scores it by L1 error, :func:`gan_jax.games.began.reconstruction_loss`)."""

    hidden: int = 64
    bottleneck: int = 7
    stages: int = 3
    filters: int = 32
    channels: int = 1
    encoder_convs: int = 2
    decoder_convs: int = 2

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        h = BEGANEncoder(self.hidden, self.stages, self.filters, self.encoder_convs)(x)
        return BEGANDecoder(self.bottleneck, self.stages, self.filters, self.channels,
                            convs=self.decoder_convs)(h, train)


def began28_generator(filters: int = 16) -> BEGANDecoder:
    """G for 28x28x1 MNIST: 7x7 bottleneck, 3 stages, BatchNorm and a tanh output."""
    return BEGANDecoder(bottleneck=7, stages=3, filters=filters, channels=1, norm=True,
                        tanh=True)


def began28_reference_generator(filters: int = 16) -> BEGANDecoder:
    """The reference's G for 28x28x1: no normalisation, no output nonlinearity."""
    return BEGANDecoder(bottleneck=7, stages=3, filters=filters, channels=1)


def began28_discriminator(hidden: int = 64, filters: int = 16) -> BEGANDiscriminator:
    """D for 28x28x1, embedding ``hidden`` (= z's dimension, as in the reference)."""
    return BEGANDiscriminator(hidden=hidden, bottleneck=7, stages=3, filters=filters, channels=1)
