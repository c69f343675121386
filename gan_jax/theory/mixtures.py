"""Mode collapse on 2-D mixtures: minimax, nonsaturating, WGAN and WGAN-GP side by side.

The theory lab's ``ring`` / ``grid`` / ``spiral`` experiments (targets and metrics in
:mod:`gan_jax.theory.mixture_data`). For each objective, ``seeds`` independent GANs train in one
compiled program: the library's :func:`gan_jax.training.steps.train_step_fn` (Algorithm 1, the step the
MNIST experiment uses) is ``jax.vmap``-ed over the runs' states and keys (made by
:mod:`gan_jax.training.sweep`) and iterated by ``jax.lax.fori_loop``, one compiled call per stretch
between snapshots. The data are infinite, as in the papers' toy code: every step each run draws
fresh real points. At each of 9 snapshots the program returns every run's samples on a fixed z
and its discriminator (critic) on a grid of the plane; the metrics (modes covered, high-quality
share; mean +- std over the seeds) and the GAN-Lab-style figures (samples over D's decision
surface, one row per objective) come from those.

Networks: the registered ``toy2d`` MLPs (:mod:`gan_jax.models.toy`; G: z ~ N(0, I_16) -> 128 ->
128 -> 2, the hidden widths of Metz et al. 2016's generator; D: 2 -> 128 -> 128 -> 1). Optimiser
settings: :data:`OBJECTIVE_SETTINGS`, recorded in results.json with everything else.

Budget (:data:`DEFAULT_STEPS`): 3000 generator steps per objective for the ring and the spiral
(one experiment, 4 objectives x 8 seeds, near 2-3 minutes on a 2-core CPU), enough to show each
objective's behaviour; 8000 for the 25-Gaussian grid (about 6 minutes), where at 3000 no
objective covers even one mode and at 8000 the nonsaturating GAN covers the perimeter and drops
the interior. The papers train 25k-100k steps; pass ``steps`` for longer runs.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import registry
from gan_jax.theory import mixture_data, mixture_plots
from gan_jax.metrics import scoring
from gan_jax.training import sweep
from gan_jax.config import Config
from gan_jax.games.classic import GANState, build_gan
from gan_jax.games import count_params, create_state
from gan_jax.training.steps import train_step_fn
from gan_jax.training.loop import run_keys

ARCH = "toy2d"
PRIOR = "normal"
EVAL_SAMPLES = 2500  # per run, on a fixed z (VEEGAN's / Unrolled GAN's 2500)
SURFACE_RESOLUTION = 64  # D evaluated on a 64 x 64 grid for the figures
NUM_SNAPSHOTS = 8  # metrics every steps / 8; figures at 0, 1/8, 1/4, 1/2 and 1
FIGURE_SNAPSHOTS = (0, 1, 2, 4, 8)
DATA_SEED = 1234  # the real points drawn in the figures
EVAL_SEED = 4321  # the evaluation z (shared by all runs)
QUICK_STEPS = 16

DEFAULT_STEPS = {"ring": 3000, "grid": 8000, "spiral": 3000}  # the 25-mode grid needs longer

# One fair toy setting for all four objectives: minibatches of 64 (the WGAN papers'), and a
# learning rate of 2e-3, so that 3000 generator steps can get somewhere (the critics' paper
# rates, 5e-5 / 1e-4, need tens of thousands). Each objective keeps its paper's optimiser and
# n_critic (WGAN: RMSProp, 5, c = 0.01; WGAN-GP: Adam(0.5, 0.9), 5); the Goodfellow family
# keeps the toy default Adam(0.5, 0.999), k = 1. WGAN-GP's lambda = 0.1 is the value of
# Gulrajani et al.'s toy-data code (gan_toy.py: "Smaller lambda seems to help for toy tasks").
OBJECTIVE_SETTINGS: dict[str, dict[str, Any]] = {
    "minimax": dict(learning_rate=2e-3, b1=0.5, b2=0.999, batch_size=64),
    "nonsaturating": dict(learning_rate=2e-3, b1=0.5, b2=0.999, batch_size=64),
    "wgan": dict(learning_rate=2e-3, batch_size=64),
    "wgan-gp": dict(learning_rate=2e-3, b1=0.5, b2=0.9, gp_weight=0.1, batch_size=64),
}


def objective_config(objective: str, **overrides: Any) -> Config:
    """The experiment's :class:`Config` for ``objective`` (``toy2d``, normal prior); other
    registered objectives get minibatches of 64 at lr 2e-3 over their own defaults."""
    settings = {"arch": ARCH, "prior": PRIOR,
                **OBJECTIVE_SETTINGS.get(objective, dict(learning_rate=2e-3, batch_size=64)),
                **overrides}
    return Config(objective=objective, **settings)


def data_keys(seeds: Sequence[int]) -> jax.Array:
    """The runs' real-data keys ``[N]``: a stream of their own, folded off the sample key of
    :func:`gan_jax.training.loop.run_keys` (the init and training keys stay the library's)."""
    return jnp.stack([jax.random.fold_in(run_keys(seed)[2], 2) for seed in seeds])


@functools.partial(jax.jit, static_argnums=(0, 1), donate_argnums=2)
def _train(config: Config, target_name: str, states: GANState, keys: jax.Array,
           real_keys: jax.Array, num_steps: jax.Array) -> tuple[GANState, dict]:
    """``num_steps`` (traced: one compilation for any length) vmapped Algorithm-1 steps.

    Infinite data, as in the papers' toy code: before each step every run draws a fresh set of
    ``disc_steps * batch_size`` real points, which ``train_step_fn`` (one epoch of exactly
    ``disc_steps`` minibatches) cuts into a distinct real minibatch per critic update.
    Returns the states and the last step's metrics ``[S]`` each.
    """
    sample = mixture_data.get_target(target_name).sample
    num_real = config.disc_steps * config.batch_size

    def run_step(state, key, real_key):
        real = sample(jax.random.fold_in(real_key, state.step), num_real)
        return train_step_fn(config, state, key, real)

    step = jax.vmap(run_step)
    metrics = jax.tree.map(lambda x: jnp.full(x.shape, jnp.nan, x.dtype),
                           jax.eval_shape(step, states, keys, real_keys)[1])
    return jax.lax.fori_loop(0, num_steps, lambda i, c: step(c[0], keys, real_keys),
                             (states, metrics))


@functools.partial(jax.jit, static_argnums=0)
def _snapshot(config: Config, states: GANState, z: jax.Array, points: jax.Array
              ) -> tuple[jax.Array, jax.Array]:
    """Every run's G(z) ``[S, n, 2]`` and D's output on ``points`` ``[S, m]``: sigmoid(D) for
    the probabilistic objectives, the raw critic score otherwise."""
    gan = build_gan(config)

    def one(state):
        def variables(params, stats):
            return {"params": params, **({"batch_stats": stats} if stats else {})}
        fake = gan.generator.apply(variables(state.g_params, state.g_batch_stats), z,
                                   train=False)
        logits = gan.discriminator.apply(variables(state.d_params, state.d_batch_stats),
                                         points, train=False)
        return fake, jax.nn.sigmoid(logits) if gan.objective.probabilistic else logits

    return jax.vmap(one)(states)


def surface_grid(extent: float, resolution: int = SURFACE_RESOLUTION) -> np.ndarray:
    """``[resolution^2, 2]`` points of the square [-extent, extent]^2, x fastest."""
    axis = np.linspace(-extent, extent, resolution, dtype=np.float32)
    xx, yy = np.meshgrid(axis, axis)
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def snapshot_steps(steps: int, num: int = NUM_SNAPSHOTS) -> list[int]:
    """``num + 1`` steps ``round(i * steps / num)``, i = 0..num (repeats if steps < num)."""
    return [int(round(i * steps / num)) for i in range(num + 1)]


def train_objective(target: mixture_data.Target, config: Config, seeds: Sequence[int],
                    steps: int) -> dict[str, Any]:
    """Trains ``len(seeds)`` runs of ``config`` on ``target`` for ``steps`` and snapshots them.

    Returns a dict: ``snapshot_steps`` (T ints), ``samples`` ``[T, S, EVAL_SAMPLES, 2]`` and
    ``surfaces`` ``[T, S, SURFACE_RESOLUTION^2]`` (numpy), ``coverage`` (T lists of S dicts of
    :func:`gan_jax.theory.mixture_data.coverage`), ``train_metrics`` (the last step's, ``[S]`` each)
    and ``wall_time_s`` (compilation included).
    """
    start = time.perf_counter()
    static = config.computation()
    states = sweep.create_states(config, seeds)
    keys, real_keys = sweep.train_keys(seeds), data_keys(seeds)
    z = build_gan(config).sample_z(jax.random.key(EVAL_SEED), EVAL_SAMPLES)
    points = jnp.asarray(surface_grid(target.extent))
    samples, surfaces, coverage, done, metrics = [], [], [], 0, {}
    at = snapshot_steps(steps)
    for step in at:
        states, metrics = _train(static, target.name, states, keys, real_keys,
                                 jnp.asarray(step - done, jnp.int32))
        done = step
        fake, surface = jax.device_get(_snapshot(static, states, z, points))
        samples.append(fake)
        surfaces.append(surface)
        coverage.append([mixture_data.coverage(target, f) for f in fake])
    return {"snapshot_steps": at, "samples": np.stack(samples), "surfaces": np.stack(surfaces),
            "coverage": coverage, "train_metrics": jax.device_get(metrics),
            "wall_time_s": time.perf_counter() - start}


def _mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single run)."""
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


_CONFIG_FIELDS = ("objective", "arch", "prior", "latent_dim", "batch_size", "disc_steps",
                  "optimizer", "learning_rate", "b1", "b2", "clip", "gp_weight")


def summarize(trained: dict[str, Any], config: Config) -> dict[str, Any]:
    """results.json's entry for one objective: final metrics (mean, std, per seed), their
    trajectories over the snapshots, the config and the last step's training metrics."""
    final = trained["coverage"][-1]
    modes = [c["modes_covered"] for c in final]
    quality = [c["high_quality"] for c in final]
    out = {}
    out["modes_covered_mean"], out["modes_covered_std"] = _mean_std(modes)
    out["high_quality_mean"], out["high_quality_std"] = _mean_std(quality)
    out["modes_covered"], out["high_quality"] = modes, quality
    out["mode_counts"] = [c["mode_counts"] for c in final]
    for key in ("modes_covered", "high_quality"):
        stats = [_mean_std([c[key] for c in snap]) for snap in trained["coverage"]]
        out[f"{key}_by_step"] = {"mean": [m for m, _ in stats], "std": [s for _, s in stats]}
    out["final_train_metrics"] = {k: float(np.nanmean(v))
                                  for k, v in sorted(trained["train_metrics"].items())}
    out["config"] = {k: v for k, v in config.to_dict().items() if k in _CONFIG_FIELDS}
    out["wall_time_s"] = round(trained["wall_time_s"], 2)
    return out



def run_mixture(name: str, workdir: str, *, seeds: int = 8, steps: Optional[int] = None,
                quick: bool = False,
                objectives: Sequence[str] = ("minimax", "nonsaturating", "wgan", "wgan-gp")
                ) -> dict[str, Any]:
    """Trains every objective on target ``name``, writes figures and results.json to
    ``workdir`` and returns the results (see :func:`run`)."""
    target = mixture_data.get_target(name)
    steps = (QUICK_STEPS if quick else DEFAULT_STEPS[name]) if steps is None else steps
    if steps < 1 or seeds < 1:
        raise ValueError(f"steps and seeds must be >= 1, got steps={steps}, seeds={seeds}")
    configs = {o: objective_config(o) for o in objectives}  # validates the names first
    os.makedirs(workdir, exist_ok=True)
    start = time.perf_counter()
    run_seeds = list(range(seeds))
    trained = {o: train_objective(target, c, run_seeds, steps) for o, c in configs.items()}
    results = {
        "experiment": name, "num_modes": target.num_modes, "num_seeds": seeds,
        "seeds": run_seeds, "steps": steps, "snapshot_steps": snapshot_steps(steps),
        "quick": quick, "target": target.description, "std": target.std,
        "metric": {"eval_samples": EVAL_SAMPLES, "quality_radius_std": mixture_data.QUALITY_RADIUS,
                   "min_fraction": mixture_data.MIN_FRACTION,
                   "min_count": mixture_data.MIN_FRACTION * EVAL_SAMPLES / target.num_modes,
                   "definition": mixture_data.METRIC_DEFINITION,
                   "reference": reference_metrics(target)},
        "net": network_summary(next(iter(configs.values()))),
        "data": "fresh real points every step (disc_steps * batch_size per run and step)",
        "objectives": {o: summarize(trained[o], configs[o]) for o in configs},
    }
    real = np.asarray(target.sample(jax.random.key(DATA_SEED), 1000))
    results["figures"] = {kind: f"{name}_{kind}.png" for kind in ("surfaces", "seeds", "coverage")}
    path = {kind: os.path.join(workdir, file) for kind, file in results["figures"].items()}
    mixture_plots.plot_surfaces(target, real, trained, path["surfaces"], FIGURE_SNAPSHOTS)
    mixture_plots.plot_seeds(target, real, trained, path["seeds"])
    mixture_plots.plot_coverage(target, results, path["coverage"])
    results["wall_time_s"] = round(time.perf_counter() - start, 2)
    scoring.write_eval_json(results, os.path.join(workdir, "results.json"))
    return results


def reference_metrics(target: mixture_data.Target) -> dict[str, dict[str, float]]:
    """The metric on EVAL_SAMPLES true samples (the ceiling) and on as many uniform samples of
    the figures' square (the level of an uninformed generator); fixed keys."""
    data_key, uniform_key = jax.random.split(jax.random.key(EVAL_SEED))
    e = target.extent
    sets = {"data": target.sample(data_key, EVAL_SAMPLES),
            "uniform_square": jax.random.uniform(uniform_key, (EVAL_SAMPLES, 2), minval=-e,
                                                 maxval=e)}
    return {name: {k: v for k, v in mixture_data.coverage(target, x).items()
                   if k != "mode_counts"} for name, x in sets.items()}


def network_summary(config: Config) -> dict[str, Any]:
    """The architecture's name, sizes and parameter counts (from an initialised state)."""
    state = create_state(config, jax.random.key(0))
    return {"arch": config.arch, "prior": config.prior, "latent_dim": config.latent_dim,
            "networks": NETWORKS, "g_params": count_params(state.g_params),
            "d_params": count_params(state.d_params)}


NETWORKS = ("G: z -> Dense 128, ReLU -> Dense 128, ReLU -> Dense 2 (linear); "
            "D: x -> Dense 128, LeakyReLU(0.2) -> Dense 128, LeakyReLU(0.2) -> Dense 1 (logit)")


def ring(workdir: str, **kwargs) -> dict[str, Any]:
    """8 Gaussians on a circle (Metz et al. 2016); see :func:`run`."""
    return run_mixture("ring", workdir, **kwargs)


def grid(workdir: str, **kwargs) -> dict[str, Any]:
    """25 Gaussians on a 5x5 grid (Gulrajani et al. 2017); see :func:`run`."""
    return run_mixture("grid", workdir, **kwargs)


def spiral(workdir: str, **kwargs) -> dict[str, Any]:
    """The swiss roll (Gulrajani et al. 2017), 20 equal-mass curve segments; see :func:`run`."""
    return run_mixture("spiral", workdir, **kwargs)


EXPERIMENTS: dict[str, Callable[..., dict]] = {"ring": ring, "grid": grid, "spiral": spiral}


def run(name: str, workdir: str, *, seeds: int = 8, steps: Optional[int] = None,
        quick: bool = False,
        objectives: Sequence[str] = ("minimax", "nonsaturating", "wgan", "wgan-gp")) -> dict:
    """Runs experiment ``name`` (``ring`` | ``grid`` | ``spiral``) into ``workdir``.

    Each objective trains ``seeds`` runs (seeds 0..seeds-1, vmapped in one program) for
    ``steps`` generator steps (default :data:`DEFAULT_STEPS`; ``quick``: :data:`QUICK_STEPS`).
    Writes ``{name}_surfaces.png`` (samples over D at several steps, one row per objective,
    seed 0), ``{name}_seeds.png`` (every seed's final samples), ``{name}_coverage.png``
    (metrics against step) and ``results.json``; returns the results dict (top level:
    ``num_modes``, ``num_seeds``, ``steps``, ``wall_time_s``, ``net``, ``metric``, ``figures``;
    ``objectives[o]``: ``modes_covered_mean`` / ``_std``, ``high_quality_mean`` / ``_std``, per
    seed values, trajectories, ``config`` and ``wall_time_s``).
    """
    experiment = registry.lookup(EXPERIMENTS, "experiment", name)
    return experiment(workdir, seeds=seeds, steps=steps, quick=quick, objectives=objectives)
