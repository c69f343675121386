"""Timing of the compiled train step (compile time apart, median of repeats).

Speed is measured here, never asserted in tests: machines are shared and noisy.
"""

from __future__ import annotations

import statistics
import time

import jax
import numpy as np

from gan_jax.config import Config
from gan_jax.models import get_architecture
from gan_jax.state import create_state
from gan_jax.steps import make_train_step


def time_train_step(config: Config, num_images: int = 1024, steps_per_repeat: int = 20,
                    repeats: int = 5) -> dict:
    """Runs the train step of ``config`` on random data and times it.

    Returns:
      dict with ``compile_s`` (first call, includes tracing and XLA compilation),
      ``steps_per_s`` (median over ``repeats`` of ``steps_per_repeat`` steps each),
      ``steps_per_s_all`` (every repeat) and ``images_per_s`` (= steps/s x batch_size x
      disc_steps real images seen by D).
    """
    shape = get_architecture(config.arch).image_shape
    images = np.random.default_rng(0).uniform(-1, 1, (num_images, *shape)).astype(np.float32)
    train_step = make_train_step(config, images)
    state = create_state(config, jax.random.key(0))
    key = jax.random.key(1)
    start = time.perf_counter()
    state, metrics = train_step(state, key)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps_per_repeat):
            state, metrics = train_step(state, key)
        jax.block_until_ready((state, metrics))
        rates.append(steps_per_repeat / (time.perf_counter() - start))
    rate = statistics.median(rates)
    return {"compile_s": compile_s, "steps_per_s": rate, "steps_per_s_all": rates,
            "images_per_s": rate * config.batch_size * config.disc_steps}
