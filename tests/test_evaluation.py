"""Closed forms, brute-force references and input checks for the sample-quality metrics."""

import math

import numpy as np
import pytest
from scipy import linalg, special

from gan_jax.metrics import evaluation


def _rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- Frechet distance

def test_gaussian_stats_match_numpy():
    x = _rng().normal(size=(20, 3)).astype(np.float32)
    mean, cov = evaluation.gaussian_stats(x)
    assert mean.dtype == cov.dtype == np.float64 and cov.shape == (3, 3)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-12)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    x = _rng().normal(3.0, 2.0, size=(50, 6))
    scale = np.trace(np.cov(x, rowvar=False))
    assert abs(evaluation.frechet_distance(x, x)) < 1e-6 * scale


def test_frechet_distance_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = evaluation.frechet_distance_from_stats(mu1, np.diag(s1), mu2, np.diag(s2))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(got, 12.25, rtol=1e-12)  # 7.25 + (10 - 6) + (5 - 4) + 0


def test_frechet_distance_full_covariance_matches_sqrtm_and_is_symmetric():
    rng = _rng(1)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    cov1, cov2 = a @ a.T + 0.1 * np.eye(4), b @ b.T + 0.1 * np.eye(4)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    expected = (np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2)
                - 2 * np.trace(linalg.sqrtm(cov1 @ cov2)).real)
    forward = evaluation.frechet_distance_from_stats(mu1, cov1, mu2, cov2)
    backward = evaluation.frechet_distance_from_stats(mu2, cov2, mu1, cov1)
    np.testing.assert_allclose(forward, expected, rtol=1e-9)
    np.testing.assert_allclose(backward, forward, rtol=1e-9)


def test_frechet_distance_is_stable_for_singular_covariances():
    # N < D: rank-deficient covariances, where sqrtm(C1 C2) tends to go complex.
    rng = _rng(2)
    x, y = rng.normal(size=(5, 16)), rng.normal(size=(5, 16))
    fd = evaluation.frechet_distance(x, y)
    assert np.isfinite(fd) and fd > 0
    # sqrt of ~1e-16 rounding eigenvalues leaves ~1e-8 per direction, far below the scale ~32.
    assert abs(evaluation.frechet_distance(x, x)) < 1e-6


def test_frechet_distance_rejects_non_psd_or_asymmetric_covariance():
    # tr(-I) cancels tr(I): without the check this would quietly return 0.
    with pytest.raises(ValueError, match="cov1 is not PSD"):
        evaluation.frechet_distance_from_stats(np.zeros(2), -np.eye(2), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="cov2 is not symmetric"):
        evaluation.frechet_distance_from_stats(np.zeros(2), np.eye(2), np.zeros(2),
                                               np.array([[1.0, 0.5], [0.0, 1.0]]))


# ---------------------------------------------------------------------- class-probability metrics

@pytest.mark.parametrize("k", [1, 3, 10])
def test_classifier_score_of_one_hot_predictions_over_k_classes_is_k(k):
    probs = np.eye(10)[np.repeat(np.arange(k), 4)]
    np.testing.assert_allclose(evaluation.classifier_score(probs), k, atol=1e-6)


def test_classifier_score_of_uniform_predictions_is_one():
    np.testing.assert_allclose(evaluation.classifier_score(np.full((7, 10), 0.1)), 1.0, atol=1e-12)


def test_classifier_score_golden():
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    marginal = probs.mean(0)
    expected = math.exp(np.mean(np.sum(probs * np.log(probs / marginal), axis=1)))
    np.testing.assert_allclose(evaluation.classifier_score(probs), expected, rtol=1e-12)
    np.testing.assert_allclose(evaluation.classifier_score(probs), 1.3170523, rtol=1e-7)


def test_mode_coverage_one_class_and_uniform():
    one = evaluation.mode_coverage(np.full(30, 7))
    assert one["classes_covered"] == 1
    assert one["histogram"] == [0.0] * 7 + [1.0] + [0.0] * 2
    np.testing.assert_allclose(one["class_kl"], math.log(10), rtol=1e-12)
    uniform = evaluation.mode_coverage(np.tile(np.arange(10), 5))
    assert uniform["classes_covered"] == 10 and uniform["histogram"] == [0.1] * 10
    assert abs(uniform["class_kl"]) < 1e-12


def test_mode_coverage_threshold_is_inclusive():
    labels = np.array([0] * 96 + [1] * 4)
    assert evaluation.mode_coverage(labels, threshold=0.05)["classes_covered"] == 1
    assert evaluation.mode_coverage(labels, threshold=0.04)["classes_covered"] == 2
    kl = evaluation.mode_coverage(labels, num_classes=2)["class_kl"]
    np.testing.assert_allclose(kl, 0.96 * math.log(1.92) + 0.04 * math.log(0.08), rtol=1e-12)


# ------------------------------------------------------------------------ precision and recall

def _clusters(centres, per_cluster, seed):
    rng = _rng(seed)
    return np.concatenate([c + 0.1 * rng.normal(size=(per_cluster, 2)) for c in centres])


CENTRES = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])


def _brute_force_precision_recall(real, fake, k):
    def radii(x):
        d = np.sum((x[:, None] - x[None]) ** 2, axis=-1)
        return np.sort(d, axis=1)[:, k]

    def inside(query, points, r):
        d = np.sum((query[:, None] - points[None]) ** 2, axis=-1)
        return np.mean(np.any(d <= r[None], axis=1))

    return inside(fake, real, radii(real)), inside(real, fake, radii(fake))


def test_precision_recall_of_identical_sets_is_one():
    x = _clusters(CENTRES, 10, seed=0)
    assert evaluation.precision_recall(x, x, k=3) == (1.0, 1.0)


def test_precision_recall_of_a_far_away_set_is_zero():
    x = _clusters(CENTRES, 10, seed=0)
    assert evaluation.precision_recall(x, x + 100.0, k=3) == (0.0, 0.0)


def test_precision_recall_half_the_modes():
    real = _clusters(CENTRES, 40, seed=0)
    # Exactly the real points of two of the four clusters: every fake lies in the real manifold,
    # and exactly the real points of those two clusters lie in the fake manifold.
    assert evaluation.precision_recall(real, real[:80], k=3) == (1.0, 0.5)
    # An independent draw from those two clusters: precision close to 1, recall close to 1/2.
    precision, recall = evaluation.precision_recall(real, _clusters(CENTRES[:2], 40, seed=1), k=3)
    assert precision >= 0.9 and 0.4 <= recall <= 0.5


def test_precision_recall_blocking_matches_brute_force():
    rng = _rng(3)
    real, fake = rng.normal(size=(37, 5)), rng.normal(0.3, 1.2, size=(29, 5))
    small = evaluation.precision_recall(real, fake, k=4, batch_size=6)
    large = evaluation.precision_recall(real, fake, k=4, batch_size=1024)
    assert small == large
    np.testing.assert_allclose(small, _brute_force_precision_recall(real, fake, 4), atol=1e-12)


# ----------------------------------------------------------------------- kernel distance (KID)

def test_kid_matches_direct_formula_on_a_tiny_case():
    rng = _rng(4)
    x, y = rng.normal(size=(6, 3)), rng.normal(0.5, 1.0, size=(6, 3))

    def kern(a, b):
        return (a @ b / 3 + 1) ** 3

    m = 6
    within = sum(kern(x[i], x[j]) + kern(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    cross = sum(kern(x[i], y[j]) for i in range(m) for j in range(m))
    expected = within / (m * (m - 1)) - 2 * cross / m**2
    # One subset of all the points: a permutation, which MMD^2 ignores.
    mean, std = evaluation.kernel_inception_distance(x, y, num_subsets=1, subset_size=1000)
    np.testing.assert_allclose(mean, expected, rtol=1e-10)
    assert std == 0.0


def test_kid_near_zero_for_same_distribution_and_positive_when_shifted():
    rng = _rng(5)
    real, same, shifted = (rng.normal(size=(300, 8)), rng.normal(size=(300, 8)),
                           rng.normal(1.0, 1.0, size=(300, 8)))
    same_mean, same_std = evaluation.kernel_inception_distance(real, same, num_subsets=5,
                                                               subset_size=200)
    shift_mean, _ = evaluation.kernel_inception_distance(real, shifted, num_subsets=5,
                                                         subset_size=200)
    assert abs(same_mean) < 0.05 and same_std > 0
    assert shift_mean > 1.0 and shift_mean > 20 * abs(same_mean)
    # Same seed, same subsets.
    assert evaluation.kernel_inception_distance(real, same, num_subsets=5, subset_size=200) == (
        same_mean, same_std)


# ------------------------------------------------------------------ Parzen window log-likelihood

def _brute_force_parzen(samples, test, sigma):
    d = np.sum((test[:, None] - samples[None]) ** 2, axis=-1)
    lls = (special.logsumexp(-d / (2 * sigma**2), axis=1) - np.log(samples.shape[0])
           - samples.shape[1] / 2 * np.log(2 * np.pi * sigma**2))
    return lls.mean(), lls.std() / np.sqrt(test.shape[0])


def test_parzen_blocked_matches_float64_brute_force():
    rng = _rng(6)
    samples = rng.uniform(size=(37, 12)).astype(np.float32)
    test = rng.uniform(size=(11, 12)).astype(np.float32)
    expected = _brute_force_parzen(samples.astype(np.float64), test.astype(np.float64), 0.3)
    for batch_size in (4, 1000):  # padded blocks and chunks; one block holding everything
        got = evaluation.parzen_log_likelihood(samples, test, 0.3, batch_size=batch_size)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-5)


def test_parzen_single_sample_is_a_gaussian_density():
    test = np.array([[0.3, -0.4]])  # ||x||^2 = 0.25
    mean, se = evaluation.parzen_log_likelihood(np.zeros((1, 2)), test, 0.5)
    np.testing.assert_allclose(mean, -0.25 / 0.5 - math.log(2 * math.pi * 0.25), rtol=1e-6)
    assert se == 0.0


def test_parzen_estimates_the_convolved_gaussian():
    # Over samples of N(0, s^2 I), the Parzen density with width sigma has expectation
    # N(0, (s^2 + sigma^2) I); with many samples in 2-D the estimate is close to it.
    rng = _rng(7)
    s, sigma, dim = 1.0, 0.5, 2
    samples = rng.normal(0, s, size=(20000, dim))
    test = rng.normal(0, s, size=(400, dim))
    var = s**2 + sigma**2
    analytic = np.mean(-np.sum(test**2, 1) / (2 * var) - dim / 2 * np.log(2 * np.pi * var))
    mean, se = evaluation.parzen_log_likelihood(samples, test, sigma, batch_size=2048)
    assert abs(mean - analytic) < 0.01
    assert 0 < se < 0.1


def test_select_parzen_sigma_picks_the_maximum_likelihood_width():
    # One sample at 0: the density is N(0, sigma^2 I), whose mean log-likelihood on validation
    # points is maximised at sigma^2 = mean ||x||^2 / D. Build validation points with that at 0.3^2.
    rng = _rng(8)
    validation = rng.normal(size=(50, 4))
    validation *= 0.3 / np.sqrt(np.mean(np.sum(validation**2, 1)) / 4)
    sigmas = [0.1, 0.2, 0.3, 0.5, 1.0]
    best, lls = evaluation.select_parzen_sigma(np.zeros((1, 4)), validation, sigmas)
    assert best == 0.3 and len(lls) == 5 and int(np.argmax(lls)) == 2
    for sigma, ll in zip(sigmas, lls):
        np.testing.assert_allclose(
            ll, evaluation.parzen_log_likelihood(np.zeros((1, 4)), validation, sigma)[0], rtol=1e-12)


# ------------------------------------------------------------------------------- bad inputs

GOOD = np.random.default_rng(9).normal(size=(8, 3))
NAN = GOOD.copy()
NAN[2, 1] = np.nan
INF = GOOD.copy()
INF[0, 0] = np.inf

CALLS = {
    "gaussian_stats": lambda x: evaluation.gaussian_stats(x),
    "frechet_distance": lambda x: evaluation.frechet_distance(x, GOOD),
    "precision_recall": lambda x: evaluation.precision_recall(GOOD, x, k=3),
    "kid": lambda x: evaluation.kernel_inception_distance(x, GOOD),
    "parzen": lambda x: evaluation.parzen_log_likelihood(GOOD, x, 0.2),
    "select_sigma": lambda x: evaluation.select_parzen_sigma(x, GOOD),
    "classifier_score": lambda x: evaluation.classifier_score(x),
}


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize("bad, match", [(NAN, "NaN or inf"), (INF, "NaN or inf"),
                                        (GOOD[0], "rank 2"), (GOOD[None], "rank 2")])
def test_bad_inputs_raise(name, bad, match):
    with pytest.raises(ValueError, match=match):
        CALLS[name](bad)


@pytest.mark.parametrize("call, match", [
    (lambda: evaluation.gaussian_stats(GOOD[:1]), "N >= 2"),
    (lambda: evaluation.frechet_distance(GOOD, GOOD[:1]), "N >= 2"),
    (lambda: evaluation.precision_recall(GOOD, GOOD[:3], k=3), "N >= 4"),
    (lambda: evaluation.precision_recall(GOOD, GOOD[:, :2]), "feature dimension"),
    (lambda: evaluation.kernel_inception_distance(GOOD[:1], GOOD), "N >= 2"),
    (lambda: evaluation.parzen_log_likelihood(GOOD, GOOD[:0], 0.2), "N >= 1"),
    (lambda: evaluation.parzen_log_likelihood(GOOD, GOOD, 0.0), "sigma"),
    (lambda: evaluation.select_parzen_sigma(GOOD, GOOD, sigmas=[0.1, -1.0]), "sigma"),
    (lambda: evaluation.classifier_score(np.full((2, 3), 0.5)), "sum"),
    (lambda: evaluation.mode_coverage(np.array([0, 10])), r"\[0, 10\)"),
    (lambda: evaluation.mode_coverage(np.array([0.0, np.nan])), "NaN"),
    (lambda: evaluation.mode_coverage(np.zeros((2, 2), int)), "vector"),
    (lambda: evaluation.frechet_distance_from_stats(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2)),
     "dimension"),
])
def test_too_few_samples_and_other_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
