"""Figures of a run: sample grids (seed 000 Fig. 2.2) and training curves (Fig. 2.3).

Uses matplotlib's object API with the Agg canvas (no pyplot state, no display needed).
"""

from __future__ import annotations

import math
import os
from typing import Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import matplotlib.image


def image_grid(images: np.ndarray, ncols: Optional[int] = None, pad: int = 2) -> np.ndarray:
    """Tiles ``[N, H, W, C]`` images in [-1, 1] into one ``[rows*(H+pad)+pad, ..., C]`` array in [0, 1].

    The padding is white so that dark MNIST digits stand apart.
    """
    images = np.asarray(images, np.float32)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"expected images [N, H, W, C], got shape {images.shape}")
    n, h, w, c = images.shape
    ncols = ncols or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncols))
    grid = np.ones((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), np.float32)
    scaled = np.clip((images + 1.0) / 2.0, 0.0, 1.0)
    for i in range(n):
        r, col = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y:y + h, x:x + w] = scaled[i]
    return grid


def save_image_grid(images: np.ndarray, path: str, ncols: Optional[int] = None) -> None:
    """Writes a PNG grid of ``images`` ``[N, H, W, C]`` in [-1, 1] (grey for C = 1)."""
    grid = image_grid(images, ncols)
    tmp = path + ".tmp.png"
    if grid.shape[-1] == 1:
        matplotlib.image.imsave(tmp, grid[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
    else:
        matplotlib.image.imsave(tmp, grid)
    os.replace(tmp, path)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def plot_curves(records: Sequence[dict], path: str, smooth: int = 25,
                probabilistic: bool = True) -> None:
    """Plots D(x), D(G(z)) (with the 1/2 line), both losses, and FD if evaluated, against step.

    Args:
      records: per-step metric dicts with keys ``step``, ``d_real``, ``d_fake``, ``d_loss``,
        ``g_loss`` (rows of metrics.jsonl); rows with ``fd`` add a third panel, the Frechet
        distance in the evaluator's feature space (log scale).
      path: PNG to write.
      smooth: moving-average window drawn over the raw (faint) curves.
      probabilistic: D's outputs are probabilities (the Goodfellow family: drawn on [0, 1]
        with the 1/2 line); False for critics, whose raw mean scores are drawn.
    """
    evaluated = [r for r in records if "fd" in r]
    fig = Figure(figsize=(16 if evaluated else 11, 4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3 if evaluated else 2)
    ax_d, ax_l = axes[0], axes[1]
    for ax, keys, labels in (
        (ax_d, ("d_real", "d_fake"), ("D(x)", "D(G(z))") if probabilistic else ("f(x)", "f(G(z))")),
        (ax_l, ("d_loss", "g_loss"), ("discriminator loss", "generator loss")),
    ):
        _plot_series(ax, records, keys, labels, smooth)
        ax.grid(alpha=0.3)
    if probabilistic:
        ax_d.axhline(0.5, color="black", linestyle="--", linewidth=1, label="1/2")
        ax_d.set_ylim(0.0, 1.0)
        ax_d.set_ylabel("mean probability of 'real'")
        ax_d.set_title("Discriminator outputs (seed 000, Fig. 2.3)")
    else:
        ax_d.set_ylabel("mean critic score")
        ax_d.set_title("Critic outputs on real and fake")
    ax_l.set_title("Losses")
    ax_d.legend(loc="upper right")
    ax_l.legend(loc="upper right")
    if evaluated:
        _plot_fd(axes[2], evaluated)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp)
    os.replace(tmp, path)


def _plot_series(ax, records: Sequence[dict], keys, labels, smooth: int) -> None:
    """Each metric in ``keys`` against step: raw (faint) and its moving average (labelled)."""
    steps = np.array([r["step"] for r in records])
    for key, label, color in zip(keys, labels, ("tab:blue", "tab:orange")):
        values = np.array([r[key] for r in records], np.float64)
        if len(values) == 0:
            continue
        ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
        smoothed = _smooth(values, smooth)
        ax.plot(steps[len(steps) - len(smoothed):], smoothed, color=color, label=label)
    ax.set_xlabel("step")


def _plot_fd(ax, evaluated: Sequence[dict]) -> None:
    """FD over steps (log scale); with an averaged generator also the live one's."""
    steps = [r["step"] for r in evaluated]
    has_live = all("live_fd" in r for r in evaluated)
    ax.plot(steps, [r["fd"] for r in evaluated], "o-", color="tab:green",
            label="FD, averaged G" if has_live else "FD (evaluator features)")
    if has_live:
        ax.plot(steps, [r["live_fd"] for r in evaluated], "s--", color="tab:gray",
                label="FD, live G")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("Frechet distance to the test set (lower is better)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper right")


def plot_began_curves(records: Sequence[dict], path: str, gamma: float,
                      smooth: int = 25) -> None:
    """BEGAN's curves: the reconstruction losses, k_t, the convergence measure M_global
    (Berthelot et al. 2017, Fig. 2), and FD if evaluated."""
    evaluated = [r for r in records if "fd" in r]
    panels = 4 if evaluated else 3
    fig = Figure(figsize=(5.3 * panels, 4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels)
    for ax, keys, labels, title in (
        (axes[0], ("real_loss", "g_loss"), ("L(x)", "L(G(z))"), "Reconstruction losses"),
        (axes[1], ("k",), ("k_t",), f"Equilibrium variable k_t (gamma = {gamma:g})"),
        (axes[2], ("m_global",), ("M_global",), "Convergence measure M_global"),
    ):
        _plot_series(ax, records, keys, labels, smooth)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right")
    if evaluated:
        _plot_fd(axes[3], evaluated)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp)
    os.replace(tmp, path)
