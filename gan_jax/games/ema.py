"""Generator weight averaging (ProGAN's G smoothing; Yazici et al. 2019), and BatchNorm
statistics for the averaged weights.

The average is over *parameters*, updated after every generator update t = 0, 1, ...:

  avg_{t+1} = beta_t avg_t + (1 - beta_t) theta_{t+1},    avg_0 = theta_0,
  beta_t = min(decay, (1 + t) / (10 + t))  with the warm-up, ``decay`` without it.

The warm-up (the schedule of TensorFlow's ``ExponentialMovingAverage(num_updates=...)``) keeps
a short run from being dominated by the initial weights: early on the average spans about the
last tenth of training (1 - beta_t ~ 9 / t), and from t ~ 9 / (1 - decay) on it is the plain
EMA (t ~ 9,000 for decay 0.999). ``optax.ema`` is not this: it averages *updates*.

BatchNorm: a generator's running statistics belong to the live weights that produced them, so
the averaged weights get their own, recomputed (:func:`recompute_batch_stats`) from fixed draws
of z in train mode whenever the averaged generator is sampled. Averaging the running statistics
alongside the weights would instead mix statistics of many different networks (and their
variances do not average to the variance of the averaged network).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

WARMUP_OFFSET = 10.0  # beta_t = min(decay, (1 + t) / (WARMUP_OFFSET + t))
STATS_SEED = 0  # the fixed z of the recomputed BatchNorm statistics
STATS_SAMPLES = 2048
STATS_CHUNK = 256


@dataclasses.dataclass(frozen=True)
class GeneratorEMA:
    """The averaging schedule: ``decay`` in (0, 1), with or without the warm-up."""

    decay: float
    warmup: bool = True

    def decay_at(self, step) -> jax.Array:
        """beta_t for the update after ``step`` generator updates (int or traced int32)."""
        decay = jnp.float32(self.decay)
        if not self.warmup:
            return decay
        t = jnp.asarray(step, jnp.float32)
        return jnp.minimum(decay, (1.0 + t) / (WARMUP_OFFSET + t))

    def update(self, average: Any, params: Any, step) -> Any:
        """``beta_t average + (1 - beta_t) params`` (``optax.incremental_update``)."""
        return optax.incremental_update(params, average, 1.0 - self.decay_at(step))


def recompute_batch_stats(apply_fn: Callable[..., Any], params: Any, batch_stats: Any,
                          chunks: list[tuple]) -> Any:
    """Every BatchNorm's mean and variance of its inputs under ``params``, over ``chunks``.

    ``apply_fn(variables, *inputs, train=True, mutable=["batch_stats"])`` is the network's
    ``apply``; ``chunks`` are equal-sized input tuples (e.g. ``(z,)`` or ``(z, labels)``).
    Each chunk runs in train mode, so each layer normalises with that chunk's statistics (as
    in training; "precise BatchNorm", Wu & Johnson 2021), and the per-chunk means and second
    moments are averaged. ``batch_stats`` only gives the tree's structure.

    Flax updates running averages as ``m * old + (1 - m) * batch``; applying once from zeros
    and once from ones gives ``(1 - m) * batch`` and ``m``, so the batch statistics come out
    for any momentum, without knowing the modules.
    """
    zeros = jax.tree.map(jnp.zeros_like, batch_stats)
    ones = jax.tree.map(jnp.ones_like, batch_stats)

    def batch_moments(inputs, start):
        _, updates = apply_fn({"params": params, "batch_stats": start}, *inputs, train=True,
                              mutable=["batch_stats"])
        return updates["batch_stats"]

    per_chunk = [batch_moments(inputs, zeros) for inputs in chunks]  # (1 - m) * batch
    momentum = jax.tree.map(lambda a, b: a - b, batch_moments(chunks[0], ones), per_chunk[0])
    stats = [jax.tree.map(lambda s, m: s / (1.0 - m), chunk, momentum) for chunk in per_chunk]
    return _combine(stats)


def _combine(per_chunk: list[Any]) -> Any:
    """Averages per-chunk {"mean", "var"} statistics: mean of means; variance of the union,
    E[var_c + mean_c^2] - mean^2."""

    def combine_layer(*layers):
        if not (isinstance(layers[0], dict) and set(layers[0]) == {"mean", "var"}):
            return {k: combine_layer(*(layer[k] for layer in layers)) for k in layers[0]}
        mean = sum(layer["mean"] for layer in layers) / len(layers)
        second = sum(layer["var"] + layer["mean"] ** 2 for layer in layers) / len(layers)
        return {"mean": mean, "var": jnp.maximum(second - mean ** 2, 0.0)}

    return combine_layer(*per_chunk)
