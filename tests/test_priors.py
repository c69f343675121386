"""Noise priors: support, moments and the registry."""

import jax
import numpy as np
import pytest

from gan_jax.games import priors


def test_uniform_support_and_moments():
    z = np.asarray(priors.get_prior("uniform")(jax.random.key(0), (20000, 4)))
    assert z.shape == (20000, 4) and z.dtype == np.float32
    assert z.min() >= -1.0 and z.max() < 1.0
    np.testing.assert_allclose(z.mean(), 0.0, atol=0.01)
    np.testing.assert_allclose(z.var(), 1.0 / 3.0, atol=0.01)  # Var U(-1, 1) = 1/3


def test_normal_moments():
    z = np.asarray(priors.get_prior("normal")(jax.random.key(0), (20000, 4)))
    np.testing.assert_allclose(z.mean(), 0.0, atol=0.02)
    np.testing.assert_allclose(z.std(), 1.0, atol=0.02)
    assert z.min() < -3.0  # unbounded, unlike the uniform prior


def test_deterministic_in_key():
    a = priors.uniform(jax.random.key(3), (5, 2))
    b = priors.uniform(jax.random.key(3), (5, 2))
    np.testing.assert_array_equal(a, b)


def test_unknown_prior_lists_valid_names():
    with pytest.raises(ValueError, match=r"\['normal', 'uniform'\]"):
        priors.get_prior("laplace")
