"""The theory lab's 1-D experiments: the optimal discriminator, C(G) = -log 4 + 2 JSD, and
Goodfellow et al.'s Figure 1 in motion.

* :func:`optimal_d`: D trained alone against a fixed p_g (``mixture1d`` generator, frozen)
  approaches D*(x) = p_data / (p_data + p_g) (Proposition 1).
* :func:`value_jsd`: the trained D's value V(D, G) approaches -log 4 + 2 JSD(p_data || p_g)
  (Theorem 1); since V(D) <= V(D*) for every D, it can only approach from below.
* :func:`gaussian_1d`: a full GAN (``toy1d`` MLPs, nonsaturating, library step): p_g -> p_data,
  D -> 1/2, and the exact 1-D W1(p_g, p_data) over training.

Each function takes ``(seeds, steps, quick)``, trains every run of every comparison in one
compiled ``jax.vmap``-ed program and returns ``(results, figures)`` where ``figures`` maps a
PNG file name to a function drawing it (see :mod:`gan_jax.theory.lab`).
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.theory import closed_form as tm
from gan_jax.training import sweep
from gan_jax.theory import plots as theory_plots, train as theory_train
from gan_jax.config import Config
from gan_jax.games.classic import build_gan

Mixture1D = tm.Mixture1D
GAUSS = Mixture1D.gaussian
BIMODAL = Mixture1D((0.5, 0.5), (-2.0, 2.0), (0.5, 0.5))

# (p_data, p_g) pairs. optimal_d: a shift (D* a sigmoid of a line), a narrower p_g (D* has a
# dip: quadratic logit) and a bimodal p_data against a wide Gaussian (four crossings).
OPTIMAL_D_PAIRS = ((GAUSS(0, 1), GAUSS(2, 1)), (GAUSS(0, 1), GAUSS(0.5, 0.5)),
                   (BIMODAL, GAUSS(0, 1.5)))
# value_jsd: JSD from 0 (identical) to nearly log 2 (almost disjoint).
VALUE_JSD_PAIRS = ((GAUSS(0, 1), GAUSS(0, 1)), (GAUSS(0, 1), GAUSS(0.5, 1)),
                   (GAUSS(0, 1), GAUSS(1, 1)), (GAUSS(0, 1), GAUSS(2, 1)),
                   (GAUSS(0, 1), GAUSS(4, 1)), (GAUSS(0, 1), GAUSS(0, 2)),
                   (BIMODAL, GAUSS(0, 1.5)))
# D alone: Adam (toy defaults, b1 0.5) at 5e-3, cosine-decayed to 5e-5. Measured with 8
# seeds and 4000 updates: starting at 1e-3 leaves the bimodal pair's D 0.27 from D*; 5e-3
# gets within ~0.05 (the other pairs within ~0.01 either way).
D_CONFIG = Config(arch="mixture1d", prior="normal", objective="nonsaturating",
                  learning_rate=5e-3, batch_size=256)
D_STEPS, QUICK_D_STEPS = 4000, 1500
GRID_POINTS = 1001
HDR_MASS = 0.99


def _evaluate_logits(config: Config, d_params, grid: np.ndarray) -> np.ndarray:
    """D's logits ``[R, G]`` of every run on ``grid`` [G] (float64)."""
    d = build_gan(config).discriminator
    x = jnp.asarray(grid[:, None], jnp.float32)
    logits = jax.jit(jax.vmap(lambda p: d.apply({"params": p}, x)))(d_params)
    return np.asarray(logits, np.float64)


def fit_pairs(pairs: Sequence[tuple[Mixture1D, Mixture1D]], seeds: Sequence[int], steps: int,
              grids: Sequence[np.ndarray], config: Config = D_CONFIG) -> np.ndarray:
    """Trains D alone for every (pair, seed) in one program; returns logits ``[P, S, G]`` of
    each run's D on its pair's grid (``grids``: P arrays of G points)."""
    runs = [(i, seed) for i in range(len(pairs)) for seed in seeds]
    states = sweep.create_states(config, [seed for _, seed in runs])
    g_params = theory_train.stack([theory_train.mixture_g_params(pairs[i][1]) for i, _ in runs])
    states = states.replace(g_params=g_params)
    keys = theory_train.training_keys([seed for _, seed in runs], [i for i, _ in runs])
    real = theory_train.stack([pairs[i][0].padded(theory_train.NUM_COMPONENTS) for i, _ in runs])
    states = theory_train.fit_discriminators(config, states, keys, real, steps)
    logits = np.stack([
        _evaluate_logits(config, jax.tree.map(lambda x: x[i * len(seeds):(i + 1) * len(seeds)],
                                              states.d_params), grids[i])
        for i in range(len(pairs))])
    return logits


def _config_summary(config: Config, steps: int) -> dict:
    return {"config": config.to_dict(), "d_updates": steps,
            "d_hidden": theory_train.MIXTURE_D_HIDDEN,
            "lr_schedule": (f"cosine {config.learning_rate:g} -> "
                            f"{config.learning_rate * theory_train.FINAL_LR_FRACTION:g}"),
            "real_samples": "fresh draws of p_data every update"}


def optimal_d(seeds: Sequence[int], steps: Optional[int], quick: bool):
    """D trained alone against fixed p_g vs D* = p_data / (p_data + p_g).

    The gap is measured on a grid of 1001 points spanning every component's mean +- 6 std,
    restricted to the highest-density region of m = (p_data + p_g) / 2 holding 99% of its mass
    (where D sees data; far outside it V hardly constrains D).
    """
    steps = steps or (QUICK_D_STEPS if quick else D_STEPS)
    grids = [tm.integration_grid(d, g, num=GRID_POINTS, num_stds=6.0)
             for d, g in OPTIMAL_D_PAIRS]
    logits = fit_pairs(OPTIMAL_D_PAIRS, seeds, steps, grids)
    rows, curves = [], []
    for (p_data, p_g), grid, pair_logits in zip(OPTIMAL_D_PAIRS, grids, logits):
        mask = tm.high_density_region((p_data.pdf(grid) + p_g.pdf(grid)) / 2, grid, HDR_MASS)
        d_star = 1.0 / (1.0 + np.exp(-tm.optimal_logit(p_data, p_g, grid)))
        d = 1.0 / (1.0 + np.exp(-pair_logits))  # [S, G]
        gaps = np.max(np.abs(d - d_star)[:, mask], axis=1)  # sup gap per seed
        rows.append({"p_data": p_data.describe(), "p_g": p_g.describe(),
                     "region": [float(grid[mask].min()), float(grid[mask].max())],
                     "max_gap_mean": float(gaps.mean()), "max_gap_std": float(gaps.std()),
                     "max_gap_per_seed": gaps.tolist()})
        curves.append({"grid": grid, "mask": mask, "d_star": d_star, "d": d,
                       "p_data": p_data.pdf(grid), "p_g": p_g.pdf(grid)})
    results = {
        "max_gap": max(r["max_gap_mean"] for r in rows),
        "max_gap_worst_run": max(max(r["max_gap_per_seed"]) for r in rows),
        "gap_definition": ("max |D(x) - D*(x)| over a 1001-point grid (component means +- 6 "
                           "std) restricted to the 99% highest-density region of "
                           "(p_data + p_g)/2; per seed, then mean over seeds; max_gap is the "
                           "largest pair's mean"),
        "pairs": rows, **_config_summary(D_CONFIG, steps)}
    figures = {"optimal_d.png": functools.partial(theory_plots.optimal_d_figure, curves, rows)}
    return results, figures


def value_jsd(seeds: Sequence[int], steps: Optional[int], quick: bool):
    """max_D V(D, G) (a trained D's value, by quadrature) vs -log 4 + 2 JSD (by quadrature)."""
    steps = steps or (QUICK_D_STEPS if quick else D_STEPS)
    grids = [tm.integration_grid(d, g, num=GRID_POINTS * 4, num_stds=8.0)
             for d, g in VALUE_JSD_PAIRS]
    logits = fit_pairs(VALUE_JSD_PAIRS, seeds, steps, grids)
    rows = []
    for (p_data, p_g), grid, pair_logits in zip(VALUE_JSD_PAIRS, grids, logits):
        target, divergence = tm.game_value_at_optimum(p_data, p_g)
        values = np.array([tm.value(l, p_data, p_g, grid) for l in pair_logits])
        rows.append({"name": f"{p_data.describe()} vs {p_g.describe()}",
                     "p_data": p_data.describe(), "p_g": p_g.describe(), "jsd": divergence,
                     "target": target, "value": float(values.mean()),
                     "value_std": float(values.std()),
                     "abs_error": float(abs(values.mean() - target)),
                     "value_per_seed": values.tolist()})
    results = {
        "rows": rows, "max_abs_error": max(r["abs_error"] for r in rows),
        "method": ("value: V(D, G) of each trained D by the trapezoid rule against the known "
                   "densities (grid of 4004 points, means +- 8 std), mean over seeds; target: "
                   "-log 4 + 2 JSD with JSD by the trapezoid rule on 20001 points (means +- 10 "
                   "std)"),
        **_config_summary(D_CONFIG, steps)}
    figures = {"value_jsd.png": functools.partial(theory_plots.value_jsd_figure, rows)}
    return results, figures


# gaussian_1d: p_data = N(2, 0.5^2); the toy1d library architecture and its defaults (k = 1,
# Adam 1e-3). Measured alternatives (8 seeds): k = 5 for 2000 steps reaches W1 0.11 +- 0.06 at
# 3x the time; lr 3e-4 0.13 +- 0.05 (4 seeds). The W1 plateau (~0.15) is the game's
# oscillation (p_g alternately too wide and too narrow, see the figure) while D stays near
# 1/2: a non-optimal D at 1/2 does not by itself mean p_g = p_data. The training set is 2048
# draws (the step reshuffles it every update; 10000 made the run 3x slower).
GAUSSIAN_DATA = GAUSS(2.0, 0.5)
GAUSSIAN_CONFIG = Config(arch="toy1d", objective="nonsaturating")
GAUSSIAN_STEPS, QUICK_GAUSSIAN_STEPS = 3000, 600
NUM_RECORDS = 30
NUM_QUANTILES = 2000
TRAINING_SET = 2048


def _gaussian_record(state, inputs):
    """D's logits on the grid, G on the fixed z grid, and W1(p_g, p_data) of one run."""
    gan = build_gan(GAUSSIAN_CONFIG)
    logits = gan.discriminator.apply({"params": state.d_params}, inputs["grid"])
    fake = gan.generator.apply({"params": state.g_params}, inputs["z"])[:, 0]
    w1 = jnp.mean(jnp.abs(jnp.sort(fake) - inputs["data_quantiles"]))
    return {"logits": logits, "fake": fake, "w1": w1}


def gaussian_1d(seeds: Sequence[int], steps: Optional[int], quick: bool):
    """Goodfellow et al. (2014) Figure 1 in motion; W1 by quantile quadrature.

    W1(p_g, p_data) = int_0^1 |F_g^{-1}(u) - F_data^{-1}(u)| du, computed as
    mean_i |sort(G(z_i)) - F_data^{-1}(u_i)| with u_i = (i + 1/2) / n and z_i = 2 u_i - 1 the
    matching quantiles of the U(-1, 1) prior (n = 2000): the sorted-sample formula with
    deterministic, evenly spread "samples" of both distributions (no sampling noise floor).
    """
    steps = steps or (QUICK_GAUSSIAN_STEPS if quick else GAUSSIAN_STEPS)
    chunk = max(1, steps // NUM_RECORDS)
    num_chunks = steps // chunk
    config = GAUSSIAN_CONFIG
    data = np.random.default_rng(0).normal(GAUSSIAN_DATA.means[0], GAUSSIAN_DATA.stds[0],
                                           (TRAINING_SET, 1)).astype(np.float32)
    u = (np.arange(NUM_QUANTILES) + 0.5) / NUM_QUANTILES
    lo, hi = GAUSSIAN_DATA.support(4.0)
    grid = np.linspace(lo - 1.0, hi + 1.0, 241)
    inputs = {"grid": jnp.asarray(grid[:, None], jnp.float32),
              "z": jnp.asarray((2 * u - 1)[:, None], jnp.float32),
              "data_quantiles": jnp.asarray(GAUSSIAN_DATA.quantile(u), jnp.float32)}
    states = sweep.create_states(config, seeds)
    keys = sweep.train_keys(seeds)
    start = jax.jit(jax.vmap(_gaussian_record, in_axes=(0, None)))(states, inputs)
    states, records, metrics = theory_train.train_runs(
        config, states, keys, jnp.asarray(data), num_chunks, chunk, _gaussian_record, inputs)
    records = jax.tree.map(lambda a, b: np.concatenate([np.asarray(a)[None], np.asarray(b)]),
                           start, records)
    record_steps = [0] + [chunk * (i + 1) for i in range(num_chunks)]
    d = 1.0 / (1.0 + np.exp(-records["logits"].astype(np.float64)))  # [T, S, G]
    w1 = records["w1"].astype(np.float64)  # [T, S]
    central = np.abs(grid - GAUSSIAN_DATA.means[0]) <= 2.576 * GAUSSIAN_DATA.stds[0]
    d_min, d_max = d[-1][:, central].min(axis=1), d[-1][:, central].max(axis=1)
    results = {
        "final_d_min": float(d_min.mean()), "final_d_min_std": float(d_min.std()),
        "final_d_max": float(d_max.mean()), "final_d_max_std": float(d_max.std()),
        "final_w1": float(w1[-1].mean()), "final_w1_std": float(w1[-1].std()),
        "initial_w1": float(w1[0].mean()),
        "w1_curve": {"steps": record_steps, "mean": w1.mean(axis=1).tolist(),
                     "std": w1.std(axis=1).tolist()},
        "d_curve": {"steps": record_steps[1:],
                    "d_real": np.asarray(metrics["d_real"]).mean(axis=1).tolist(),
                    "d_fake": np.asarray(metrics["d_fake"]).mean(axis=1).tolist()},
        "d_range_region": ("final D(x) on the 99% central interval of p_data, mean 2.576 std; "
                           "min and max per seed, then mean (and std) over seeds"),
        "p_data": GAUSSIAN_DATA.describe(), "training_set": TRAINING_SET,
        "w1_method": "quantile quadrature, n = 2000 (see docstring)",
        "config": config.to_dict(), "steps": steps, "record_every": chunk}
    figures = {"gaussian_1d.png": functools.partial(
        theory_plots.gaussian_1d_figure, grid, GAUSSIAN_DATA.pdf(grid), record_steps, d,
        records["fake"], w1)}
    return results, figures
