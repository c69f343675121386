"""Many independent GANs in one compiled program: ``jax.vmap`` over seeds and learning rates.

Each run keeps its own state, keys and learning rate; they share the training set and one
compiled step, so N small GANs cost far less than N sequential runs on hardware that a single
small GAN cannot fill. Every run computes exactly what :func:`gan_jax.training.steps.train_step_fn`
computes for it alone (up to float32 reassociation of batched kernels; tests check the match).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp

from gan_jax.config import Config
from gan_jax.games.classic import GANState
from gan_jax.games import create_state
from gan_jax import data
from gan_jax.training.steps import (EpochOrderedStep, Metrics, donates_state, train_step_fn,
                           training_epoch_orders)
from gan_jax.training.loop import run_keys


def create_states(config: Config, seeds: Sequence[int]) -> GANState:
    """Initial states of the runs with ``seeds``, stacked on a leading axis ``[N, ...]``.

    Run ``i`` starts from exactly the state ``create_state(config, run_keys(seeds[i])[0])``.
    """
    keys = jnp.stack([run_keys(seed)[0] for seed in seeds])
    return jax.vmap(lambda key: create_state(config, key))(keys)


def train_keys(seeds: Sequence[int]) -> jax.Array:
    """The runs' training keys ``[N]`` (the ones :func:`gan_jax.training.loop.train` would use)."""
    return jnp.stack([run_keys(seed)[1] for seed in seeds])


def _sweep_body(config: Config, states: GANState, keys: jax.Array, images: jax.Array,
                learning_rates: jax.Array, labels: Optional[jax.Array],
                epoch_orders: Optional[data.EpochOrders] = None) -> tuple[GANState, Metrics]:
    def step(state, key, learning_rate, orders):
        return train_step_fn(config, state, key, images, learning_rate, labels=labels,
                             epoch_orders=orders)

    return jax.vmap(step)(states, keys, learning_rates, epoch_orders)


# Donating the states only off the CPU, as the single-run step (steps.donates_state).
_sweep_step = jax.jit(_sweep_body, static_argnums=0)
_sweep_step_donating = jax.jit(_sweep_body, static_argnums=0, donate_argnums=1)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _sweep_epoch_orders(keys: jax.Array, first_epoch, num_epochs: int, num_examples: int
                        ) -> data.EpochOrders:
    """Each run's epoch orders (from its own training key), stacked ``[N, ...]``."""
    return jax.vmap(lambda key: training_epoch_orders(key, first_epoch, num_epochs,
                                                      num_examples))(keys)


def make_sweep_step(config: Config, images: Any, learning_rates: Optional[Sequence[float]] = None,
                    num_runs: Optional[int] = None, labels: Any = None
                    ) -> Callable[[GANState, jax.Array], tuple[GANState, Metrics]]:
    """Returns ``sweep_step(states, keys) -> (states, metrics)`` over N stacked runs.

    Args:
      config: shared configuration of the runs.
      images: shared training set, float32 ``[N_images, H, W, C]`` in [-1, 1].
      learning_rates: one learning rate per run (both networks); default: every run uses
        ``config.learning_rate`` (then ``num_runs`` gives N).
      num_runs: number of runs when ``learning_rates`` is not given.
      labels: shared int ``[N_images]`` class labels, for a conditional config.

    Metrics come back with a leading ``[N]`` axis. ``states`` is donated on accelerators
    (:func:`gan_jax.training.steps.donates_state`).
    """
    if learning_rates is None:
        if num_runs is None:
            raise ValueError("make_sweep_step needs learning_rates or num_runs")
        learning_rates = [config.learning_rate] * num_runs
    lrs = jnp.asarray(learning_rates, jnp.float32)
    images = jnp.asarray(images, jnp.float32)
    labels = None if labels is None else jnp.asarray(labels, jnp.int32)
    static = config.computation()

    # Each run's epoch orders are computed once per epoch on the host's cue, not re-sorted in
    # every step (see steps.EpochOrderedStep); the runs advance together, so run 0's step is
    # every run's.
    compiled = _sweep_step_donating if donates_state() else _sweep_step
    return EpochOrderedStep(
        lambda states, keys, orders: compiled(static, states, keys, images, lrs, labels, orders),
        static, images.shape[0],
        lambda keys, first_epoch, num_epochs, num_examples: _sweep_epoch_orders(
            keys, first_epoch, num_epochs, num_examples),
        step_of=lambda states: int(states.step[0]))
