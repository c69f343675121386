"""Dataset loading and on-device minibatch sampling.

Sources: a folder of the four (optionally gzipped) IDX files MNIST and
Fashion-MNIST ship as, parsed with plain numpy (works offline), or
``tfds.data_source``, which needs no TensorFlow install. Greyscale sets come as
uint8 images ``[N, H, W]``, colour sets (``cifar10`` 32x32, ``celeb_a`` center-cropped
and resized to 64x64) as ``[N, H, W, 3]``; labels are uint8 ``[N]`` (zeros for
``celeb_a``, which has attributes, not classes). The training set then lives on the
device and the compiled step draws its own minibatch with :func:`batch_indices`,
so no host input pipeline runs per step.
"""

from __future__ import annotations

import functools
import gzip
import zlib
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class DataError(ValueError):
    """Raised for missing/corrupt data; message always names the file and what is wrong."""


IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# Fashion-MNIST deliberately reuses MNIST's file names and format.
IDX_DATASETS = ("mnist", "fashion_mnist")
DATASET_NAMES = IDX_DATASETS + ("cifar10", "celeb_a")
CELEB_A_SIZE = 64  # the DCGAN-64 resolution

# IDX type code (third magic byte) -> element dtype. Multi-byte types are
# big-endian on disk by the format's definition.
_IDX_DTYPES = {code: np.dtype(t) for code, t in
               [(0x08, "u1"), (0x09, "i1"), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"), (0x0E, ">f8")]}


def _existing_variant(path: Path) -> Path | None:
    """Returns ``path`` if it exists, else its twin with/without ``.gz``, else None."""
    if path.is_file():
        return path
    twin = path.with_name(path.name.removesuffix(".gz") if path.name.endswith(".gz") else path.name + ".gz")
    return twin if twin.is_file() else None


def read_idx(path) -> np.ndarray:
    """Reads one IDX file into a numpy array.

    Args:
        path: File path, gunzipped when the name ends with ``.gz``. If absent,
            the same name without (or with) ``.gz`` is read instead, so folders
            of uncompressed files work too.

    Returns:
        Array with the header's shape (e.g. ``[N, 28, 28]``) and element type
        in native byte order (uint8 for MNIST).

    Raises:
        DataError: Missing file, bad gzip, bad magic, or payload size != header.
    """
    requested = Path(path)
    found = _existing_variant(requested)
    if found is None:
        raise DataError(f"{requested}: IDX file not found")
    try:
        if found.name.endswith(".gz"):
            with gzip.open(found, "rb") as f:
                raw = f.read()
        else:
            raw = found.read_bytes()
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError.
        raise DataError(f"{found}: cannot read gzip stream (corrupt or truncated file): {e}") from e

    if len(raw) < 4:
        raise DataError(f"{found}: too short for an IDX header ({len(raw)} bytes)")
    _, _, type_code, ndim = raw[:4]
    problem = (
        "first two bytes must be zero (not an IDX file?)" if raw[0] or raw[1]
        else f"unsupported IDX type code 0x{type_code:02x}" if type_code not in _IDX_DTYPES
        else "number of dimensions is 0" if ndim == 0
        else None
    )
    if problem:
        raise DataError(f"{found}: bad magic number 0x{raw[:4].hex()}: {problem}")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"{found}: truncated header: expected {header_len} bytes for {ndim} dims, found {len(raw)}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))

    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found_bytes = len(raw) - header_len
    if found_bytes < expected:
        raise DataError(f"{found}: truncated: expected {expected} bytes of data for shape {dims}, found {found_bytes}")
    if found_bytes > expected:
        raise DataError(
            f"{found}: trailing bytes: expected {expected} bytes of data for shape {dims}, "
            f"found {found_bytes} ({found_bytes - expected} extra)"
        )
    # astype copies, which also makes the result writable (frombuffer on bytes is read-only).
    data = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def load_mnist_idx(data_dir, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Loads one split from a folder holding MNIST-format IDX files.

    Args:
        data_dir: Folder with the files named in ``IDX_FILES`` (``.gz`` optional).
        split: ``"train"`` or ``"test"``.

    Returns:
        ``(images, labels)``: uint8 ``[N, H, W]`` (28x28 for MNIST) and uint8 ``[N]``.

    Raises:
        ValueError: Unknown split.
        DataError: Missing/corrupt file, wrong rank/dtype, count mismatch, or a
            label outside 0..9.
    """
    if split not in IDX_FILES:
        raise ValueError(f"unknown split {split!r}; valid splits: {sorted(IDX_FILES)}")
    folder = Path(data_dir)
    _check_folder(folder, "data folder")
    paths = []
    for name in IDX_FILES[split]:
        found = _existing_variant(folder / name)
        if found is None:
            expected = ", ".join(n for pair in IDX_FILES.values() for n in pair)
            raise DataError(f"{folder / name}: missing IDX file ({folder} should hold {expected}; .gz optional)")
        paths.append(found)
    image_path, label_path = paths
    images, labels = read_idx(image_path), read_idx(label_path)

    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{image_path}: expected 3-D uint8 images [N, H, W], got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(f"{label_path}: expected 1-D uint8 labels [N], got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DataError(
            f"count mismatch: {image_path} has {len(images)} images but {label_path} has {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise DataError(f"{label_path}: label out of range 0..9 (max is {labels.max()})")
    return images, labels


def load_tfds(name: str = "mnist", split: str = "train", data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """Loads a split via ``tfds.data_source`` (array_record; no TensorFlow needed).

    Args:
        name: TFDS dataset name, e.g. ``"mnist"``.
        split: TFDS split name.
        data_dir: TFDS data folder, or None for the TFDS default.

    Returns:
        ``(images, labels)``: uint8 ``[N, H, W]`` for one channel (axis squeezed) or
        ``[N, H, W, C]``, and uint8 ``[N]`` (zeros when the dataset has no ``label``).
        ``celeb_a`` images are center-cropped and resized (:func:`center_crop_resize`).

    Raises:
        DataError: Any failure inside TFDS (typically no network), chained.
    """
    try:
        # Imported here because importing tfds is slow and the IDX path never needs it.
        import tensorflow_datasets as tfds

        source = tfds.data_source(name, split=split, data_dir=data_dir, download=True)
        # Plain indexing, not __getitems__: per-example decoding dominates anyway,
        # and tfds.testing.mock_data's __getitems__ is broken in tfds 4.9.10.
        examples = [source[i] for i in range(len(source))]
        decode = lambda chunk: np.stack([np.asarray(ex["image"], np.uint8) for ex in chunk])  # noqa: E731
        if name == "celeb_a":  # 218x178 photos: crop and resize in chunks, not all at once
            images = np.concatenate([center_crop_resize(decode(examples[i:i + 1024]), CELEB_A_SIZE)
                                     for i in range(0, len(examples), 1024)])
        else:
            images = decode(examples)
        labels = np.asarray([ex.get("label", 0) for ex in examples]).astype(np.uint8)
    except Exception as e:
        where = f" (tfds data_dir {data_dir})" if data_dir is not None else ""
        raise DataError(
            f"tfds could not provide dataset {name!r} split {split!r}{where}: {type(e).__name__}: {e}. "
            "Offline, pass a folder holding the four IDX files (train/t10k images/labels) with --data_dir."
        ) from e
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    return images, labels


def center_crop_resize(images: np.ndarray, size: int) -> np.ndarray:
    """Square center crop (the shorter side) then area-averaging resize to ``size`` x ``size``.

    The DCGAN CelebA preprocessing (218x178 -> 178x178 -> 64x64). uint8 ``[N, H, W, C]`` in
    and out; the resize is ``jax.image.resize`` with antialiasing, rounded to uint8.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"expected images [N, H, W, C], got shape {images.shape}")
    n, h, w, c = images.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = images[:, top:top + side, left:left + side].astype(np.float32)
    resized = jax.image.resize(crop, (n, size, size, c), method="linear", antialias=True)
    return np.asarray(jnp.clip(jnp.round(resized), 0, 255)).astype(np.uint8)


def _check_folder(folder: Path, what: str) -> None:
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder}: is a file, not a {what}")
    if not folder.is_dir():
        raise DataError(f"{folder}: {what} not found")


def load_dataset(name: str = "mnist", split: str = "train", data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """Loads a dataset split from an IDX folder or from TFDS.

    Args:
        name: One of ``DATASET_NAMES``.
        split: ``"train"`` or ``"test"``.
        data_dir: None -> TFDS default location. A folder holding any
            ``*-ubyte*`` file -> read as an IDX folder. An existing folder
            without IDX files -> used as a TFDS data dir. A missing folder ->
            DataError (most likely a typo; we don't want TFDS to try a download
            into it).

    Returns:
        ``(images, labels)``: uint8 ``[N, H, W]`` and uint8 ``[N]``.

    Raises:
        ValueError: Unknown dataset name or split.
        DataError: Data missing or corrupt.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; valid names: {list(DATASET_NAMES)}")
    if data_dir is None:
        return load_tfds(name, split)
    folder = Path(data_dir)
    if name not in IDX_DATASETS:  # colour sets come only from tfds; data_dir is its folder
        _check_folder(folder, "tfds data folder")
        return load_tfds(name, split, data_dir=str(folder))
    if not folder.is_dir() or any("-ubyte" in p.name for p in folder.iterdir()):
        return load_mnist_idx(folder, split)  # Also reports a missing folder.
    return load_tfds(name, split, data_dir=str(folder))


def to_model_range(images_uint8) -> np.ndarray:
    """Maps uint8 pixels to the generator's tanh output range.

    Args:
        images_uint8: uint8 ``[N, H, W]`` or ``[N, H, W, C]``.

    Returns:
        float32 ``[N, H, W, C]`` (C=1 added for 3-D input) equal to
        ``x / 127.5 - 1`` correctly rounded, so 0 -> -1.0 and 255 -> 1.0 exactly.

    Raises:
        ValueError: Not uint8 (catches scaling twice) or not 3-D/4-D.
    """
    x = np.asarray(images_uint8)
    if x.dtype != np.uint8:
        raise ValueError(f"to_model_range expects uint8 images, got {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    elif x.ndim != 4:
        raise ValueError(f"to_model_range expects [N, H, W] or [N, H, W, C], got shape {x.shape}")
    # Same value as x / 127.5 - 1, but x - 127.5 is exact in float32, so one
    # rounding: every level is correctly rounded and symmetric about 0.
    return (x.astype(np.float32) - np.float32(127.5)) / np.float32(127.5)


def epoch_permutation(data_key, epoch, num_examples: int) -> jax.Array:
    """The int32 ``[N]`` order of epoch ``epoch``: a permutation keyed by ``fold_in(data_key, epoch)``."""
    return jax.random.permutation(jax.random.fold_in(data_key, epoch), num_examples).astype(jnp.int32)


def _check_batch_size(num_examples: int, batch_size: int) -> None:
    if batch_size < 1 or batch_size > num_examples:
        raise ValueError(f"batch_size must be in 1..num_examples={num_examples}, got {batch_size}")


def batch_indices(data_key, batch_number, num_examples: int, batch_size: int) -> jax.Array:
    """Indices of minibatch ``batch_number`` in an epoch-shuffled stream.

    Each epoch is a fresh permutation keyed by ``fold_in(data_key, epoch)``
    (:func:`epoch_permutation`), cut into ``num_examples // batch_size`` batches (the
    remainder is dropped). So every example is seen at most once per epoch (sampling without
    replacement), and the stream is a pure function of ``(data_key, batch_number)``: a run
    resumed from a checkpoint at step ``s`` draws the exact batches the uninterrupted run would
    have, with no iterator state to save. It is jittable, so a compiled step can gather its real
    batch from the device-resident dataset. It re-derives the whole epoch's permutation on every
    call, though: sorts of ``num_examples`` keys, about 21 ms for MNIST's 60,000 on the 2-core
    CPU. :func:`gan_jax.training.steps.make_train_step` therefore computes each epoch's permutation once
    (:func:`epoch_orders`) and draws the same batches with :func:`batch_indices_from`.

    Args:
        data_key: PRNG key reserved for data order.
        batch_number: int scalar (may be traced), counting from 0 across epochs.
        num_examples: Static dataset size N.
        batch_size: Static batch size B; ValueError unless ``1 <= B <= N``.

    Returns:
        int32 ``[B]`` indices into the dataset.
    """
    _check_batch_size(num_examples, batch_size)
    batches_per_epoch = num_examples // batch_size
    batch_number = jnp.asarray(batch_number, dtype=jnp.int32)
    epoch = batch_number // batches_per_epoch
    perm = epoch_permutation(data_key, epoch, num_examples)
    start = (batch_number % batches_per_epoch) * batch_size
    return jax.lax.dynamic_slice(perm, (start,), (batch_size,))


class EpochOrders(NamedTuple):
    """Precomputed epoch orders: ``perms[e] = epoch_permutation(data_key, first_epoch + e, N)``.

    A pytree (``first_epoch`` int32 scalar, ``perms`` int32 ``[E, N]``) that a compiled step
    takes as an argument; :func:`batch_indices_from` reads batches out of it.
    """

    first_epoch: jax.Array
    perms: jax.Array


@functools.partial(jax.jit, static_argnums=(2, 3))
def epoch_orders(data_key, first_epoch, num_epochs: int, num_examples: int) -> EpochOrders:
    """The orders of epochs ``first_epoch .. first_epoch + num_epochs - 1`` (bitwise those
    :func:`batch_indices` derives)."""
    first_epoch = jnp.asarray(first_epoch, jnp.int32)
    epochs = first_epoch + jnp.arange(num_epochs, dtype=jnp.int32)
    perms = jax.vmap(lambda e: epoch_permutation(data_key, e, num_examples))(epochs)
    return EpochOrders(first_epoch, perms)


def epochs_spanned(num_batches: int, num_examples: int, batch_size: int) -> int:
    """The most epochs that ``num_batches`` consecutive batches can draw from."""
    _check_batch_size(num_examples, batch_size)
    if num_batches < 1:
        raise ValueError(f"num_batches must be >= 1, got {num_batches}")
    per_epoch = num_examples // batch_size
    # A run of n batches starting at offset o of an epoch ends in epoch (o + n - 1) // per_epoch.
    return (per_epoch - 1 + num_batches - 1) // per_epoch + 1


def batch_indices_from(orders: EpochOrders, batch_number, num_examples: int,
                       batch_size: int) -> jax.Array:
    """:func:`batch_indices` read from precomputed ``orders`` (same values, no sort).

    ``batch_number``'s epoch must be one of ``orders``' epochs (the caller's duty; an epoch out
    of range reads a clamped row).
    """
    _check_batch_size(num_examples, batch_size)
    if orders.perms.shape[-1] != num_examples:
        raise ValueError(f"epoch orders of {orders.perms.shape[-1]} examples for a dataset of "
                         f"{num_examples}")
    batches_per_epoch = num_examples // batch_size
    batch_number = jnp.asarray(batch_number, dtype=jnp.int32)
    row = batch_number // batches_per_epoch - orders.first_epoch
    start = (batch_number % batches_per_epoch) * batch_size
    return jax.lax.dynamic_slice(orders.perms, (row, start), (1, batch_size))[0]
