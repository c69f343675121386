"""Theory lab: the quantities the papers prove, checked numerically on tiny budgets.

Pure math first (quadrature against closed forms and scipy, W1 of sorted samples), then the
trained networks (each fixture compiles one vmapped program and is shared), then ``run``.
Tolerances are set from measured errors (noted beside each) with a margin, and far below what
a wrong sign or a missing sigmoid would give (errors of order 1).
"""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from gan_jax import Config, build_gan
from gan_jax.theory import lab as theory, gaussian_1d as theory_1d, lines as theory_lines
from gan_jax.theory import closed_form as tm
from gan_jax.theory import train as theory_train

LOG2, LOG4 = math.log(2.0), math.log(4.0)
N01 = tm.Mixture1D.gaussian(0.0, 1.0)


def _uniform(lo):
    return lambda x: ((x >= lo) & (x < lo + 1.0)).astype(np.float64)


@pytest.mark.parametrize("shift,expected", [(0.0, 0.0), (0.25, 0.25 * LOG2), (0.7, 0.7 * LOG2),
                                            (1.5, LOG2)])
def test_jsd_of_shifted_uniforms_closed_form(shift, expected):
    """U[0, 1] vs U[a, a + 1]: the non-overlap (mass a each side) contributes a log 2."""
    grid = np.linspace(-1.0, 3.0, 400001)
    assert abs(tm.jsd(_uniform(0.0), _uniform(shift), grid) - expected) < 1e-4


@pytest.mark.parametrize("p,q", [
    (N01, tm.Mixture1D.gaussian(1.0, 1.0)),
    (N01, tm.Mixture1D.gaussian(0.5, 0.5)),
    (theory_1d.BIMODAL, tm.Mixture1D.gaussian(0.0, 1.5)),
])
def test_jsd_matches_scipy_quad(p, q):
    def integrand(x):
        pv, qv = p.pdf(x), q.pdf(x)
        m = (pv + qv) / 2
        return 0.5 * pv * np.log(pv / m) + 0.5 * qv * np.log(qv / m)

    reference, _ = integrate.quad(integrand, -15, 15, points=[-2, 0, 2], limit=200)
    target, divergence = tm.game_value_at_optimum(p, q)
    assert abs(divergence - reference) < 1e-8
    assert target == pytest.approx(-LOG4 + 2 * reference, abs=1e-8)


def test_value_is_maximised_by_optimal_logit():
    """V(D*) = -log 4 + 2 JSD (Thm. 1); D = 1/2 gives -log 4; any other D is lower."""
    p, q = N01, tm.Mixture1D.gaussian(1.0, 0.7)
    grid = tm.integration_grid(p, q)
    target, _ = tm.game_value_at_optimum(p, q)
    best = tm.optimal_logit(p, q, grid)
    assert tm.value(best, p, q, grid) == pytest.approx(target, abs=1e-9)
    assert tm.value(np.zeros_like(grid), p, q, grid) == pytest.approx(-LOG4, abs=1e-9)
    assert tm.value(best + 0.3, p, q, grid) < target - 1e-3
    assert tm.value(-best, p, q, grid) < target - 0.5  # the sign-flipped discriminator


def test_wasserstein1_sorted():
    assert tm.wasserstein1_sorted([0.0, 1.0, 2.0], [3.0, 1.0, 5.0]) == pytest.approx(2.0)
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 20000), rng.normal(0, 1, 20000)
    for shift in (0.7, -1.3):  # W1(N(0,1), N(s,1)) = |s|; sampling error ~0.01 at n = 20000
        assert abs(tm.wasserstein1_sorted(a, b + shift) - abs(shift)) < 0.03
    with pytest.raises(ValueError, match="equal sizes"):
        tm.wasserstein1_sorted(a, b[:10])


def test_high_density_region_of_a_gaussian():
    grid = np.linspace(-6, 6, 12001)
    region = grid[tm.high_density_region(N01.pdf(grid), grid, 0.99)]
    np.testing.assert_allclose([region.min(), region.max()], [-2.5758, 2.5758], atol=2e-3)


def test_mixture_quantile_inverts_cdf():
    u = np.array([1e-4, 0.1, 0.5, 0.77, 0.9999])
    np.testing.assert_allclose(theory_1d.BIMODAL.cdf(theory_1d.BIMODAL.quantile(u)), u,
                               atol=1e-10)


@pytest.mark.parametrize("mixture", [tm.Mixture1D.gaussian(0.5, 0.5), theory_1d.BIMODAL,
                                     tm.Mixture1D((0.3, 0.7), (-1.0, 2.0), (0.4, 1.2))])
def test_frozen_generator_and_sampler_have_the_known_density(mixture):
    """The mixture1d generator with mixture_g_params, and sample_mixture, draw from the
    mixture: Kolmogorov-Smirnov distance to its cdf ~ 1/sqrt(n) (0.004 at n = 60000)."""
    gan = build_gan(Config(arch="mixture1d", prior="normal"))
    z = gan.sample_z(jax.random.key(1), 60000)
    params = jax.tree.map(jnp.asarray, theory_train.mixture_g_params(mixture))
    init = gan.generator.init(jax.random.key(0), z[:2])["params"]
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, init)
    fake = np.asarray(gan.generator.apply({"params": params}, z))[:, 0]
    real = np.asarray(tm.sample_mixture(mixture.padded(2), jax.random.key(2), 60000))[:, 0]
    for x in (fake, real):
        assert stats.kstest(x, mixture.cdf).statistic < 0.01


# --- trained networks -------------------------------------------------------------------------

D_PAIRS = (theory_1d.OPTIMAL_D_PAIRS[0], theory_1d.OPTIMAL_D_PAIRS[1], (N01, N01))


@pytest.fixture(scope="module")
def fitted():
    """D trained alone (1000 updates, 2 seeds) against each pair's frozen p_g."""
    grids = [tm.integration_grid(d, g, num=801, num_stds=8.0) for d, g in D_PAIRS]
    return grids, theory_1d.fit_pairs(D_PAIRS, [0, 1], 1000, grids)


def test_trained_discriminator_is_optimal(fitted):
    """Measured max gaps 0.006 / 0.03 / 0.002."""
    grids, logits = fitted
    for (p_data, p_g), grid, pair_logits in zip(D_PAIRS, grids, logits):
        mask = tm.high_density_region((p_data.pdf(grid) + p_g.pdf(grid)) / 2, grid)
        d_star = 1 / (1 + np.exp(-tm.optimal_logit(p_data, p_g, grid)))
        d = 1 / (1 + np.exp(-pair_logits))
        assert np.max(np.abs(d - d_star)[:, mask]) < 0.06


def test_trained_value_is_minus_log4_plus_2jsd(fitted):
    """Measured errors <= 2e-4; the value is a lower bound (V(D) <= V(D*))."""
    grids, logits = fitted
    for (p_data, p_g), grid, pair_logits in zip(D_PAIRS, grids, logits):
        target, _ = tm.game_value_at_optimum(p_data, p_g)
        for run_logits in pair_logits:
            value = tm.value(run_logits, p_data, p_g, grid)
            assert target - 3e-3 < value < target + 1e-6


THETAS = np.array([-0.5, 0.0, 1.0])


@pytest.fixture(scope="module")
def lines_js():
    return theory_lines._fit_over_thetas(theory_lines.JS_CONFIG, THETAS, [0, 1], 300)


@pytest.fixture(scope="module")
def lines_w():
    return theory_lines._fit_over_thetas(theory_lines.W_CONFIG, THETAS, [0, 1], 300)


def test_parallel_lines_js_estimate_is_flat(lines_js):
    """(max_D V + log 4) / 2 = log 2 for theta != 0 (measured within 1e-4), 0 at theta = 0."""
    js = (lines_js["value"] + LOG4) / 2
    np.testing.assert_allclose(js[THETAS != 0], LOG2, atol=5e-3)
    assert np.all(np.abs(js[THETAS == 0]) < 0.02)
    # The saturating (minimax) loss sends theta a vanishing gradient through the trained D,
    # the nonsaturating one does not (measured |grad| ~1e-3 vs ~20).
    nonzero = THETAS != 0
    minimax = np.abs(lines_js["grad_minimax"][nonzero])
    nonsaturating = np.abs(lines_js["grad_nonsaturating"][nonzero])
    assert np.all(minimax < 0.05) and np.all(nonsaturating > 1.0)


def test_parallel_lines_w_estimate_is_abs_theta(lines_w):
    """gap / slope = |theta| (measured within 2e-3); the raw WGAN-GP gap is
    |theta| + theta^2 / (2 lambda), 1.05 at theta = 1 (measured within 3e-3)."""
    w = lines_w["value"] / lines_w["grad_norm_mean"]
    np.testing.assert_allclose(w, np.broadcast_to(np.abs(THETAS)[:, None], w.shape), atol=0.015)
    gp = theory_lines.W_CONFIG.gp_weight
    optimum = np.abs(THETAS) + THETAS ** 2 / (2 * gp)
    np.testing.assert_allclose(lines_w["value"],
                               np.broadcast_to(optimum[:, None], w.shape), atol=0.015)
    # The generator's gradient through the critic is sign(theta) * slope (~ +-1).
    grads = lines_w["grad_wgan"][THETAS != 0]
    np.testing.assert_allclose(
        grads, np.broadcast_to(np.sign(THETAS[THETAS != 0])[:, None], grads.shape), atol=0.1)


def test_theta_training_minimax_stalls_nonsaturating_converges():
    """From theta = 1, 200 steps at lr 5e-3: minimax measured ~0.87, nonsaturating ~0.03."""
    minimax = theory_lines._train_theta("minimax", [0, 1], 200)
    nonsaturating = theory_lines._train_theta("nonsaturating", [0, 1], 200)
    assert min(minimax["per_seed"]) > 0.7
    assert max(abs(t) for t in nonsaturating["per_seed"]) < 0.15
    assert minimax["final_g_d_fake"] < 1e-2  # D rejects the fakes: the saturating regime


# --- run ---------------------------------------------------------------------------------------

def test_run_gaussian_1d_writes_results_and_figure(tmp_path):
    """300 steps, 2 seeds: W1 measured 2.0 -> ~0.3, D within ~0.05 of 1/2."""
    workdir = str(tmp_path / "g1d")
    results = theory.EXPERIMENTS["gaussian_1d"](workdir, seeds=2, steps=300, quick=True)
    with open(os.path.join(workdir, "results.json")) as f:
        assert json.load(f) == results
    for name in results["figures"]:
        assert os.path.getsize(os.path.join(workdir, name)) > 10_000
    assert results["figures"] == ["gaussian_1d.png"] and results["seeds"] == 2
    assert results["initial_w1"] > 1.5 and results["final_w1"] < 0.6
    assert 0.35 < results["final_d_min"] <= results["final_d_max"] < 0.65
    assert len(results["w1_curve"]["mean"]) == len(results["w1_curve"]["steps"])


def test_run_rejects_unknown_experiment(tmp_path):
    assert sorted(theory.EXPERIMENTS) == ["gaussian_1d", "optimal_d", "parallel_lines",
                                          "value_jsd"]
    with pytest.raises(ValueError, match="valid: .*optimal_d.*parallel_lines"):
        theory.run("nope", str(tmp_path))
