"""The theory lab: numerical checks of what the GAN papers prove, on 1-D / parallel-lines toys.

Experiments (``EXPERIMENTS[name](workdir, ...)`` is ``run(name, workdir, ...)``):

* ``optimal_d``: D trained alone vs D*(x) = p_data / (p_data + p_g) (Goodfellow et al. 2014,
  Prop. 1); key ``max_gap``.
* ``value_jsd``: max_D V(D, G) vs -log 4 + 2 JSD(p_data || p_g) (Thm. 1); key ``rows``.
* ``gaussian_1d``: Figure 1 in motion: p_g -> p_data, D -> 1/2, W1 over training; keys
  ``final_d_min``, ``final_d_max``, ``final_w1``.
* ``parallel_lines``: Arjovsky et al. 2017, example 1: JS is flat (log 2), W = |theta|; which
  objective moves theta to 0; keys ``thetas``, ``js``, ``w``, ``theta_final``.

Every experiment trains with the library's own objectives, state and steps
(:func:`gan_jax.games.classic_updates.discriminator_update`, :func:`gan_jax.training.steps.train_step_fn`), all seeds
of a comparison ``jax.vmap``-ed in one compiled program (:mod:`gan_jax.theory.train`).
"""

from __future__ import annotations

import functools
import os
import time
from typing import Callable, Optional

import jax
import numpy as np

from gan_jax.metrics import scoring
from gan_jax.theory import gaussian_1d as theory_1d, lines as theory_lines

# Each computes one experiment: (seeds, steps, quick) -> (results, {png name: draw(path)}).
_COMPUTE: dict[str, Callable[..., tuple[dict, dict]]] = {
    "optimal_d": theory_1d.optimal_d,
    "value_jsd": theory_1d.value_jsd,
    "gaussian_1d": theory_1d.gaussian_1d,
    "parallel_lines": theory_lines.parallel_lines,
}


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.ndarray, jax.Array)):
        return _jsonable(np.asarray(value).tolist())
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


def run(name: str, workdir: str, *, seeds: int = 8, steps: Optional[int] = None,
        quick: bool = False) -> dict:
    """Runs experiment ``name`` with seeds 0..``seeds``-1; writes its figures and results.json.

    Args:
      name: a key of :data:`EXPERIMENTS` (an unknown name raises ValueError listing them).
      workdir: created if missing; receives the PNG figures and ``results.json``.
      seeds: number of runs per comparison (mean +- std are over them), vmapped together.
      steps: training length (discriminator updates for D-alone experiments, Algorithm 1
        iterations otherwise); None: the experiment's default (or its quick budget).
      quick: a tiny budget for tests and smoke runs.

    Returns the results dict (what results.json holds): the experiment's keys plus ``name``,
    ``seeds``, ``quick``, ``wall_time_s`` (compilation included) and ``figures``.
    """
    if name not in _COMPUTE:
        raise ValueError(f"Unknown theory experiment {name!r}; valid: {sorted(_COMPUTE)}")
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    os.makedirs(workdir, exist_ok=True)
    start = time.perf_counter()
    results, figures = _COMPUTE[name](list(range(seeds)), steps, quick)
    wall = time.perf_counter() - start
    for filename, draw in figures.items():
        draw(os.path.join(workdir, filename))
    results = _jsonable({"name": name, **results, "seeds": seeds, "quick": quick,
                         "wall_time_s": round(wall, 2), "figures": sorted(figures)})
    scoring.write_eval_json(results, os.path.join(workdir, "results.json"))
    return results


# name -> ``f(workdir, *, seeds=8, steps=None, quick=False) -> results``: :func:`run` bound to
# each experiment.
EXPERIMENTS: dict[str, Callable[..., dict]] = {
    name: functools.partial(run, name) for name in _COMPUTE}
