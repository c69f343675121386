"""Figures of the theory lab (matplotlib object API, Agg canvas; one PNG per call).

Every function takes the arrays an experiment computed and a ``path``; none computes theory.
Curves over seeds are drawn as mean with a +-1 std band.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _figure(rows: int, cols: int, width: float, height: float):
    fig = Figure(figsize=(width * cols, height * rows), dpi=100)
    FigureCanvasAgg(fig)
    return fig, np.atleast_2d(fig.subplots(rows, cols, squeeze=False))


def _save(fig: Figure, path: str) -> None:
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp)
    os.replace(tmp, path)


def _band(ax, x, values, color, label):
    """Mean over axis 0 of ``values`` [S, ...] with a +-1 std band."""
    mean, std = values.mean(axis=0), values.std(axis=0)
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.25, linewidth=0)
    ax.plot(x, mean, color=color, label=label)


def optimal_d_figure(curves: Sequence[dict], rows: Sequence[dict], path: str) -> None:
    """Per pair: p_data, p_g (right axis), D* (dashed) and trained D (mean +- std over seeds)."""
    fig, axes = _figure(1, len(curves), 5.0, 3.8)
    for ax, c, row in zip(axes[0], curves, rows):
        grid = c["grid"]
        dens = ax.twinx()
        dens.fill_between(grid, c["p_data"], color="tab:green", alpha=0.2, label="p_data")
        dens.fill_between(grid, c["p_g"], color="tab:orange", alpha=0.2, label="p_g")
        dens.set_ylabel("density")
        dens.set_ylim(0, 1.05 * max(c["p_data"].max(), c["p_g"].max()))
        _band(ax, grid, c["d"], "tab:blue", "trained D (mean +- std)")
        ax.plot(grid, c["d_star"], "k--", label="D* = p_data / (p_data + p_g)")
        outside = ~c["mask"]
        ax.fill_between(grid, 0, 1, where=outside, color="grey", alpha=0.12,
                        label="outside 99% region")
        ax.set_ylim(0, 1)
        ax.set_zorder(dens.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.set_xlabel("x")
        ax.set_ylabel("D(x)")
        ax.set_title(f"p_data {row['p_data']}, p_g {row['p_g']}\n"
                     f"max gap {row['max_gap_mean']:.3f} +- {row['max_gap_std']:.3f}", fontsize=9)
        handles = ax.get_legend_handles_labels()
        extra = dens.get_legend_handles_labels()
        ax.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=7, loc="upper left")
    _save(fig, path)


def value_jsd_figure(rows: Sequence[dict], path: str) -> None:
    """Trained value vs -log 4 + 2 JSD (left) and the absolute errors per pair (right)."""
    fig, axes = _figure(1, 2, 5.5, 4.2)
    ax, err = axes[0]
    target = np.array([r["target"] for r in rows])
    value = np.array([r["value"] for r in rows])
    ax.errorbar(target, value, yerr=[r["value_std"] for r in rows], fmt="o", capsize=3,
                label="trained D: V(D, G) (mean +- std)")
    line = np.array([-np.log(4.0), 0.0])
    ax.plot(line, line, "k--", linewidth=1, label="y = -log 4 + 2 JSD")
    ax.set_xlabel("-log 4 + 2 JSD(p_data || p_g)  (quadrature)")
    ax.set_ylabel("max_D V(D, G)  (trained D)")
    ax.set_title("C(G) = -log 4 + 2 JSD (Goodfellow et al. 2014, Thm. 1)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    names = [f"{r['p_data']}\nvs {r['p_g']}" for r in rows]
    err.barh(np.arange(len(rows)), [r["abs_error"] for r in rows], color="tab:blue")
    err.set_yticks(np.arange(len(rows)), names, fontsize=6)
    err.invert_yaxis()
    err.set_xlabel("|value - target|")
    err.set_title("absolute error per pair")
    _save(fig, path)


def gaussian_1d_figure(grid: np.ndarray, p_data: np.ndarray, steps: Sequence[int],
                       d: np.ndarray, fake: np.ndarray, w1: np.ndarray, path: str,
                       panels: int = 5) -> None:
    """Figure 1 of Goodfellow et al. at several steps (p_data, p_g histogram, D, 1/2 line) and
    W1(p_g, p_data) over training. ``d``: [T, S, G]; ``fake``: [T, S, n]; ``w1``: [T, S]."""
    picks = sorted(set(np.linspace(0, len(steps) - 1, panels).round().astype(int)))
    cols = (len(picks) + 2) // 2
    fig, axes = _figure(2, cols, 4.0, 3.2)
    axes = axes.ravel()
    bins = np.linspace(grid[0], grid[-1], 81)
    for ax, t in zip(axes, picks):
        ax.plot(grid, p_data, color="black", linestyle=":", label="p_data")
        # The first seed's generator (its outputs on the evenly spread z grid).
        ax.hist(fake[t, 0], bins=bins, density=True, color="tab:green", alpha=0.5,
                label="p_g (seed 0)")
        _band(ax, grid, d[t], "tab:blue", "D(x)")
        ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="1/2")
        ax.set_ylim(0, max(1.05, 1.1 * p_data.max()))
        ax.set_title(f"step {steps[t]}", fontsize=9)
        ax.set_xlabel("x")
    axes[0].legend(fontsize=7, loc="upper left")
    for ax in axes[len(picks):-1]:
        ax.set_visible(False)
    ax = axes[-1]
    _band(ax, np.asarray(steps), w1.T, "tab:red", "W1(p_g, p_data)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("exact 1-D W1 (quantiles)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    _save(fig, path)


def parallel_lines_figure(thetas: np.ndarray, js: np.ndarray, w: np.ndarray,
                          generator_grads: dict, trajectories: dict, path: str) -> None:
    """JS and W estimates over theta (``js``, ``w``: [T, S]) with the truth, their gradients
    (finite differences of the estimates; the generator losses' gradients through the trained
    networks, symlog scale), and theta during training per objective ([steps], [T', S])."""
    fig, axes = _figure(1, 4, 4.4, 3.8)
    ax, fd, gen, traj = axes[0]
    log2 = np.log(2.0)
    fine = np.linspace(thetas.min(), thetas.max(), 401)
    ax.plot(fine, np.where(fine != 0, log2, 0), color="tab:blue", linestyle=":",
            label="JS = log 2 (theta != 0)")
    ax.plot(thetas[thetas == 0], [0.0] * int(np.sum(thetas == 0)), "o", color="tab:blue",
            fillstyle="none")
    ax.plot(fine, np.abs(fine), color="tab:red", linestyle=":", label="W = |theta|")
    _band(ax, thetas, js.T, "tab:blue", "JS estimate (trained D)")
    _band(ax, thetas, w.T, "tab:red", "W estimate (WGAN-GP critic)")
    ax.set_xlabel("theta")
    ax.set_title("divergences of P0 and P_theta", fontsize=9)
    ax.legend(fontsize=7)
    fd.plot(thetas, np.gradient(js.mean(axis=1), thetas), "o-", color="tab:blue",
            label="d JS-estimate / d theta")
    fd.plot(thetas, np.gradient(w.mean(axis=1), thetas), "o-", color="tab:red",
            label="d W-estimate / d theta")
    fd.axhline(0, color="grey", linewidth=0.8)
    fd.set_xlabel("theta")
    fd.set_title("finite-difference gradients of the estimates\n"
                 "(the JS spikes straddle its jump at theta = 0)", fontsize=9)
    fd.legend(fontsize=7)
    for (name, grads), color in zip(generator_grads.items(),
                                    ("tab:purple", "tab:blue", "tab:red")):
        _band(gen, thetas, grads.T, color, name)
        gen.plot(thetas, grads.mean(axis=1), "o", color=color, markersize=3)
    gen.set_yscale("symlog", linthresh=1e-6)
    gen.axhline(0, color="grey", linewidth=0.8)
    gen.set_xlabel("theta")
    gen.set_title("d(generator loss)/d theta at fixed trained D", fontsize=9)
    gen.legend(fontsize=7)
    colors = ("tab:purple", "tab:blue", "tab:olive", "tab:red", "tab:cyan")
    for (name, (steps, trajectory)), color in zip(trajectories.items(), colors):
        _band(traj, np.asarray(steps), trajectory.T, color, name)
    traj.axhline(0, color="black", linestyle="--", linewidth=1)
    traj.set_xlabel("step (theta updates)")
    traj.set_ylabel("theta")
    traj.set_title("theta trained by each objective (mean +- std)", fontsize=9)
    traj.legend(fontsize=7)
    _save(fig, path)
