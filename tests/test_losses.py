"""Golden values, stability and gradient behaviour of the objectives."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.games import losses

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
    with pytest.raises(ValueError, match=r"'wasserstein'.*\['hinge', 'lsgan', 'minimax', 'nonsaturating', 'wgan', 'wgan-gp'\]"):
        losses.get_objective("wasserstein")


# ------------------------------------------------------------------ critics: WGAN, LSGAN, hinge

def test_wasserstein_losses_golden():
    # mean(FAKE) = 0.625, mean(REAL) = 0.375
    np.testing.assert_allclose(
        losses.wasserstein_critic_loss(real_logits=REAL, fake_logits=FAKE), 0.25, rtol=1e-6)
    np.testing.assert_allclose(losses.wasserstein_generator_loss(fake_logits=FAKE), -0.625,
                               rtol=1e-6)


def test_least_squares_losses_golden():
    # 1/2 mean((r - 1)^2) = 1/2 * (1 + 4 + 0.25 + 1) / 4; 1/2 mean(f^2) = 1/2 * (9 + 2.25 + 0 + 16) / 4
    expected_d = 0.5 * 6.25 / 4 + 0.5 * 27.25 / 4
    np.testing.assert_allclose(
        losses.least_squares_discriminator_loss(real_logits=REAL, fake_logits=FAKE),
        expected_d, rtol=1e-6)
    np.testing.assert_allclose(expected_d, 4.1875)
    # 1/2 mean((f - 1)^2) = 1/2 * (16 + 0.25 + 1 + 9) / 4
    np.testing.assert_allclose(losses.least_squares_generator_loss(fake_logits=FAKE),
                               0.5 * 26.25 / 4, rtol=1e-6)


def test_hinge_losses_golden():
    # relu(1 - r): [0, 2, 0.5, 1] -> 0.875; relu(1 + f): [0, 2.5, 1, 5] -> 2.125
    np.testing.assert_allclose(
        losses.hinge_discriminator_loss(real_logits=REAL, fake_logits=FAKE), 3.0, rtol=1e-6)
    np.testing.assert_allclose(losses.OBJECTIVES["hinge"].generator_loss(fake_logits=FAKE),
                               -0.625, rtol=1e-6)


def test_every_objective_has_golden_losses_pinned():
    pinned = {"minimax", "nonsaturating", "wgan", "wgan-gp", "lsgan", "hinge"}
    assert set(losses.OBJECTIVES) == pinned  # a new objective needs golden values here
    assert losses.OBJECTIVES["wgan-gp"].discriminator_loss is losses.wasserstein_critic_loss


def _tiny_critic(params, x):
    """A nonlinear per-example critic on [B, 2, 3, 1] images."""
    h = jnp.tanh(x.reshape(x.shape[0], -1) @ params["w1"] + params["b1"])
    return (h ** 2) @ params["w2"]


def test_gradient_penalty_is_per_example_and_matches_float64_finite_differences():
    rng = np.random.default_rng(0)
    params = {"w1": jnp.asarray(rng.normal(size=(6, 5)), jnp.float32),
              "b1": jnp.asarray(rng.normal(size=5), jnp.float32),
              "w2": jnp.asarray(rng.normal(size=5), jnp.float32)}
    real = jnp.asarray(rng.normal(size=(4, 2, 3, 1)), jnp.float32)
    fake = jnp.asarray(rng.normal(size=(4, 2, 3, 1)), jnp.float32)
    key = jax.random.key(7)
    penalty, mean_norm = losses.gradient_penalty(lambda x: _tiny_critic(params, x), real, fake,
                                                 key)

    # Reference: the same interpolation weights, each example's gradient by central
    # differences of its own critic value, in float64.
    eps = np.asarray(jax.random.uniform(key, (4, 1, 1, 1), jnp.float32), np.float64)
    xhat = eps * np.asarray(real, np.float64) + (1 - eps) * np.asarray(fake, np.float64)
    p64 = {k: np.asarray(v, np.float64) for k, v in params.items()}

    def f64(x):  # one example [2, 3, 1] -> scalar
        h = np.tanh(x.reshape(-1) @ p64["w1"] + p64["b1"])
        return (h ** 2) @ p64["w2"]

    norms = []
    for i in range(4):
        grad = np.zeros(6)
        for j in range(6):
            step = np.zeros(6)
            step[j] = 1e-6
            grad[j] = (f64(xhat[i].reshape(-1) + step) - f64(xhat[i].reshape(-1) - step)) / 2e-6
        norms.append(np.linalg.norm(grad))
    norms = np.array(norms)
    np.testing.assert_allclose(penalty, np.mean((norms - 1) ** 2), rtol=1e-4)
    np.testing.assert_allclose(mean_norm, np.mean(norms), rtol=1e-4)
    # Not the norm of the batch-summed gradient (the classic bug): that would differ here.
    summed = np.linalg.norm(np.sum([n for n in norms]))
    assert abs(float(mean_norm) - summed) > 1e-2
    # Differentiable in the critic's parameters.
    grads = jax.grad(lambda p: losses.gradient_penalty(
        lambda x: _tiny_critic(p, x), real, fake, key)[0])(params)
    assert all(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(grads))


def test_clip_params_keeps_every_weight_in_the_box():
    tree = {"a": jnp.array([-1.0, -0.005, 0.0, 0.3]), "b": {"c": jnp.full((3, 3), 7.0)}}
    clipped = losses.clip_params(tree, 0.01)
    for leaf in jax.tree.leaves(clipped):
        assert float(jnp.max(jnp.abs(leaf))) <= 0.01
    np.testing.assert_array_equal(clipped["a"], np.float32([-0.01, -0.005, 0.0, 0.01]))
