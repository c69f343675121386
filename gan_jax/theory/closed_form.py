"""Closed-form and numerical quantities of the theory lab (Goodfellow et al. 2014, Sec. 4;
Arjovsky et al. 2017, example 1), for 1-D distributions with known densities.

* :class:`Mixture1D`: a finite Gaussian mixture with its pdf, log-pdf, cdf and quantiles
  (the lab's p_data and p_g).
* :func:`optimal_logit`: logit of D*(x) = p_data(x) / (p_data(x) + p_g(x)), i.e.
  log p_data(x) - log p_g(x) (Goodfellow et al. 2014, Proposition 1).
* :func:`value`: V(D, G) = E_pdata[log D] + E_pg[log(1 - D)] of a discriminator given by its
  logits on a grid, by quadrature against the known densities (no Monte-Carlo noise).
* :func:`jsd`: JSD(p || q) = 1/2 KL(p || m) + 1/2 KL(q || m), m = (p + q) / 2, by quadrature;
  C(G) = max_D V(D, G) = -log 4 + 2 JSD(p_data || p_g) (Theorem 1).
* :func:`wasserstein1_sorted`: the exact 1-D W1 between two equal-size samples,
  mean |sort(a) - sort(b)| (the optimal coupling in 1-D is the monotone one).
* :func:`high_density_region`: the grid points where a density is non-negligible.

Everything here is NumPy (float64) except the JAX sampler :func:`sample_mixture`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special, stats

LOG4 = math.log(4.0)
LOG2 = math.log(2.0)


@dataclasses.dataclass(frozen=True)
class Mixture1D:
    """sum_k w_k N(mu_k, sigma_k^2). Fields are tuples of equal length (weights sum to 1)."""

    weights: tuple[float, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]

    def __post_init__(self):
        if not len(self.weights) == len(self.means) == len(self.stds) >= 1:
            raise ValueError("weights, means and stds need the same length >= 1")
        if abs(sum(self.weights) - 1.0) > 1e-9 or min(self.weights) < 0 or min(self.stds) <= 0:
            raise ValueError(f"invalid mixture {self}")

    @classmethod
    def gaussian(cls, mean: float, std: float) -> "Mixture1D":
        return cls((1.0,), (float(mean),), (float(std),))

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)[..., None]
        comps = stats.norm.logpdf(x, np.array(self.means), np.array(self.stds))
        return special.logsumexp(comps, b=np.array(self.weights), axis=-1)

    def pdf(self, x: np.ndarray) -> np.ndarray:
        return np.exp(self.logpdf(x))

    def cdf(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)[..., None]
        return np.sum(np.array(self.weights) * stats.norm.cdf(x, np.array(self.means),
                                                              np.array(self.stds)), axis=-1)

    def quantile(self, u: np.ndarray) -> np.ndarray:
        """F^{-1}(u) by bisection on the cdf (exact to ~1e-12)."""
        u = np.asarray(u, np.float64)
        lo, hi = self.support(12.0)
        lo, hi = np.full_like(u, lo), np.full_like(u, hi)
        for _ in range(60):
            mid = (lo + hi) / 2
            below = self.cdf(mid) < u
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return (lo + hi) / 2

    def support(self, num_stds: float = 5.0) -> tuple[float, float]:
        """[min_k mu_k - num_stds sigma_k, max_k mu_k + num_stds sigma_k]."""
        m, s = np.array(self.means), np.array(self.stds)
        return float(np.min(m - num_stds * s)), float(np.max(m + num_stds * s))

    def padded(self, num_components: int) -> dict[str, np.ndarray]:
        """float32 arrays ``weights``, ``means``, ``stds`` of length ``num_components`` (zero-
        weight components appended), so mixtures of different sizes stack for ``jax.vmap``."""
        extra = num_components - len(self.weights)
        if extra < 0:
            raise ValueError(f"{len(self.weights)} components > {num_components}")
        pad = lambda v, fill: np.array(tuple(v) + (fill,) * extra, np.float32)  # noqa: E731
        return {"weights": pad(self.weights, 0.0), "means": pad(self.means, 0.0),
                "stds": pad(self.stds, 1.0)}

    def describe(self) -> str:
        parts = [f"N({m:g}, {s:g}^2)" for m, s in zip(self.means, self.stds)]
        if len(parts) == 1:
            return parts[0]
        return " + ".join(f"{w:g} {p}" for w, p in zip(self.weights, parts))


def mixture_from_normals(params: dict[str, jax.Array], normal: jax.Array,
                         uniform: jax.Array) -> jax.Array:
    """Draws from the mixture ``params`` (``weights``, ``means``, ``stds`` [K]) given one
    N(0, 1) draw ``normal`` [B] and one U(0, 1) draw ``uniform`` [B] per sample: component
    c = #{k < K - 1 : u > w_1 + ... + w_k}, then x = mu_c + sigma_c * normal. Returns [B]."""
    edges = jnp.cumsum(params["weights"])[:-1]
    component = jnp.sum(uniform[:, None] > edges[None, :], axis=1)
    return params["means"][component] + params["stds"][component] * normal


def sample_mixture(params: dict[str, jax.Array], key: jax.Array, num: int) -> jax.Array:
    """``num`` draws ``[num, 1]`` of the mixture ``params`` (see :func:`mixture_from_normals`)."""
    normal_key, uniform_key = jax.random.split(key)
    x = mixture_from_normals(params, jax.random.normal(normal_key, (num,)),
                             jax.random.uniform(uniform_key, (num,)))
    return x[:, None]


def optimal_logit(p_data: Mixture1D, p_g: Mixture1D, x: np.ndarray) -> np.ndarray:
    """logit D*(x) = log p_data(x) - log p_g(x) (D* = sigmoid of it)."""
    return p_data.logpdf(x) - p_g.logpdf(x)


def log_sigmoid(logits: np.ndarray) -> np.ndarray:
    """log sigmoid(l) = -softplus(-l), stable for any finite l (float64)."""
    return -np.logaddexp(0.0, -np.asarray(logits, np.float64))


def integration_grid(*dists: Mixture1D, num: int = 20001, num_stds: float = 10.0
                     ) -> np.ndarray:
    """A uniform grid covering every distribution's mean +- ``num_stds`` std."""
    spans = [d.support(num_stds) for d in dists]
    return np.linspace(min(s[0] for s in spans), max(s[1] for s in spans), num)


def value(logits: np.ndarray, p_data: Mixture1D, p_g: Mixture1D, grid: np.ndarray) -> float:
    """V(D, G) = int p_data log D + int p_g log(1 - D) by the trapezoid rule on ``grid``,
    where D = sigmoid(``logits``) and ``logits`` are D's logits at the grid points."""
    logits = np.asarray(logits, np.float64)
    integrand = p_data.pdf(grid) * log_sigmoid(logits) + p_g.pdf(grid) * log_sigmoid(-logits)
    return float(np.trapezoid(integrand, grid))


def jsd(p: Callable[[np.ndarray], np.ndarray], q: Callable[[np.ndarray], np.ndarray],
        grid: np.ndarray) -> float:
    """JSD(p || q) in nats by the trapezoid rule on ``grid`` (which must cover both supports).

    ``p``, ``q``: densities (callables on arrays). 0 log 0 = 0, so disjoint supports give log 2.
    """
    pv, qv = np.asarray(p(grid), np.float64), np.asarray(q(grid), np.float64)
    m = (pv + qv) / 2
    kl_pm = special.xlogy(pv, pv) - special.xlogy(pv, m)
    kl_qm = special.xlogy(qv, qv) - special.xlogy(qv, m)
    return float(0.5 * np.trapezoid(kl_pm, grid) + 0.5 * np.trapezoid(kl_qm, grid))


def game_value_at_optimum(p_data: Mixture1D, p_g: Mixture1D) -> tuple[float, float]:
    """(C(G), JSD) with C(G) = max_D V(D, G) = -log 4 + 2 JSD(p_data || p_g) (Theorem 1)."""
    grid = integration_grid(p_data, p_g)
    divergence = jsd(p_data.pdf, p_g.pdf, grid)
    return -LOG4 + 2.0 * divergence, divergence


def high_density_region(density: np.ndarray, grid: np.ndarray, mass: float = 0.99
                        ) -> np.ndarray:
    """Boolean mask of the smallest set {x : density(x) >= t} on the uniform ``grid`` holding
    ``mass`` of the density's total mass (the highest-density region)."""
    dx = grid[1] - grid[0]
    order = np.argsort(density)[::-1]
    cumulative = np.cumsum(density[order]) * dx
    cumulative /= cumulative[-1]
    keep = order[:int(np.searchsorted(cumulative, mass)) + 1]
    mask = np.zeros(grid.shape, bool)
    mask[keep] = True
    return mask


def wasserstein1_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """W1 between the empirical measures of two equal-size 1-D samples: mean |sort a - sort b|.

    Exact for empirical measures (the monotone coupling is optimal in 1-D).
    """
    a, b = np.sort(np.ravel(a)), np.sort(np.ravel(b))
    if a.shape != b.shape:
        raise ValueError(f"samples need equal sizes, got {a.size} and {b.size}")
    return float(np.mean(np.abs(a - b)))
