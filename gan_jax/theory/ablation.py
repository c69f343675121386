"""Seed 001's ablation: prior p_z x discriminator activation, trained and shown side by side.

Seed 001 (the poster) trains DCGAN with z ~ U(-1, 1) or N(0, 1) and D with LeakyReLU or ReLU,
and compares the sample grids. :func:`run_ablation` trains one run per cell of that grid with
everything else equal (same seed, objective, architecture, steps), each in its own
sub-workdir ``<prior>_<activation>/`` (an ordinary training workdir: resumable, evaluable), and
writes:

  ablation.png   one row per prior, one column per (D activation, step): each cell's sample
                 grid halfway through training and at the end (seed 001 also compares 10
                 against 20 epochs), titled with its final FD
  ablation.json  per cell: prior, d_activation, workdir, steps, wall seconds (None when the
                 cell was resumed part-way) and the last evaluation (FD, classifier score, classes covered, class KL)

Rerunning resumes unfinished cells and skips finished ones (:func:`gan_jax.training.loop.train`
restores the final checkpoint and trains nothing).
"""

from __future__ import annotations

import json
import os
import time
from typing import Optional, Sequence

import matplotlib.image
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gan_jax.config import D_ACTIVATIONS, Config
from gan_jax.games.priors import PRIORS
from gan_jax.metrics import scoring
from gan_jax.training.loop import train

EVAL_KEYS = ("fd", "score", "classes_covered", "class_kl")


def cell_name(prior: str, d_activation: str) -> str:
    return f"{prior}_{d_activation}"


def _check(values: Sequence[str], valid: Sequence[str], what: str) -> None:
    if not values:
        raise ValueError(f"the ablation needs at least one {what}")
    unknown = [v for v in values if v not in valid]
    if unknown:
        raise ValueError(f"Unknown {what} {unknown}; valid: {sorted(valid)}")


def _last_step(workdir: str) -> int:
    """The last step logged in a workdir's metrics.jsonl (0 for a fresh workdir)."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        steps = [json.loads(line).get("step", 0) for line in f if line.strip()]
    return max(steps, default=0)


def _last_eval(workdir: str) -> dict:
    """The last metrics.jsonl row that carries an evaluation ({} if none)."""
    last = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            if "fd" in row:
                last = {"eval_step": row["step"], **{k: row[k] for k in EVAL_KEYS}}
    return last


def _grid_steps(config: Config) -> list[int]:
    """The steps whose saved grids the figure shows: halfway (rounded down to a saved grid)
    and the last step."""
    half = (config.num_steps // 2) // config.sample_every * config.sample_every
    return sorted({half, config.num_steps}) if 0 < half < config.num_steps else [config.num_steps]


def run_ablation(base: Config, priors: Sequence[str] = ("uniform", "normal"),
                 d_activations: Sequence[str] = D_ACTIVATIONS,
                 images: Optional[np.ndarray] = None) -> dict:
    """Trains ``base`` once per (prior, d_activation) under ``base.workdir``; see module doc.

    Args:
      base: the shared settings; its ``workdir`` holds the cells and the figure. Its
        architecture must offer the D activation choice (``thesis``, ``dcgan``, ``dcgan64``...).
      priors, d_activations: the grid's axes.
      images: optional training set (as for :func:`gan_jax.training.loop.train`).

    Returns:
      The ablation.json record.
    """
    if not base.workdir:
        raise ValueError("run_ablation needs base.workdir")
    _check(priors, list(PRIORS), "prior")
    _check(d_activations, list(D_ACTIVATIONS), "d_activation")
    os.makedirs(base.workdir, exist_ok=True)
    record_path = os.path.join(base.workdir, "ablation.json")
    previous = {}
    if os.path.exists(record_path):
        with open(record_path) as f:
            previous = {c["cell"]: c for c in json.load(f).get("cells", [])}
    cells = []
    for prior in priors:
        for activation in d_activations:
            name = cell_name(prior, activation)
            config = base.replace(prior=prior, d_activation=activation,
                                  workdir=os.path.join(base.workdir, name))
            first = _last_step(config.workdir)
            start = time.time()
            train(config, images)
            seconds = time.time() - start
            if first >= config.num_steps:  # finished before: keep its recorded time
                seconds = previous.get(name, {}).get("wall_seconds")
            elif first > 0:  # resumed: this call's time covers only part of the run
                seconds = None
            cells.append({"cell": name, "prior": prior, "d_activation": activation,
                          "workdir": config.workdir, "num_steps": config.num_steps,
                          "wall_seconds": None if seconds is None else round(seconds, 1),
                          **_last_eval(config.workdir)})
    record = {"arch": base.arch, "objective": base.objective, "dataset": base.dataset,
              "seed": base.seed, "grid_steps": _grid_steps(base), "cells": cells}
    plot_ablation(record, os.path.join(base.workdir, "ablation.png"))
    record["figure"] = "ablation.png"
    scoring.write_eval_json(record, record_path)
    return record


def plot_ablation(record: dict, path: str) -> None:
    """Rows: priors; columns: D activations, each at every grid step; from the saved grids."""
    cells, steps = record["cells"], record["grid_steps"]
    priors = list(dict.fromkeys(c["prior"] for c in cells))
    activations = list(dict.fromkeys(c["d_activation"] for c in cells))
    by_name = {(c["prior"], c["d_activation"]): c for c in cells}
    ncols = len(activations) * len(steps)
    fig = Figure(figsize=(3.0 * ncols, 3.3 * len(priors)))
    FigureCanvasAgg(fig)
    for r, prior in enumerate(priors):
        for a, activation in enumerate(activations):
            cell = by_name[(prior, activation)]
            for s, step in enumerate(steps):
                c = a * len(steps) + s
                ax = fig.add_subplot(len(priors), ncols, r * ncols + c + 1)
                grid_path = os.path.join(cell["workdir"], "samples", f"step_{step:06d}.png")
                ax.imshow(matplotlib.image.imread(grid_path), cmap="gray")
                ax.set_xticks([])
                ax.set_yticks([])
                title = f"D {activation}, step {step}"
                if step == steps[-1] and "fd" in cell:
                    title += f": FD {cell['fd']:.1f}"
                ax.set_title(title, fontsize=9)
                if c == 0:
                    ax.set_ylabel(f"z ~ {prior}", fontsize=11)
    fig.suptitle(f"{record['arch']} / {record['objective']} on {record['dataset']}: "
                 "prior x D activation (seed 001's ablation)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
