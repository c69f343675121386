"""Drawing samples from a trained generator (BatchNorm in inference mode)."""

from __future__ import annotations

import functools
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import conditional
from gan_jax.checkpoint import Checkpointer
from gan_jax.config import Config, load_config
from gan_jax.state import GANState, abstract_state, build_gan


@functools.partial(jax.jit, static_argnums=0)
def _generate(config: Config, g_params, g_batch_stats, z: jax.Array,
              labels: Optional[jax.Array]) -> jax.Array:
    gan = build_gan(config)
    variables = {"params": g_params}
    if g_batch_stats:
        variables["batch_stats"] = g_batch_stats
    inputs = (z,) if labels is None else (z, labels)
    return gan.generator.apply(variables, *inputs, train=False)


def generate(config: Config, state: GANState, z: jax.Array,
             labels: Optional[jax.Array] = None) -> jax.Array:
    """G(z) (or G(z, y) for a conditional config, ``labels`` int ``[N]``) with BatchNorm
    running averages: ``z [N, latent_dim]`` -> images ``[N, H, W, C]``."""
    if config.conditional and labels is None:
        raise ValueError("a conditional generator needs labels")
    if not config.conditional and labels is not None:
        raise ValueError("labels were given to an unconditional generator")
    if labels is not None:
        labels = jnp.asarray(labels, jnp.int32)
    return _generate(config.computation(), state.g_params, state.g_batch_stats, z, labels)


def sample_labels(config: Config, num: int) -> Optional[np.ndarray]:
    """The labels :func:`sample` conditions on: balanced classes 0, 1, ..., K-1, 0, ...
    for a conditional config, None otherwise."""
    if not config.conditional:
        return None
    return conditional.balanced_labels(num, conditional.num_classes_for(config.dataset))


def sample(config: Config, state: GANState, key: jax.Array, num: int,
           batch_size: int = 500) -> np.ndarray:
    """``num`` samples from z ~ prior(key), as float32 numpy ``[num, H, W, C]`` in [-1, 1].

    Conditional configs use :func:`sample_labels` (every class equally often). Generated in
    chunks of ``batch_size`` so large ``num`` fits in memory; the z of the whole request is
    drawn at once, so the result does not depend on ``batch_size``.
    """
    z = build_gan(config).sample_z(key, num)
    labels = sample_labels(config, num)
    chunks = [generate(config, state, z[i:i + batch_size],
                       None if labels is None else labels[i:i + batch_size])
              for i in range(0, num, batch_size)]
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
