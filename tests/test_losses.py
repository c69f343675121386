"""Golden values, stability and gradient behaviour of the objectives."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import losses

REAL = jnp.array([2.0, -1.0, 0.5, 0.0])
FAKE = jnp.array([-3.0, 1.5, 0.0, 4.0])


def _softplus(x):
    return math.log1p(math.exp(x))


def test_discriminator_loss_golden():
    # -V = mean(-log sigmoid(r)) + mean(-log(1 - sigmoid(f))), written out in float64.
    expected = (np.mean([_softplus(-r) for r in [2.0, -1.0, 0.5, 0.0]])
                + np.mean([_softplus(f) for f in [-3.0, 1.5, 0.0, 4.0]]))
    got = losses.bce_discriminator_loss(real_logits=REAL, fake_logits=FAKE)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(got, 2.2671779, rtol=1e-6)  # pinned


def test_generator_losses_golden():
    minimax = losses.minimax_generator_loss(fake_logits=FAKE)
    nonsat = losses.nonsaturating_generator_loss(fake_logits=FAKE)
    np.testing.assert_allclose(minimax, -np.mean([_softplus(f) for f in FAKE.tolist()]), rtol=1e-6)
    np.testing.assert_allclose(nonsat, np.mean([_softplus(-f) for f in FAKE.tolist()]), rtol=1e-6)
    np.testing.assert_allclose(minimax, -1.6153244, rtol=1e-6)
    np.testing.assert_allclose(nonsat, 0.9903244, rtol=1e-6)


def test_value_at_d_one_half_is_minus_log4():
    zeros = jnp.zeros(5)
    # D = 1/2 everywhere: V = 2 log(1/2) = -log 4, so the D loss is log 4.
    np.testing.assert_allclose(
        losses.bce_discriminator_loss(real_logits=zeros, fake_logits=zeros), math.log(4), rtol=1e-6)
    np.testing.assert_allclose(losses.minimax_generator_loss(fake_logits=zeros), -math.log(2),
                               rtol=1e-6)


@pytest.mark.parametrize("big", [50.0, 1e4, 1e30])
def test_large_logits_stay_finite_and_exact(big):
    real = jnp.array([big, -big])
    fake = jnp.array([-big, big])
    d = losses.bce_discriminator_loss(real_logits=real, fake_logits=fake)
    # Half the terms are ~0 and half are ~big: mean(0, big) twice.
    np.testing.assert_allclose(d, big, rtol=1e-5)
    for fn in (losses.minimax_generator_loss, losses.nonsaturating_generator_loss):
        value, grad = jax.value_and_grad(lambda f: fn(fake_logits=f))(fake)
        assert jnp.isfinite(value) and jnp.all(jnp.isfinite(grad))


def test_minimax_gradient_vanishes_when_d_rejects_fakes():
    # D confidently rejects: logits -20 (D(G(z)) ~ 2e-9).
    fake = jnp.full((4,), -20.0)
    g_minimax = jax.grad(lambda f: losses.minimax_generator_loss(fake_logits=f))(fake)
    g_nonsat = jax.grad(lambda f: losses.nonsaturating_generator_loss(fake_logits=f))(fake)
    # d/dl [-softplus(l)] / B = -sigmoid(l) / B ~ -5e-10; d/dl softplus(-l) / B = -sigmoid(-l) / B.
    np.testing.assert_allclose(g_minimax, -jax.nn.sigmoid(-20.0) / 4, rtol=1e-5)
    assert float(jnp.max(jnp.abs(g_minimax))) < 1e-9
    np.testing.assert_allclose(g_nonsat, -0.25, rtol=1e-6)
    # Both push the logits up (towards 'real'), but only the nonsaturating one usefully.
    assert float(jnp.max(jnp.abs(g_nonsat))) / float(jnp.max(jnp.abs(g_minimax))) > 1e8


def test_objectives_share_the_discriminator_loss_and_same_fixed_point_direction():
    for name in ("minimax", "nonsaturating"):
        assert losses.get_objective(name).discriminator_loss is losses.bce_discriminator_loss
    # Where D is fooled (logit +20), minimax still has gradient -sigmoid(20)/B ~ -1/B.
    fake = jnp.full((2,), 20.0)
    g = jax.grad(lambda f: losses.minimax_generator_loss(fake_logits=f))(fake)
    np.testing.assert_allclose(g, -0.5, rtol=1e-6)


def test_unknown_objective_lists_valid_names():
    with pytest.raises(ValueError, match=r"'wasserstein'.*\['minimax', 'nonsaturating'\]"):
        losses.get_objective("wasserstein")
