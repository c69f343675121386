"""Sample-quality metrics as pure functions of features or class probabilities.

The classifier that turns images into features / probabilities lives in ``gan_jax.metrics.evaluator``;
everything here only sees arrays, so each metric can be checked against closed forms.

* Frechet distance (FID, Heusel et al. 2017) between Gaussians fitted to two feature sets.
* Classifier score (the Inception Score of Salimans et al. 2016 with any classifier).
* Mode coverage: histogram of predicted classes, classes covered, KL to uniform.
* Improved precision and recall (Kynkaanniemi et al. 2019): k-NN manifolds of feature sets.
* Kernel distance (KID, Binkowski et al. 2018): unbiased MMD^2, cubic polynomial kernel.
* Parzen window log-likelihood, the protocol of Goodfellow et al. 2014 (after Breuleux et al.
  2011): fit an isotropic Gaussian kernel density to 10,000 generated samples (flattened images in
  [0, 1]), choose its width sigma from ``np.logspace(-1, 0, 10)`` by the mean log-likelihood of the
  first 1,000 images of MNIST train[50000:60000], and report the mean log-likelihood of the 10,000
  MNIST test images +- its standard error (Goodfellow's GAN: 225 +- 2 nats). The estimate is known
  to be high-variance and a poor proxy for likelihood in high dimension (Theis et al. 2016); it is
  here to compare with the papers, not to rank models.

Pairwise distances (precision/recall, Parzen) are computed by ``jax.jit``-compiled functions in
blocks of ``batch_size`` rows, so a 10k x 10k distance matrix never exists at once; the remaining
reductions are done in float64 numpy on the host.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special


def _as_matrix(x, name: str, min_rows: int = 1, dim: int | None = None) -> np.ndarray:
    """``x`` as a finite float64 array [N, D] with N >= min_rows (and D == dim); else ValueError."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must have rank 2 [N, D], got shape {x.shape}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} needs N >= {min_rows} rows, got N = {x.shape[0]}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} has feature dimension {x.shape[1]}, expected {dim}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _positive(value, name: str) -> float:
    """``value`` as a float, checked finite and > 0."""
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return value


def _positive_int(value, name: str) -> int:
    """``value`` as an int, checked integral and >= 1."""
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


# ----------------------------------------------------------------------------- Frechet distance

def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean float64 [D] and covariance float64 [D, D] (ddof=1) of ``features`` [N, D], N >= 2."""
    x = _as_matrix(features, "features", min_rows=2)
    mean = x.mean(axis=0)
    centered = x - mean
    return mean, centered.T @ centered / (x.shape[0] - 1)


def _covariance(cov, name: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition (w [D], V [D, D]) of a covariance [D, D], checked to be symmetric and
    PSD up to rounding (1e-6 of its largest eigenvalue); else ValueError."""
    cov = _as_matrix(cov, name, dim=dim)
    if cov.shape[0] != dim:
        raise ValueError(f"{name} must be [{dim}, {dim}], got {cov.shape}")
    scale = np.max(np.abs(cov), initial=0.0)
    if np.max(np.abs(cov - cov.T), initial=0.0) > 1e-6 * scale:
        raise ValueError(f"{name} is not symmetric")
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    if dim and w[0] < -1e-6 * max(np.max(np.abs(w)), 1e-300):
        raise ValueError(f"{name} is not PSD: smallest eigenvalue {w[0]}")
    return w, v


def frechet_distance_from_stats(mu1, cov1, mu2, cov2) -> float:
    """||mu1 - mu2||^2 + tr(C1) + tr(C2) - 2 tr(sqrt(C1 C2)), in float64.

    tr sqrt(C1 C2) = sum sqrt(eig(S1 C2 S1)) with S1 = C1^(1/2) = V diag(sqrt(max(w, 0))) V^T from
    ``eigh``: S1 C2 S1 is similar to C1 C2 but symmetric PSD, so ``eigvalsh`` is stable where
    ``scipy.linalg.sqrtm(C1 @ C2)`` can return complex parts or NaN for near-singular covariances
    (e.g. N < D). The covariances are checked to be symmetric PSD, so the distance is >= 0 and a
    negative result can only be rounding (sqrt of ~1e-16 eigenvalues gives ~1e-8 each when the
    covariances are singular); it is clipped to 0.
    """
    mu1 = np.asarray(mu1, np.float64)
    mu2 = np.asarray(mu2, np.float64)
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"means must be vectors of equal length, got {mu1.shape} and {mu2.shape}")
    if not (np.all(np.isfinite(mu1)) and np.all(np.isfinite(mu2))):
        raise ValueError("means contain NaN or inf")
    w1, v1 = _covariance(cov1, "cov1", mu1.shape[0])
    w2, v2 = _covariance(cov2, "cov2", mu1.shape[0])
    s1 = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T
    middle = s1 @ ((v2 * w2) @ v2.T) @ s1
    tr_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)))
    diff = mu1 - mu2
    return float(max(diff @ diff + np.sum(w1) + np.sum(w2) - 2 * tr_sqrt, 0.0))


def frechet_distance(features_a, features_b) -> float:
    """Frechet distance between Gaussians fitted to ``features_a`` [N, D] and ``features_b``."""
    return frechet_distance_from_stats(*gaussian_stats(features_a), *gaussian_stats(features_b))


# ---------------------------------------------------------------------- class-probability metrics

def classifier_score(probs) -> float:
    """exp(E_x KL(p(y|x) || p(y))) with p(y) = mean_x p(y|x); ``probs`` [N, K], rows sum to 1.

    ``xlogy`` gives 0 log 0 = 0, so one-hot predictions spread equally over k classes score
    exactly k and identical predictions score 1.
    """
    p = _as_matrix(probs, "probs")
    if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("probs must be non-negative with rows summing to 1")
    marginal = p.mean(axis=0)
    kl = np.sum(special.xlogy(p, p) - special.xlogy(p, marginal[None, :]), axis=1)
    return float(np.exp(np.mean(kl)))


def mode_coverage(predicted_classes, num_classes: int = 10, threshold: float = 0.05) -> dict:
    """Histogram of predicted classes [N] and how far it is from covering all classes.

    Returns ``histogram`` (fraction per class, length ``num_classes``), ``classes_covered``
    (classes with fraction >= ``threshold``) and ``class_kl`` = KL(histogram || uniform)
    = sum_c h_c log(h_c num_classes) in nats (0 log 0 = 0): 0 for uniform, log(num_classes)
    for a single class.
    """
    num_classes = _positive_int(num_classes, "num_classes")
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    labels = np.asarray(predicted_classes)
    if labels.ndim != 1 or labels.shape[0] < 1:
        raise ValueError(f"predicted_classes must be a non-empty vector, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        if not (np.all(np.isfinite(labels)) and np.all(labels == np.round(labels))):
            raise ValueError("predicted_classes must be integers (found NaN, inf or fractions)")
        labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"predicted_classes must lie in [0, {num_classes})")
    hist = np.bincount(labels, minlength=num_classes) / labels.shape[0]
    return {
        "histogram": [float(h) for h in hist],
        "classes_covered": int(np.sum(hist >= threshold)),
        "class_kl": float(np.sum(special.xlogy(hist, hist * num_classes))),
    }


# ------------------------------------------------------------------------ precision and recall

def _sq_distances(a: jax.Array, b: jax.Array) -> jax.Array:
    """||a_i - b_j||^2 [B, M] for a [B, D], b [M, D]; expanded as a matmul, clamped at >= 0."""
    sq = jnp.sum(a * a, axis=1)[:, None] + jnp.sum(b * b, axis=1)[None, :] - 2.0 * a @ b.T
    return jnp.maximum(sq, 0.0)


@functools.partial(jax.jit, static_argnames="k")
def _kth_nn_block(block: jax.Array, points: jax.Array, k: int) -> jax.Array:
    """Squared distance from each row of ``block`` to its k-th nearest neighbour in ``points``,
    the point itself (distance 0) being the 0-th. [B]."""
    return -jax.lax.top_k(-_sq_distances(block, points), k + 1)[0][:, k]


@jax.jit
def _inside_block(block: jax.Array, points: jax.Array, radii_sq: jax.Array) -> jax.Array:
    """Whether each row of ``block`` lies in some ball (points_j, radius_j). bool [B]."""
    return jnp.any(_sq_distances(block, points) <= radii_sq[None, :], axis=1)


def _map_blocks(fn, rows: np.ndarray, batch_size: int, *args) -> np.ndarray:
    """``fn(block, *args)`` over row blocks of ``rows``; the last block is zero-padded to
    ``batch_size`` so ``fn`` compiles once, and the padding is dropped from the result."""
    batch_size = min(batch_size, rows.shape[0])
    out = []
    for start in range(0, rows.shape[0], batch_size):
        block = rows[start:start + batch_size]
        padded = np.pad(block, ((0, batch_size - block.shape[0]), (0, 0)))
        out.append(np.asarray(fn(jnp.asarray(padded), *args))[:block.shape[0]])
    return np.concatenate(out)


def precision_recall(real_features, fake_features, k: int = 3,
                     batch_size: int = 1024) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of ``fake`` [N, D] vs ``real``.

    The manifold of a set is the union of balls around its points with radius the distance to
    the k-th nearest neighbour within the set (excluding the point itself). precision = fraction
    of fake points inside the real manifold; recall = fraction of real points inside the fake one.
    """
    k = _positive_int(k, "k")
    batch_size = _positive_int(batch_size, "batch_size")
    real = _as_matrix(real_features, "real_features", min_rows=k + 1)
    fake = _as_matrix(fake_features, "fake_features", min_rows=k + 1, dim=real.shape[1])
    # Distances are translation invariant; centring shrinks the norms the float32 expansion cancels.
    offset = real.mean(axis=0)
    real = (real - offset).astype(np.float32)
    fake = (fake - offset).astype(np.float32)
    real_j, fake_j = jnp.asarray(real), jnp.asarray(fake)
    real_radii = _map_blocks(functools.partial(_kth_nn_block, k=k), real, batch_size, real_j)
    fake_radii = _map_blocks(functools.partial(_kth_nn_block, k=k), fake, batch_size, fake_j)
    precision = _map_blocks(_inside_block, fake, batch_size, real_j, jnp.asarray(real_radii))
    recall = _map_blocks(_inside_block, real, batch_size, fake_j, jnp.asarray(fake_radii))
    return float(np.mean(precision)), float(np.mean(recall))


# ----------------------------------------------------------------------- kernel distance (KID)

def kernel_inception_distance(real_features, fake_features, num_subsets: int = 10,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Mean and std over random subsets of the unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3.

    Per subset of m real x and m fake y (drawn without replacement, m = min(subset_size, n_real,
    n_fake)): MMD^2 = sum_{i!=j}[k(x_i,x_j) + k(y_i,y_j)] / (m(m-1)) - 2 sum_{i,j} k(x_i,y_j) / m^2
    (Binkowski et al. 2018). The std is numpy's (ddof=0), as in their reference code.
    """
    num_subsets = _positive_int(num_subsets, "num_subsets")
    real = _as_matrix(real_features, "real_features", min_rows=2)
    fake = _as_matrix(fake_features, "fake_features", min_rows=2, dim=real.shape[1])
    m = min(_positive_int(subset_size, "subset_size"), real.shape[0], fake.shape[0])
    if m < 2:
        raise ValueError(f"subset_size must be >= 2, got {subset_size}")
    d = real.shape[1]
    rng = np.random.default_rng(seed)
    mmds = []
    for _ in range(num_subsets):
        x = real[rng.choice(real.shape[0], m, replace=False)]
        y = fake[rng.choice(fake.shape[0], m, replace=False)]
        kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        within = kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)
        mmds.append(within / (m * (m - 1)) - 2 * kxy.sum() / m**2)
    return float(np.mean(mmds)), float(np.std(mmds))


# ------------------------------------------------------------------ Parzen window log-likelihood

@jax.jit
def _parzen_logsumexp(test: jax.Array, chunks: jax.Array, valid: jax.Array,
                      inv_two_var: jax.Array) -> jax.Array:
    """logsumexp_i(-||x - s_i||^2 inv_two_var) [B] for x in ``test`` [B, D] over samples given as
    ``chunks`` [C, S, D] (``valid`` [C, S] masks padding): a running (max, sum) scan over chunks."""

    def step(carry, chunk):
        running_max, running_sum = carry
        samples, mask = chunk
        logits = jnp.where(mask[None, :], -_sq_distances(test, samples) * inv_two_var, -jnp.inf)
        new_max = jnp.maximum(running_max, jnp.max(logits, axis=1))
        running_sum = (running_sum * jnp.exp(running_max - new_max)
                       + jnp.sum(jnp.exp(logits - new_max[:, None]), axis=1))
        return (new_max, running_sum), None

    init = (jnp.full(test.shape[0], -jnp.inf, test.dtype), jnp.zeros(test.shape[0], test.dtype))
    (running_max, running_sum), _ = jax.lax.scan(step, init, (chunks, valid))
    return running_max + jnp.log(running_sum)


def _parzen_lls(samples: np.ndarray, test: np.ndarray, sigma: float, batch_size: int) -> np.ndarray:
    """Per-test-point Parzen log-likelihoods float64 [M] (inputs already validated)."""
    n, d = samples.shape
    batch_size = min(batch_size, n)
    offset = samples.mean(axis=0)  # translation invariant; keeps float32 norms small
    num_chunks = -(-n // batch_size)
    padded = np.zeros((num_chunks * batch_size, d), np.float32)
    padded[:n] = samples - offset
    valid = np.arange(num_chunks * batch_size) < n
    chunks = jnp.asarray(padded.reshape(num_chunks, batch_size, d))
    valid = jnp.asarray(valid.reshape(num_chunks, batch_size))
    inv_two_var = jnp.float32(1.0 / (2.0 * sigma**2))
    lse = _map_blocks(_parzen_logsumexp, (test - offset).astype(np.float32), batch_size,
                      chunks, valid, inv_two_var)
    return lse.astype(np.float64) - np.log(n) - d / 2 * np.log(2 * np.pi * sigma**2)


def _parzen_inputs(samples, test, batch_size):
    samples = _as_matrix(samples, "samples")
    test = _as_matrix(test, "test", dim=samples.shape[1])
    return samples, test, _positive_int(batch_size, "batch_size")


def parzen_log_likelihood(samples, test, sigma: float,
                          batch_size: int = 1000) -> tuple[float, float]:
    """Mean and standard error over ``test`` [M, D] of the Parzen log-likelihood in nats.

    log p(x) = logsumexp_i(-||x - s_i||^2 / (2 sigma^2)) - log N - D/2 log(2 pi sigma^2) for the
    isotropic Gaussian kernel density on ``samples`` [N, D]. Standard error = std / sqrt(M) with
    numpy's std (ddof=0), as in Goodfellow's ``parzen_ll.py``. Test points go in blocks and samples
    in chunks of ``batch_size``; distances and the running logsumexp are float32, the constants and
    the mean float64.
    """
    samples, test, batch_size = _parzen_inputs(samples, test, batch_size)
    lls = _parzen_lls(samples, test, _positive(sigma, "sigma"), batch_size)
    return float(lls.mean()), float(lls.std() / np.sqrt(lls.shape[0]))


def select_parzen_sigma(samples, validation, sigmas=np.logspace(-1, 0, 10),
                        batch_size: int = 1000) -> tuple[float, list[float]]:
    """The sigma in ``sigmas`` with the highest mean Parzen log-likelihood of ``validation``
    [M, D], and the mean log-likelihood for every sigma (in the order given)."""
    samples, validation, batch_size = _parzen_inputs(samples, validation, batch_size)
    sigmas = np.asarray(sigmas, np.float64)
    if sigmas.ndim != 1 or sigmas.shape[0] < 1:
        raise ValueError(f"sigmas must be a non-empty vector, got shape {sigmas.shape}")
    lls = [float(_parzen_lls(samples, validation, _positive(s, "sigma"), batch_size).mean())
           for s in sigmas]
    return float(sigmas[int(np.argmax(lls))]), lls
