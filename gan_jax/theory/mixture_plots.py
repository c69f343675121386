"""Figures of the 2-D mixture experiments (:mod:`gan_jax.theory.mixtures`), GAN-Lab style.

Each panel draws the discriminator's surface on the plane, the real points (black) and the
generator's samples (orange). Matplotlib's object API with the Agg canvas (no pyplot state).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gan_jax.games.losses import get_objective


def _figure(rows: int, cols: int, size: float = 2.2):
    fig = Figure(figsize=(size * cols, size * rows + 0.4), dpi=90)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=False)


def _save(fig, path: str) -> None:
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp)
    os.replace(tmp, path)


def _draw_panel(ax, target, real, fake, surface, probabilistic: bool, title: str) -> None:
    """GAN-Lab style: D's surface, real points (black) and fakes (orange) on the plane.

    The surface is sigmoid(D) on [0, 1] (green: "real", purple: "fake") for the probabilistic
    objectives; a critic's scale is arbitrary, so its scores get 12 contour levels of their own
    (green: high score, i.e. "real")."""
    e = target.extent
    res = int(round(np.sqrt(surface.size)))
    grid = surface.reshape(res, res)
    if probabilistic:
        ax.imshow(grid, origin="lower", extent=(-e, e, -e, e), cmap="PRGn", vmin=0.0, vmax=1.0,
                  alpha=0.8)
    elif np.all(np.isfinite(grid)) and np.ptp(grid) > 0:
        ax.contourf(grid, levels=np.linspace(grid.min(), grid.max(), 12), cmap="PRGn",
                    extent=(-e, e, -e, e), alpha=0.8)
    ax.scatter(real[:, 0], real[:, 1], s=1, c="black", alpha=0.5, linewidths=0)
    ax.scatter(fake[:, 0], fake[:, 1], s=1.5, c="tab:orange", alpha=0.6, linewidths=0)
    ax.set(xlim=(-e, e), ylim=(-e, e), aspect="equal", xticks=[], yticks=[])
    ax.set_title(title, fontsize=8)


def _label(c: dict, num_modes: int) -> str:
    return f"{c['modes_covered']}/{num_modes} modes, hq {c['high_quality']:.2f}"


def plot_surfaces(target, real, trained: dict, path: str, snapshots: Sequence[int],
                  run: int = 0) -> None:
    """Samples over D's decision surface at the snapshots with indices ``snapshots``, one row
    per objective, for run ``run``.

    Args:
      target: the :class:`gan_jax.theory.mixture_data.Target`.
      real: real points ``[M, 2]`` to draw.
      trained: objective name -> :func:`gan_jax.theory.mixtures.train_objective` result.
      path: PNG to write.
    """
    fig, axes = _figure(len(trained), len(snapshots))
    for row, (name, tr) in enumerate(trained.items()):
        probabilistic = get_objective(name).probabilistic
        for col, t in enumerate(snapshots):
            _draw_panel(axes[row, col], target, real, tr["samples"][t, run, :1000],
                        tr["surfaces"][t, run], probabilistic,
                        f"{name}, step {tr['snapshot_steps'][t]}\n"
                        f"{_label(tr['coverage'][t][run], target.num_modes)}")
    fig.suptitle(f"{target.name}: samples (orange) over sigmoid(D) / critic (green = real), "
                 f"seed {run}", fontsize=10)
    _save(fig, path)


def plot_seeds(target, real, trained: dict, path: str) -> None:
    """The final samples of every run (columns) of every objective (rows)."""
    num_runs = next(iter(trained.values()))["samples"].shape[1]
    fig, axes = _figure(len(trained), num_runs, size=1.8)
    for row, (name, tr) in enumerate(trained.items()):
        probabilistic = get_objective(name).probabilistic
        for run in range(num_runs):
            _draw_panel(axes[row, run], target, real, tr["samples"][-1, run, :1000],
                        tr["surfaces"][-1, run], probabilistic,
                        f"{name} #{run}\n{_label(tr['coverage'][-1][run], target.num_modes)}")
    fig.suptitle(f"{target.name}: every seed after {tr['snapshot_steps'][-1]} steps", fontsize=10)
    _save(fig, path)


def plot_coverage(target, results: dict, path: str) -> None:
    """Modes covered and high-quality share against step, mean +- std over the seeds."""
    fig, axes = _figure(1, 2, size=3.6)
    steps = results["snapshot_steps"]
    for name, res in results["objectives"].items():
        for ax, key in zip(axes[0], ("modes_covered", "high_quality")):
            mean, std = (np.asarray(res[f"{key}_by_step"][k]) for k in ("mean", "std"))
            ax.plot(steps, mean, label=name)
            ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    axes[0, 0].set(xlabel="step", ylabel=f"modes covered (of {target.num_modes})",
                   ylim=(-0.2, target.num_modes + 0.2))
    axes[0, 1].set(xlabel="step", ylabel="high-quality share", ylim=(-0.02, 1.02))
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{target.name}: mean +- std over {results['num_seeds']} seeds", fontsize=10)
    _save(fig, path)
