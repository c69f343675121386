"""Helpers shared by the tests: writing IDX files and tiny MNIST-shaped folders."""

import gzip
import struct
from pathlib import Path

import numpy as np

from gan_jax import data


def normal(seed, shape):
    """Standard normal float32 test data from numpy. (A jax.random draw compiles its sampler
    once per shape, about a second each on 2 cores: most of some files' time.)"""
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def uniform(seed, shape):
    """Uniform [-1, 1) float32 test data (latents, images in the model range) from numpy."""
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


_TYPE_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B,
               np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(array, extra=b"", cut=0, magic=None):
    """IDX encoding of `array` (big-endian); `extra` appended, `cut` bytes dropped, `magic` overrides."""
    array = np.asarray(array)
    be = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    head = magic if magic is not None else bytes([0, 0, _TYPE_CODES[be], array.ndim])
    raw = head + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(be).tobytes() + extra
    return raw[: len(raw) - cut]


def write_idx(path, array, gz=True, **kwargs):
    raw = idx_bytes(array, **kwargs)
    Path(path).write_bytes(gzip.compress(raw) if gz else raw)
    return Path(path)


def write_mnist_dir(folder, num_train=64, num_test=16, seed=0):
    """Writes the four gzipped MNIST IDX files with random 28x28 digits; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in (("train", num_train), ("test", num_test)):
        image_name, label_name = data.IDX_FILES[split]
        write_idx(folder / image_name, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / label_name, (np.arange(n) % 10).astype(np.uint8))
    return folder


def tree_equal(a, b) -> bool:
    """True when two pytrees have the same structure and bit-identical leaves."""
    import jax
    import jax.numpy as jnp

    return all(jax.tree_util.tree_leaves(
        jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), a, b)))
