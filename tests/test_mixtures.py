"""2-D mixture experiments: targets, the coverage / quality metric, and a tiny vmapped run."""

import json
import os

import jax
import numpy as np
import pytest

from gan_jax.theory import mixture_data, mixtures

# A true sample lies within 3 std of its 2-D Gaussian with probability 1 - exp(-9/2); within
# 3 std of a (locally straight) curve with probability P(|N(0, 1)| <= 3).
P_WITHIN_3STD_2D = 1.0 - np.exp(-4.5)  # 0.98889
P_WITHIN_3STD_1D = 0.99730


def _target(name):
    return mixture_data.get_target(name)


def _spiral_points(n):
    """``n`` points exactly on the noiseless curve, evenly spaced in t (equal mass)."""
    lo, hi = mixture_data.SPIRAL_T_RANGE
    return mixture_data.spiral_curve(lo + (np.arange(n) + 0.5) * (hi - lo) / n)


# ----------------------------------------------------------------------------- targets


def test_target_geometry_is_the_papers():
    ring, grid, spiral = _target("ring"), _target("grid"), _target("spiral")
    assert (ring.num_modes, grid.num_modes, spiral.num_modes) == (8, 25, 20)
    np.testing.assert_allclose(ring.centers[[0, 2, 4]], [[2, 0], [0, 2], [-2, 0]], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(ring.centers, axis=1), 2.0)
    assert ring.std == 0.02
    # gan_toy.py: centres 2 * {-2..2}, noise 0.05, all divided by 2.828.
    np.testing.assert_allclose(grid.centers[0], [-4 / 2.828, -4 / 2.828])
    np.testing.assert_allclose(np.unique(grid.centers[:, 0]), np.arange(-2, 3) * 2 / 2.828)
    np.testing.assert_allclose(grid.std, 0.05 / 2.828)
    np.testing.assert_allclose(spiral.std, 0.25 / 7.5)
    # The curve: radius t / 7.5 at angle t.
    t = np.array([1.5 * np.pi, 2 * np.pi, 4.5 * np.pi])
    np.testing.assert_allclose(mixture_data.spiral_curve(t),
                               [[0, -1.5 * np.pi / 7.5], [2 * np.pi / 7.5, 0],
                                [0, 4.5 * np.pi / 7.5]], atol=1e-12)


@pytest.mark.parametrize("name", ["ring", "grid"])
def test_gaussian_mixture_sampler(name):
    target = _target(name)
    x = np.asarray(target.sample(jax.random.key(0), 100_000), np.float64)
    assert x.shape == (100_000, 2)
    k = np.argmin(((x[:, None, :] - target.centers[None]) ** 2).sum(-1), axis=1)
    # Equal weights: each mode holds 1/K of the samples (binomial std ~ sqrt(p / N)).
    np.testing.assert_allclose(np.bincount(k, minlength=target.num_modes) / len(x),
                               1 / target.num_modes, atol=5 * np.sqrt(1 / target.num_modes / 1e5))
    for mode in (0, target.num_modes // 2, target.num_modes - 1):
        pts = x[k == mode]
        np.testing.assert_allclose(pts.mean(0), target.centers[mode], atol=5 * target.std / 50)
        np.testing.assert_allclose(pts.std(0), target.std, rtol=0.06)
    # The metric on true samples: every mode covered, quality = P(within 3 std) in 2-D.
    cov = mixture_data.coverage(target, x)
    assert cov["modes_covered"] == target.num_modes
    np.testing.assert_allclose(cov["high_quality"], P_WITHIN_3STD_2D, atol=0.0015)


def test_spiral_sampler():
    target = _target("spiral")
    x = np.asarray(target.sample(jax.random.key(1), 100_000), np.float64)
    radius = np.linalg.norm(x, axis=1)
    lo, hi = mixture_data.SPIRAL_T_RANGE
    assert radius.min() > lo / 7.5 - 6 * target.std and radius.max() < hi / 7.5 + 6 * target.std
    region, distance = target.assign(x)
    # t is uniform, so the 20 equal-t segments hold equal mass.
    np.testing.assert_allclose(np.bincount(region, minlength=20) / len(x), 0.05, atol=0.004)
    # Distance to the curve ~ |normal noise component|: mean sigma * sqrt(2 / pi).
    np.testing.assert_allclose(distance.mean(), target.std * np.sqrt(2 / np.pi), rtol=0.02)
    cov = mixture_data.coverage(target, x)
    assert cov["modes_covered"] == 20
    np.testing.assert_allclose(cov["high_quality"], P_WITHIN_3STD_1D, atol=0.001)


# ----------------------------------------------------------------------------- the metric


@pytest.mark.parametrize("name", ["ring", "grid"])
def test_metric_on_hand_made_sets(name):
    target = _target(name)
    k = target.num_modes
    everywhere = np.repeat(target.centers, 100, axis=0)
    cov = mixture_data.coverage(target, everywhere)
    assert cov == {"modes_covered": k, "high_quality": 1.0, "mode_counts": [100] * k}
    one_mode = np.repeat(target.centers[3:4], 100 * k, axis=0)
    cov = mixture_data.coverage(target, one_mode)
    assert (cov["modes_covered"], cov["high_quality"]) == (1, 1.0)
    far = np.full((500, 2), 50.0)
    assert mixture_data.coverage(target, far)["modes_covered"] == 0
    assert mixture_data.coverage(target, far)["high_quality"] == 0.0
    # Half way between two neighbouring modes is far (> 3 std) from both.
    between = np.repeat((target.centers[:1] + target.centers[1:2]) / 2, 200, axis=0)
    assert mixture_data.coverage(target, between)["high_quality"] == 0.0


def test_metric_thresholds():
    target = _target("ring")  # N = 2500 samples: a mode needs 0.2 * 2500 / 8 = 62.5
    std = target.std
    counts = [63, 62] + [0] * 6
    parts = [np.repeat(target.centers[i:i + 1], c, axis=0) for i, c in enumerate(counts)]
    # The rest: just outside 3 std of mode 2 (not high quality), and some just inside.
    outside = target.centers[2] + [3.05 * std, 0.0]
    inside = target.centers[4] + [0.0, 2.95 * std]
    parts += [np.repeat(outside[None], 2000, axis=0), np.repeat(inside[None], 375, axis=0)]
    samples = np.concatenate(parts)
    assert len(samples) == 2500
    cov = mixture_data.coverage(target, samples)
    assert cov["mode_counts"] == [63, 62, 0, 0, 375, 0, 0, 0]
    assert cov["modes_covered"] == 2  # modes 0 (63 >= 62.5) and 4; not mode 1 (62)
    assert cov["high_quality"] == 500 / 2500
    # Non-finite samples are never high quality.
    nan = samples.copy()
    nan[:63] = np.nan
    cov = mixture_data.coverage(target, nan)
    assert cov["modes_covered"] == 1 and cov["high_quality"] == 437 / 2500


def test_spiral_metric_on_hand_made_sets():
    target = _target("spiral")
    on_curve = _spiral_points(2000)
    cov = mixture_data.coverage(target, on_curve)
    assert cov == {"modes_covered": 20, "high_quality": 1.0, "mode_counts": [100] * 20}
    # All on the first twentieth of the curve: one segment.
    lo, hi = mixture_data.SPIRAL_T_RANGE
    first = mixture_data.spiral_curve(np.linspace(lo, lo + (hi - lo) / 20 * 0.99, 2000))
    cov = mixture_data.coverage(target, first)
    assert (cov["modes_covered"], cov["high_quality"]) == (1, 1.0)
    # Pushed off the curve along its normal by 2.9 vs 3.1 std: in, then out of the band.
    t = np.linspace(lo + 1.0, hi - 1.0, 1000)
    tangent = np.stack([np.cos(t) - t * np.sin(t), np.sin(t) + t * np.cos(t)], axis=1)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1) / np.linalg.norm(tangent, axis=1)[:, None]
    for scale, quality in ((2.9, 1.0), (3.1, 0.0)):
        pushed = mixture_data.spiral_curve(t) + scale * target.std * normal
        assert mixture_data.coverage(target, pushed)["high_quality"] == quality
    far = np.full((500, 2), 20.0)
    assert mixture_data.coverage(target, far) == {"modes_covered": 0, "high_quality": 0.0,
                                                  "mode_counts": [0] * 20}


def test_reference_levels():
    """True samples reach the ceiling; uniform noise on the figure's square does not."""
    ref = mixtures.reference_metrics(_target("ring"))
    assert ref["data"]["modes_covered"] == 8 and ref["data"]["high_quality"] > 0.98
    assert ref["uniform_square"]["modes_covered"] == 0
    assert ref["uniform_square"]["high_quality"] < 0.01


def test_snapshot_steps():
    assert mixtures.snapshot_steps(3000) == [0, 375, 750, 1125, 1500, 1875, 2250, 2625, 3000]
    short = mixtures.snapshot_steps(4)
    assert len(short) == 9 and short[0] == 0 and short[-1] == 4
    assert all(a <= b for a, b in zip(short, short[1:]))


def test_unknown_names_list_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match=r"experiment 'moons'.*\['grid', 'ring', 'spiral'\]"):
        mixtures.run("moons", str(tmp_path))
    with pytest.raises(ValueError, match="objective 'gan'"):
        mixtures.run("ring", str(tmp_path), objectives=("gan",))
    with pytest.raises(ValueError, match="steps and seeds must be >= 1"):
        mixtures.run("ring", str(tmp_path), steps=0)
    assert not os.listdir(tmp_path)


# ----------------------------------------------------------------------------- training

OBJECTIVES = ("nonsaturating", "wgan-gp")
SEEDS = 3


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("ring"))
    return workdir, mixtures.run("ring", workdir, seeds=SEEDS, quick=True, objectives=OBJECTIVES)


def test_quick_run_results(quick_run):
    workdir, results = quick_run
    with open(os.path.join(workdir, "results.json")) as f:
        assert json.load(f) == results
    assert (results["num_modes"], results["num_seeds"], results["steps"]) == (8, SEEDS, 16)
    assert results["seeds"] == [0, 1, 2] and results["snapshot_steps"][-1] == 16
    assert results["net"]["g_params"] == 18946 and results["net"]["d_params"] == 17025
    assert results["wall_time_s"] > 0
    for kind in ("surfaces", "seeds", "coverage"):
        path = os.path.join(workdir, results["figures"][kind])
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert list(results["objectives"]) == list(OBJECTIVES)
    for name, res in results["objectives"].items():
        assert len(res["modes_covered"]) == len(res["high_quality"]) == SEEDS
        assert res["modes_covered_mean"] == pytest.approx(np.mean(res["modes_covered"]))
        assert res["modes_covered_std"] == pytest.approx(np.std(res["modes_covered"], ddof=1))
        assert res["high_quality_mean"] == pytest.approx(np.mean(res["high_quality"]))
        assert res["high_quality_std"] == pytest.approx(np.std(res["high_quality"], ddof=1))
        assert all(0 <= m <= 8 for m in res["modes_covered"])
        assert len(res["modes_covered_by_step"]["mean"]) == len(results["snapshot_steps"])
        assert res["config"]["objective"] == name
        for key, value in mixtures.OBJECTIVE_SETTINGS[name].items():
            assert res["config"][key] == value
        assert np.isfinite(res["final_train_metrics"]["d_loss"])
    assert 0 < results["objectives"]["nonsaturating"]["final_train_metrics"]["d_fake"] < 1
    assert "critic_gap" in results["objectives"]["wgan-gp"]["final_train_metrics"]


def test_vmapped_seeds_differ_and_reproduce_bitwise(quick_run):
    """Seeds (0, 1, 0) in one program (compiled already by the quick run: same config and
    shapes): the two seed-0 runs are bit-identical, seed 1 differs, a rerun is bit-identical,
    and seed 0 is the quick run's seed 0."""
    _, results = quick_run
    target, config = _target("ring"), mixtures.objective_config("nonsaturating")
    first = mixtures.train_objective(target, config, (0, 1, 0), 16)
    second = mixtures.train_objective(target, config, (0, 1, 0), 16)
    samples = first["samples"]
    assert samples.shape == (9, 3, mixtures.EVAL_SAMPLES, 2)
    assert first["surfaces"].shape == (9, 3, mixtures.SURFACE_RESOLUTION ** 2)
    assert np.all((first["surfaces"] >= 0) & (first["surfaces"] <= 1))  # sigmoid(D)
    np.testing.assert_array_equal(samples, second["samples"])
    np.testing.assert_array_equal(first["surfaces"], second["surfaces"])
    np.testing.assert_array_equal(samples[:, 0], samples[:, 2])
    assert np.abs(samples[-1, 0] - samples[-1, 1]).mean() > 1e-3
    assert not np.array_equal(samples[0, 0], samples[-1, 0])  # training moved G
    assert (first["coverage"][-1][0]["mode_counts"]
            == results["objectives"]["nonsaturating"]["mode_counts"][0])
