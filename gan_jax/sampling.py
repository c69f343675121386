"""Drawing samples from a trained generator (BatchNorm in inference mode)."""

from __future__ import annotations

import functools
import os
from typing import Optional

import jax
import numpy as np

from gan_jax.checkpoint import Checkpointer
from gan_jax.config import Config, load_config
from gan_jax.state import GANState, abstract_state, build_gan


@functools.partial(jax.jit, static_argnums=0)
def _generate(config: Config, g_params, g_batch_stats, z: jax.Array) -> jax.Array:
    gan = build_gan(config)
    variables = {"params": g_params}
    if g_batch_stats:
        variables["batch_stats"] = g_batch_stats
    return gan.generator.apply(variables, z, train=False)


def generate(config: Config, state: GANState, z: jax.Array) -> jax.Array:
    """G(z) with BatchNorm running averages: ``z [N, latent_dim]`` -> images ``[N, H, W, C]``."""
    return _generate(config.computation(), state.g_params, state.g_batch_stats, z)


def sample(config: Config, state: GANState, key: jax.Array, num: int,
           batch_size: int = 500) -> np.ndarray:
    """``num`` samples from z ~ prior(key), as float32 numpy ``[num, H, W, C]`` in [-1, 1].

    Generated in chunks of ``batch_size`` so large ``num`` fits in memory; the z of the whole
    request is drawn at once, so the result does not depend on ``batch_size``.
    """
    z = build_gan(config).sample_z(key, num)
    chunks = [generate(config, state, z[i:i + batch_size]) for i in range(0, num, batch_size)]
    return np.concatenate([np.asarray(c) for c in chunks], axis=0)


def sample_from_workdir(workdir: str, num: int, seed: int = 0, step: Optional[int] = None
                        ) -> tuple[np.ndarray, int]:
    """Restores a training run's checkpoint and draws ``num`` samples with ``jax.random.key(seed)``.

    Args:
      workdir: a directory written by :func:`gan_jax.training.train` (config.json + checkpoints/).
      num: number of samples.
      seed: seed of the z draws.
      step: checkpoint to restore; default the newest complete one.

    Returns:
      (images float32 ``[num, H, W, C]`` in [-1, 1], the restored step).
    """
    config = load_config(os.path.join(workdir, "config.json"))
    with Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True) as checkpointer:
        if step is None:
            step = checkpointer.latest_step()
        state = checkpointer.restore(abstract_state(config), step)
    return sample(config, state, jax.random.key(seed), num), int(state.step)
