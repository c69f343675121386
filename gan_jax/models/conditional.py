"""Class-conditional GANs (Mirza & Osindero 2014): the label y is fed to G and to D.

``--conditional`` wraps any registered pair:

* G(z, y) = G_base([z, onehot(y)]): the one-hot label is concatenated to the noise.
* D(x, y) = D_base([x, onehot(y) broadcast over the pixels]): K constant label planes are
  concatenated to the image channels (or the one-hot vector to a flat point).

A constant plane seen by a convolution (or by the first Dense layer of an MLP) adds a learned,
class-dependent bias map to the first layer's pre-activations, which is what Mirza & Osindero's
concatenation of y to the input of an MLP computes; the wrapper is therefore one mechanism for
every architecture, MLPs and conv nets alike, at the cost of a few redundant weights.

Training (:mod:`gan_jax.training.steps`): each discriminator update conditions its fakes on the labels of
its real minibatch (so both halves have the same class mix and WGAN-GP's interpolates have one
well-defined label); each generator update draws labels uniformly from the K classes.
Sampling draws balanced labels (:func:`balanced_labels`); grids show one row per class.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# Datasets whose labels are classes (celeb_a's are not: it has attributes, not classes).
NUM_CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10}


def num_classes_for(dataset: str) -> int:
    """K for ``--conditional`` on ``dataset``; datasets without class labels raise."""
    if dataset not in NUM_CLASSES:
        raise ValueError(f"--conditional needs class labels; dataset {dataset!r} has none "
                         f"(conditional datasets: {sorted(NUM_CLASSES)})")
    return NUM_CLASSES[dataset]


class ConditionalGenerator(nn.Module):
    """G(z, y): ``generator`` applied to ``[z, onehot(y)]`` (its parameters sit under
    ``"generator"``)."""

    generator: nn.Module
    num_classes: int

    def __call__(self, z: jax.Array, labels: jax.Array, train: bool = True) -> jax.Array:
        onehot = jax.nn.one_hot(labels, self.num_classes, dtype=z.dtype)
        return self.generator(jnp.concatenate([z, onehot], axis=-1), train=train)


class ConditionalDiscriminator(nn.Module):
    """D(x, y): ``discriminator`` applied to x with K one-hot label planes appended to its last
    (channel) axis: ``[B, H, W, C] -> [B, H, W, C + K]`` (``[B, d] -> [B, d + K]`` for points).

    ``flat=True`` (discriminators that flatten their input first, the MLPs): the input is
    ``[flatten(x), onehot(y)]`` of size ``H*W*C + K`` instead, Mirza & Osindero's form (planes
    would give the same function with H*W times the label weights).
    """

    discriminator: nn.Module
    num_classes: int
    flat: bool = False

    def __call__(self, x: jax.Array, labels: jax.Array, train: bool = True) -> jax.Array:
        onehot = jax.nn.one_hot(labels, self.num_classes, dtype=x.dtype)
        if self.flat:
            flat = jnp.concatenate([x.reshape(x.shape[0], -1), onehot], axis=-1)
            return self.discriminator(flat, train=train)
        planes = jnp.broadcast_to(onehot.reshape(x.shape[0], *([1] * (x.ndim - 2)), -1),
                                  (*x.shape[:-1], self.num_classes))
        return self.discriminator(jnp.concatenate([x, planes], axis=-1), train=train)


def sample_labels(key: jax.Array, num: int, num_classes: int) -> jax.Array:
    """``num`` labels drawn uniformly from ``0..num_classes-1`` (int32)."""
    return jax.random.randint(key, (num,), 0, num_classes, dtype=jnp.int32)


def balanced_labels(num: int, num_classes: int) -> np.ndarray:
    """``0, 1, ..., K-1, 0, 1, ...``: every class equally often (to within one)."""
    return (np.arange(num) % num_classes).astype(np.int32)


def grid_labels(num_classes: int, per_class: int) -> np.ndarray:
    """Row-major labels of a grid with one row per class: ``[0]*per_class + [1]*per_class ...``."""
    return np.repeat(np.arange(num_classes, dtype=np.int32), per_class)
