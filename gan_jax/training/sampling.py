"""Drawing samples from any game's generator (inference mode), live or averaged.

With generator averaging on (``--ema_decay``) the averaged generator is the default everywhere
(grids, in-training evaluation, ``experiments.sample``, ``experiments.evaluate``); ``live=True``
takes the weights being trained. See :mod:`gan_jax.games.ema` for the BatchNorm statistics of
the averaged weights.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.config import Config, load_config
from gan_jax.games import abstract_state, build_game
from gan_jax.models import conditional
from gan_jax.training.checkpoint import Checkpointer


@functools.partial(jax.jit, static_argnums=(0, 2))
def generator_variables(config: Config, state: Any, live: bool = False) -> dict:
    """The generator's inference variables (jitted; ``config`` static): the averaged weights
    unless ``live`` or the run keeps none, with their BatchNorm statistics."""
    return build_game(config).generator_variables(state, live)


@functools.partial(jax.jit, static_argnums=0)
def _generate(config: Config, variables: dict, z: jax.Array,
              labels: Optional[jax.Array]) -> jax.Array:
    return build_game(config).generate(variables, z, labels)


def _check_labels(config: Config, labels) -> Optional[jax.Array]:
    if config.conditional and labels is None:
        raise ValueError("a conditional generator needs labels")
    if not config.conditional and labels is not None:
        raise ValueError("labels were given to an unconditional generator")
    return None if labels is None else jnp.asarray(labels, jnp.int32)


def generate(config: Config, state: Any, z: jax.Array, labels: Optional[jax.Array] = None,
             live: bool = False) -> jax.Array:
    """G(z) (or G(z, y) for a conditional config, ``labels`` int ``[N]``) in inference mode:
    ``z [N, latent_dim]`` -> images ``[N, H, W, C]``. ``live``: the trained weights even when
    the run keeps an averaged generator."""
    labels = _check_labels(config, labels)
    static = config.computation()
    return _generate(static, generator_variables(static, state, live), z, labels)


def sample_labels(config: Config, num: int) -> Optional[np.ndarray]:
    """The labels :func:`sample` conditions on: balanced classes 0, 1, ..., K-1, 0, ...
    for a conditional config, None otherwise."""
    if not config.conditional:
        return None
    return conditional.balanced_labels(num, conditional.num_classes_for(config.dataset))


def sample(config: Config, state: Any, key: jax.Array, num: int, batch_size: int = 500,
           live: bool = False) -> np.ndarray:
    """``num`` samples from z ~ prior(key), as float32 numpy ``[num, H, W, C]`` in [-1, 1].

    Conditional configs use :func:`sample_labels` (every class equally often). Generated in
    chunks of ``batch_size`` so large ``num`` fits in memory; the z of the whole request is
    drawn at once, so the result does not depend on ``batch_size``. ``live``: as in
    :func:`generate`.
    """
    static = config.computation()
    z = build_game(static).sample_z(key, num)
    labels = sample_labels(config, num)
    variables = generator_variables(static, state, live)  # once for all chunks
    chunks = [_generate(static, variables, z[i:i + batch_size],
                        None if labels is None else _check_labels(config, labels[i:i + batch_size]))
              for i in range(0, num, batch_size)]
    return np.concatenate([np.asarray(c) for c in chunks], axis=0)


def restore_state(workdir: str, step: Optional[int] = None) -> tuple[Config, Any]:
    """(config, state) of a training run's checkpoint ``step`` (default: the newest)."""
    config = load_config(os.path.join(workdir, "config.json"))
    with Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True) as checkpointer:
        if step is None:
            step = checkpointer.latest_step()
        state = checkpointer.restore(abstract_state(config), step)
    return config, state


def sample_from_workdir(workdir: str, num: int, seed: int = 0, step: Optional[int] = None,
                        live: bool = False) -> tuple[np.ndarray, int]:
    """Restores a training run's checkpoint and draws ``num`` samples with ``jax.random.key(seed)``.

    Args:
      workdir: a directory written by :func:`gan_jax.training.loop.train` (config.json +
        checkpoints/).
      num: number of samples.
      seed: seed of the z draws.
      step: checkpoint to restore; default the newest complete one.
      live: sample the trained generator even when the run keeps an averaged one.

    Returns:
      (images float32 ``[num, H, W, C]`` in [-1, 1], the restored step).
    """
    config, state = restore_state(workdir, step)
    return sample(config, state, jax.random.key(seed), num, live=live), int(state.step)
