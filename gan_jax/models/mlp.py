"""Fully connected GANs: seed 003's small MLP GAN and Goodfellow et al. (2014)'s MNIST model.

Both papers use sigmoid outputs on [0, 1] pixels; gan_jax scales data to [-1, 1] and uses tanh,
the same model under the affine change of variables tanh(a) = 2 * sigmoid(2a) - 1.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

_XAVIER = nn.initializers.xavier_uniform()


def _uniform(scale: float):
    """pylearn2's ``irange``: U(-scale, scale)."""
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)
    return init


class MLPGenerator(nn.Module):
    """Seed 003: z [B, 100] -> 128 ReLU -> 784 tanh -> [B, 28, 28, 1]."""

    hidden: int = 128

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
        del train
        x = nn.relu(nn.Dense(self.hidden, kernel_init=_XAVIER)(z))
        x = jnp.tanh(nn.Dense(28 * 28, kernel_init=_XAVIER)(x))
        return x.reshape(z.shape[0], 28, 28, 1)


class MLPDiscriminator(nn.Module):
    """Seed 003: x [B, 28, 28, 1] -> 784 -> 128 ReLU -> 1 logit."""

    hidden: int = 128

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        del train
        x = nn.relu(nn.Dense(self.hidden, kernel_init=_XAVIER)(x.reshape(x.shape[0], -1)))
        return nn.Dense(1, kernel_init=_XAVIER)(x)[:, 0]


class GoodfellowGenerator(nn.Module):
    """Goodfellow et al. 2014 (adversarial/mnist.yaml): z [B, 100] -> 1200 ReLU -> 1200 ReLU
    -> 784 tanh (sigmoid on [0, 1] in the paper), weights U(-0.05, 0.05)."""

    hidden: int = 1200

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
        del train
        init = _uniform(0.05)
        x = nn.relu(nn.Dense(self.hidden, kernel_init=init)(z))
        x = nn.relu(nn.Dense(self.hidden, kernel_init=init)(x))
        x = jnp.tanh(nn.Dense(28 * 28, kernel_init=init)(x))
        return x.reshape(z.shape[0], 28, 28, 1)


class Maxout(nn.Module):
    """Maxout units (Goodfellow et al. 2013): ``units`` outputs, each the max of ``pieces``
    affine pieces. ``[B, D] -> [B, units]``."""

    units: int
    pieces: int
    kernel_init: object = _uniform(0.005)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = nn.Dense(self.units * self.pieces, kernel_init=self.kernel_init)(x)
        return y.reshape(x.shape[0], self.units, self.pieces).max(axis=-1)


class GoodfellowDiscriminator(nn.Module):
    """Goodfellow et al. 2014: x -> dropout(keep 0.8) -> maxout 240x5 -> dropout(keep 0.5) ->
    maxout 240x5 -> dropout(keep 0.5) -> 1 logit; weights U(-0.005, 0.005).

    Dropout is active when ``train`` (inverted dropout: kept units scaled by 1/keep, as
    pylearn2's ``input_scales``) and needs a ``'dropout'`` PRNG stream, which the train step
    derives from its key.
    """

    units: int = 240
    pieces: int = 5

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        x = nn.Dropout(0.2, deterministic=not train)(x)
        x = Maxout(self.units, self.pieces)(x)
        x = nn.Dropout(0.5, deterministic=not train)(x)
        x = Maxout(self.units, self.pieces)(x)
        x = nn.Dropout(0.5, deterministic=not train)(x)
        return nn.Dense(1, kernel_init=_uniform(0.005))(x)[:, 0]
