"""2-D targets of the mode-collapse experiments, and their coverage / quality metrics.

Targets (the data are points ``[N, 2]``):

* ``ring``: 8 equal Gaussians with centres on a circle of radius 2, std 0.02 (Metz et al. 2016,
  "Unrolled GANs", Sec. 3.1 / App. A).
* ``grid``: 25 equal Gaussians at ``2 * {-2, -1, 0, 1, 2}^2`` with std 0.05, everything divided
  by 2.828 (Gulrajani et al. 2017, ``gan_toy.py``: ``dataset /= 2.828 # stdev``), i.e. centres
  on a 5x5 grid of spacing 0.707 in [-1.41, 1.41]^2 and std 0.0177.
* ``spiral``: the swiss roll of ``sklearn.datasets.make_swiss_roll(noise=0.25)`` restricted to
  its (x, z) plane and divided by 7.5 as in ``gan_toy.py``:
  t ~ U[1.5 pi, 4.5 pi], x = (t cos t, t sin t) / 7.5 + N(0, (0.25 / 7.5)^2 I). Implemented here
  with jax.random (no sklearn).

Metrics (:func:`coverage`). Every target splits the plane into ``num_modes`` regions of equal
probability under the data, and says which samples are *high quality*:

* Gaussian mixtures: a sample belongs to its nearest centre and is high quality when it lies
  within 3 standard deviations of it, ``||x - mu_k|| <= 3 sigma`` (a true sample is, with
  probability 1 - exp(-9/2) = 0.989 in 2-D).
* Spiral (a continuous manifold, no modes): the noiseless curve c(t), t in [1.5 pi, 4.5 pi], is
  cut into ``SPIRAL_SEGMENTS`` = 20 pieces of equal t-length (equal data mass, since t is
  uniform). A sample belongs to the piece holding its nearest curve point and is high quality
  when its distance to the curve is at most 3 sigma (sigma = 0.25 / 7.5; a true sample is, with
  probability ~0.997: the distance is about one normal coordinate). The curve is represented
  by ``SPIRAL_CURVE_POINTS`` = 20000 points evenly spaced in t (spacing < 0.001, far under
  3 sigma = 0.1), searched with a k-d tree.

A mode (segment) is *covered* when at least ``min_fraction`` (default 0.2) of the count it
would receive under perfect coverage, ``N / num_modes``, are high-quality samples assigned to
it: with N = 2500 samples that is 62.5 samples per ring mode, 20 per grid mode (the threshold of
VEEGAN, Srivastava et al. 2017, for the same 2500 samples) and 25 per spiral segment. The
*high-quality share* is the fraction of all samples that are high quality.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.spatial

from gan_jax import registry

GRID_SCALE = 2.828  # gan_toy.py's divisor ("stdev") of the 25-Gaussian data
SPIRAL_SCALE = 7.5  # gan_toy.py's divisor of the swiss roll ("stdev plus a little")
SPIRAL_NOISE = 0.25  # make_swiss_roll(noise=0.25) in gan_toy.py
SPIRAL_T_RANGE = (1.5 * np.pi, 4.5 * np.pi)  # make_swiss_roll: t = 1.5 pi (1 + 2 U[0, 1])
SPIRAL_SEGMENTS = 20
SPIRAL_CURVE_POINTS = 20000
QUALITY_RADIUS = 3.0  # in standard deviations
MIN_FRACTION = 0.2  # of the uniform-coverage count per mode
METRIC_DEFINITION = (
    "A sample is high quality when it lies within 3 std of its nearest mode (Gaussians) or "
    "within 3 std of the noiseless curve (spiral). A mode (spiral: one of 20 equal-mass curve "
    "segments, holding the sample's nearest curve point) is covered when it holds at least "
    "0.2 * N / num_modes high-quality samples of the N evaluated. high_quality = share of "
    "high-quality samples.")


@dataclasses.dataclass(frozen=True)
class Target:
    """A 2-D data distribution and the regions ("modes") its metric counts.

    Attributes:
      name: ``ring`` | ``grid`` | ``spiral``.
      std: the per-coordinate noise standard deviation sigma.
      num_modes: number of equal-mass regions (Gaussians, or curve segments for the spiral).
      sampler: ``(key, n) -> [n, 2]`` float32 draws.
      assigner: ``samples [N, 2] -> (region [N] int, distance [N])``: the region each sample
        belongs to and its distance to that region's centre (or to the curve).
      centers: ``[num_modes, 2]`` mode centres (segment midpoints for the spiral).
      extent: half-width of the square ``[-extent, extent]^2`` the figures draw.
      description: one line for results.json.
    """

    name: str
    std: float
    num_modes: int
    sampler: Callable[[jax.Array, int], jax.Array]
    assigner: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    centers: np.ndarray
    extent: float
    description: str

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        """``n`` samples ``[n, 2]`` float32 from the target."""
        return self.sampler(key, n)

    def assign(self, samples) -> tuple[np.ndarray, np.ndarray]:
        return self.assigner(np.asarray(samples, np.float64))


def ring_centers(num: int = 8, radius: float = 2.0) -> np.ndarray:
    """``[num, 2]`` points radius * (cos 2 pi k / num, sin 2 pi k / num)."""
    angles = 2.0 * np.pi * np.arange(num) / num
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def grid_centers() -> np.ndarray:
    """``[25, 2]``: 2 * {-2, ..., 2}^2 / 2.828 (row-major in x, then y)."""
    axis = 2.0 * np.arange(-2, 3) / GRID_SCALE
    xx, yy = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def spiral_curve(t) -> np.ndarray:
    """The noiseless swiss roll c(t) = (t cos t, t sin t) / 7.5; ``t [M]`` -> ``[M, 2]``."""
    t = np.asarray(t, np.float64)
    return np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / SPIRAL_SCALE


def gaussian_mixture_sampler(centers: np.ndarray, std: float
                             ) -> Callable[[jax.Array, int], jax.Array]:
    """Equal-weight mixture of N(mu_k, std^2 I): pick k uniformly, add Gaussian noise."""
    centers = jnp.asarray(centers, jnp.float32)

    def sample(key: jax.Array, n: int) -> jax.Array:
        k_key, noise_key = jax.random.split(key)
        k = jax.random.randint(k_key, (n,), 0, centers.shape[0])
        return centers[k] + std * jax.random.normal(noise_key, (n, 2), jnp.float32)

    return sample


def spiral_sample(key: jax.Array, n: int) -> jax.Array:
    """Swiss roll in the plane: t ~ U[1.5 pi, 4.5 pi], c(t) + N(0, (0.25 / 7.5)^2 I)."""
    t_key, noise_key = jax.random.split(key)
    t = jax.random.uniform(t_key, (n,), jnp.float32, *SPIRAL_T_RANGE)
    curve = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], axis=1) / SPIRAL_SCALE
    return curve + (SPIRAL_NOISE / SPIRAL_SCALE) * jax.random.normal(noise_key, (n, 2))


def _squared_distances(samples: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``[N, M]`` squared Euclidean distances, float64."""
    return (np.sum(samples ** 2, 1)[:, None] - 2.0 * samples @ points.T
            + np.sum(points ** 2, 1)[None, :]).clip(min=0.0)


def nearest_center_assigner(centers: np.ndarray):
    """Region = nearest centre; distance = Euclidean distance to it."""
    def assign(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d2 = _squared_distances(samples, centers)
        k = np.argmin(d2, axis=1)
        return k, np.sqrt(d2[np.arange(len(samples)), k])
    return assign


def spiral_assigner(num_segments: int = SPIRAL_SEGMENTS, num_points: int = SPIRAL_CURVE_POINTS):
    """Region = t-segment of the nearest curve point; distance = distance to the curve."""
    t = np.linspace(*SPIRAL_T_RANGE, num_points)
    tree = scipy.spatial.cKDTree(spiral_curve(t))
    segment = np.minimum((np.arange(num_points) * num_segments) // num_points, num_segments - 1)

    def assign(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        finite = np.all(np.isfinite(samples), axis=1)
        dist, j = tree.query(np.where(finite[:, None], samples, 0.0))
        return segment[j], np.where(finite, dist, np.inf)

    return assign


def _make_targets() -> dict[str, Target]:
    ring = ring_centers()
    grid = grid_centers()
    bounds = np.linspace(*SPIRAL_T_RANGE, SPIRAL_SEGMENTS + 1)
    return {
        "ring": Target("ring", 0.02, 8, gaussian_mixture_sampler(ring, 0.02),
                       nearest_center_assigner(ring), ring, 2.6,
                       "8 equal Gaussians on a circle of radius 2, std 0.02 (Metz et al. 2016)"),
        "grid": Target("grid", 0.05 / GRID_SCALE, 25,
                       gaussian_mixture_sampler(grid, 0.05 / GRID_SCALE),
                       nearest_center_assigner(grid), grid, 1.9,
                       "25 equal Gaussians at 2 * {-2..2}^2 / 2.828, std 0.05 / 2.828 "
                       "(Gulrajani et al. 2017, gan_toy.py)"),
        "spiral": Target("spiral", SPIRAL_NOISE / SPIRAL_SCALE, SPIRAL_SEGMENTS, spiral_sample,
                         spiral_assigner(), spiral_curve((bounds[:-1] + bounds[1:]) / 2), 2.2,
                         "swiss roll (t cos t, t sin t) / 7.5, t ~ U[1.5 pi, 4.5 pi], noise "
                         "std 0.25 / 7.5 (Gulrajani et al. 2017); modes = 20 equal-mass "
                         "segments of the curve"),
    }


TARGETS: dict[str, Target] = _make_targets()


def get_target(name: str) -> Target:
    """Looks up a target; an unknown name lists the valid ones."""
    return registry.lookup(TARGETS, "target", name)


def coverage(target: Target, samples, min_fraction: float = MIN_FRACTION
             ) -> dict[str, float | list[int]]:
    """Modes covered and high-quality share of ``samples [N, 2]`` (module docstring).

    Returns a dict: ``modes_covered`` (int, 0..num_modes), ``high_quality`` (fraction in
    [0, 1]) and ``mode_counts`` (high-quality samples per region, length ``num_modes``).
    """
    samples = np.asarray(samples, np.float64)
    if samples.ndim != 2 or samples.shape[1] != 2:
        raise ValueError(f"expected samples [N, 2], got shape {samples.shape}")
    region, distance = target.assign(samples)
    good = np.isfinite(distance) & (distance <= QUALITY_RADIUS * target.std)
    counts = np.bincount(region[good], minlength=target.num_modes)
    threshold = min_fraction * len(samples) / target.num_modes
    return {"modes_covered": int(np.sum(counts >= threshold)),
            "high_quality": float(np.mean(good)),
            "mode_counts": [int(c) for c in counts]}
