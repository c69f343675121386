"""Small MLPs for low-dimensional data: the theory lab's networks (1-D and 2-D distributions).

They are ordinary registered architectures (:func:`gan_jax.models.architectures.register_architecture`), so
the lab trains them with the same :class:`~gan_jax.config.Config`, objectives, state and
``train_step_fn`` as the MNIST experiment: the "data" are points ``[N, dim]`` instead of images.

* ``toy1d``: z [B, 1] -> MLP -> x [B, 1] (linear output: the data are not confined to [-1, 1]).
* ``toy2d``: z [B, 16] -> MLP -> x [B, 2] (the 2-D mixtures of Metz et al. 2016 / Gulrajani et
  al. 2017).
* ``parallel_lines``: the WGAN paper's example 1 (seed 002): P_theta = (theta, Z), Z ~ U[0, 1];
  the generator's only parameter is theta.

Discriminators have no BatchNorm (so a per-example gradient penalty is exact) and return
logits ``[B]`` like every discriminator of the library.
"""

from __future__ import annotations

import types

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models import architectures as models


class ToyGenerator(nn.Module):
    """z [B, latent] -> ``depth`` x (Dense ``hidden``, ReLU) -> Dense ``out_dim`` (linear)."""

    out_dim: int = 2
    hidden: int = 128
    depth: int = 2

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
        del train
        x = z
        for _ in range(self.depth):
            x = nn.relu(nn.Dense(self.hidden)(x))
        return nn.Dense(self.out_dim)(x)


class ToyDiscriminator(nn.Module):
    """x [B, dim] -> ``depth`` x (Dense ``hidden``, LeakyReLU(0.2)) -> Dense 1 -> logits [B]."""

    hidden: int = 128
    depth: int = 2
    negative_slope: float = 0.2

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        del train
        x = x.reshape(x.shape[0], -1)
        for _ in range(self.depth):
            x = nn.leaky_relu(nn.Dense(self.hidden)(x), self.negative_slope)
        return nn.Dense(1)(x)[:, 0]


class ParallelLinesGenerator(nn.Module):
    """P_theta = (theta, Z), Z ~ U[0, 1] (WGAN paper, example 1).

    The prior is U(-1, 1) (``--prior=uniform``); z[:, 0] is mapped to Z = (z + 1) / 2. The only
    parameter is the scalar ``theta`` (initialised to ``theta_init``).
    """

    theta_init: float = 1.0

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
        del train
        theta = self.param("theta", lambda key: jnp.asarray(self.theta_init, jnp.float32))
        second = (z[:, 0] + 1.0) / 2.0
        return jnp.stack([jnp.broadcast_to(theta, second.shape), second], axis=1)


_TOY_DEFAULTS = {"batch_size": 256, "learning_rate": 1e-3, "b1": 0.5, "b2": 0.999}

TOY_ARCHITECTURES = {
    "toy1d": models.Architecture(
        lambda: ToyGenerator(out_dim=1, hidden=32), lambda: ToyDiscriminator(hidden=32),
        (1,), defaults=types.MappingProxyType({**_TOY_DEFAULTS, "latent_dim": 1}),
        d_flattens=True),
    "toy2d": models.Architecture(
        lambda: ToyGenerator(out_dim=2, hidden=128), lambda: ToyDiscriminator(hidden=128),
        (2,), defaults=types.MappingProxyType({**_TOY_DEFAULTS, "latent_dim": 16}),
        d_flattens=True),
    "parallel_lines": models.Architecture(
        ParallelLinesGenerator, lambda: ToyDiscriminator(hidden=64),
        (2,), defaults=types.MappingProxyType({**_TOY_DEFAULTS, "latent_dim": 1})),
}

for _name, _arch in TOY_ARCHITECTURES.items():
    models.register_architecture(_name, _arch)
