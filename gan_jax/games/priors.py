"""Noise priors p_z, selected by ``--prior``.

``uniform`` is U(-1, 1) per coordinate (the thesis, seed 000) and ``normal`` is N(0, 1)
(seed 001's ablation). Both are functions ``(key, shape) -> float32 array``.
"""

from __future__ import annotations

from typing import Callable

import jax

from gan_jax import registry


def uniform(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """U(-1, 1) samples of ``shape``."""
    return jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)


def normal(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """N(0, 1) samples of ``shape``."""
    return jax.random.normal(key, shape)


PRIORS: dict[str, Callable[[jax.Array, tuple[int, ...]], jax.Array]] = {
    "uniform": uniform,
    "normal": normal,
}


def get_prior(name: str) -> Callable[[jax.Array, tuple[int, ...]], jax.Array]:
    """Looks up ``--prior``; an unknown name lists the valid ones."""
    return registry.lookup(PRIORS, "prior", name)
