"""Tests for gan_jax.data: IDX parsing and validation, dataset dispatch, scaling, batch sampling."""

import gzip
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import data
from gan_jax.data import DataError
from tests.helpers import idx_bytes, write_idx, write_mnist_dir

REAL_MNIST = Path(__file__).resolve().parents[2] / "shared/data/mnist"

def fake_split(n=10, hw=28, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, hw, hw), dtype=np.uint8), np.arange(n, dtype=np.uint8) % 10


@pytest.fixture
def idx_dir(tmp_path):
    """Folder with all four gzipped IDX files: 10 train and 4 test examples of 28x28."""
    for split, n in (("train", 10), ("test", 4)):
        images, labels = fake_split(n, seed=n)
        image_name, label_name = data.IDX_FILES[split]
        write_idx(tmp_path / image_name, images)
        write_idx(tmp_path / label_name, labels)
    return tmp_path


# ---------------------------------------------------------------- read_idx


@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
def test_read_idx_round_trip_all_types(tmp_path, dtype):
    array = (np.arange(24) - 7).astype(dtype).reshape(2, 3, 4)
    if dtype == "u1":
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10
    out = data.read_idx(write_idx(tmp_path / "x-ubyte.gz", array))
    assert out.shape == (2, 3, 4) and out.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(out, array)


def test_read_idx_uncompressed_and_gz_fallback(tmp_path):
    images, _ = fake_split(3)
    write_idx(tmp_path / "imgs-idx3-ubyte", images, gz=False)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "imgs-idx3-ubyte"), images)
    # Asking for the .gz name finds the uncompressed file next to it.
    np.testing.assert_array_equal(data.read_idx(str(tmp_path / "imgs-idx3-ubyte.gz")), images)


@pytest.mark.parametrize(
    "kwargs, gz, match",
    [
        (dict(magic=b"\x01\x00\x08\x03"), True, "bad magic number 0x01000803"),
        (dict(magic=b"\x00\x00\x07\x03"), True, "unsupported IDX type code 0x07"),
        (dict(magic=b"\x00\x00\x08\x00"), True, "number of dimensions is 0"),
        (dict(cut=5), True, "truncated: expected 2352 bytes of data .* found 2347"),
        (dict(cut=2358), False, "truncated header: expected 16 bytes for 3 dims, found 10"),
        (dict(extra=b"xyz"), True, "trailing bytes: .* found 2355 \\(3 extra\\)"),
    ],
)
def test_read_idx_errors_name_file_and_problem(tmp_path, kwargs, gz, match):
    images, _ = fake_split(3)
    path = write_idx(tmp_path / ("bad-ubyte.gz" if gz else "bad-ubyte"), images, gz=gz, **kwargs)
    with pytest.raises(DataError, match=f"bad-ubyte.*: {match}"):
        data.read_idx(path)


def test_read_idx_corrupt_and_truncated_gzip(tmp_path):
    images, _ = fake_split(3)
    (tmp_path / "junk-ubyte.gz").write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError, match="junk-ubyte.gz: cannot read gzip stream"):
        data.read_idx(tmp_path / "junk-ubyte.gz")
    whole = gzip.compress(idx_bytes(images))
    (tmp_path / "cut-ubyte.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="cut-ubyte.gz: cannot read gzip stream .*truncated"):
        data.read_idx(tmp_path / "cut-ubyte.gz")


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope-ubyte.gz: IDX file not found"):
        data.read_idx(tmp_path / "nope-ubyte.gz")


# ---------------------------------------------------------------- load_mnist_idx / load_dataset


def test_load_mnist_idx_values(idx_dir):
    for split, n in (("train", 10), ("test", 4)):
        images, labels = data.load_mnist_idx(idx_dir, split)
        want_images, want_labels = fake_split(n, seed=n)
        assert images.dtype == labels.dtype == np.uint8
        np.testing.assert_array_equal(images, want_images)
        np.testing.assert_array_equal(labels, want_labels)


def test_load_mnist_idx_missing_folder_and_file(tmp_path, idx_dir):
    with pytest.raises(DataError, match="no_such_dir: data folder not found"):
        data.load_mnist_idx(tmp_path / "no_such_dir")
    (idx_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: missing IDX file .*should hold train-images"):
        data.load_mnist_idx(idx_dir, "test")
    data.load_mnist_idx(idx_dir, "train")  # The other split is unaffected.


def test_load_mnist_idx_count_mismatch_names_both_files(idx_dir):
    write_idx(idx_dir / "train-labels-idx1-ubyte.gz", np.zeros(9, np.uint8))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz has 10 images but .*train-labels-idx1-ubyte.gz "
                                        "has 9 labels"):
        data.load_mnist_idx(idx_dir)


def test_load_mnist_idx_label_out_of_range(idx_dir):
    write_idx(idx_dir / "train-labels-idx1-ubyte.gz", np.full(10, 10, np.uint8))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: label out of range 0..9"):
        data.load_mnist_idx(idx_dir)


def test_load_mnist_idx_wrong_rank_or_dtype(idx_dir):
    write_idx(idx_dir / "train-images-idx3-ubyte.gz", np.zeros((10, 784), np.uint8))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: expected 3-D uint8 images"):
        data.load_mnist_idx(idx_dir)
    write_idx(idx_dir / "t10k-labels-idx1-ubyte.gz", np.zeros(4, np.int32))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: expected 1-D uint8 labels"):
        data.load_mnist_idx(idx_dir, "test")


def test_load_mnist_idx_accepts_other_image_sizes(tmp_path):
    images, labels = fake_split(5, hw=32)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    assert data.load_mnist_idx(tmp_path)[0].shape == (5, 32, 32)


def test_load_dataset_dispatches_to_idx_folder(idx_dir):
    images, labels = data.load_dataset("mnist", "test", data_dir=str(idx_dir))
    assert images.shape == (4, 28, 28) and labels.shape == (4,)
    assert data.load_dataset("fashion_mnist", "train", data_dir=idx_dir)[0].shape == (10, 28, 28)


def test_load_dataset_unknown_name_and_split(idx_dir):
    with pytest.raises(ValueError, match="unknown dataset 'svhn'; valid names: \\['mnist', 'fashion_mnist', 'cifar10', 'celeb_a'\\]"):
        data.load_dataset("svhn", data_dir=idx_dir)
    with pytest.raises(ValueError, match="unknown split 'validation'; valid splits: \\['test', 'train'\\]"):
        data.load_dataset("mnist", "validation", data_dir=idx_dir)


def test_load_dataset_routes_non_idx_folder_to_tfds(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(data, "load_tfds", lambda *a, **k: calls.append((a, k)) or "tfds")
    assert data.load_dataset("mnist", "train", data_dir=tmp_path) == "tfds"
    assert data.load_dataset("mnist", "test") == "tfds"
    assert calls == [(("mnist", "train"), {"data_dir": str(tmp_path)}), (("mnist", "test"), {})]
    with pytest.raises(DataError, match="typo_dir: data folder not found"):
        data.load_dataset("mnist", data_dir=tmp_path / "typo_dir")


# ---------------------------------------------------------------- tfds


def test_load_tfds_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    # USE_CODE builds fake examples from the MNIST builder's feature spec, with no
    # metadata files, no network and no TensorFlow; it also covers data_source.
    with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
        images, labels = data.load_tfds("mnist", "train")
    assert images.shape == (6, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (6,) and labels.dtype == np.uint8 and labels.max() <= 9


@pytest.mark.parametrize("name,shape", [("fashion_mnist", (28, 28)), ("cifar10", (32, 32, 3)),
                                        ("celeb_a", (64, 64, 3))])
def test_load_tfds_other_datasets_with_mock_data(name, shape):
    """Generated data shaped like the real sets (CelebA: 218x178 photos, cropped and resized)."""
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=3, policy=tfds.testing.MockPolicy.USE_CODE):
        images, labels = data.load_tfds(name, "train")
    assert images.shape == (3, *shape) and images.dtype == np.uint8
    assert labels.shape == (3,) and labels.dtype == np.uint8
    if name == "celeb_a":
        assert not labels.any()  # attributes, no classes


def test_center_crop_resize():
    photo = np.zeros((2, 218, 178, 3), np.uint8)
    photo[:, :20] = 255  # above the central 178x178 square
    photo[:, 198:] = 255  # below it
    np.testing.assert_array_equal(data.center_crop_resize(photo, 64), 0)
    photo[:, 20:198, :89] = 200  # left half of the square
    out = data.center_crop_resize(photo, 64)
    assert out.shape == (2, 64, 64, 3)
    np.testing.assert_array_equal(out[:, :, :31], 200)
    np.testing.assert_array_equal(out[:, :, 33:], 0)
    np.testing.assert_array_equal(data.center_crop_resize(np.full((1, 40, 40, 3), 7, np.uint8), 8), 7)


def test_colour_datasets_come_from_tfds(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(data, "load_tfds", lambda *a, **k: calls.append((a, k)) or "tfds")
    write_mnist_dir(tmp_path / "idx")
    # An IDX folder is not a tfds folder for a colour set: it is passed to tfds, not parsed.
    assert data.load_dataset("cifar10", "train", data_dir=tmp_path / "idx") == "tfds"
    assert data.load_dataset("celeb_a", "test") == "tfds"
    assert calls == [(("cifar10", "train"), {"data_dir": str(tmp_path / "idx")}),
                     (("celeb_a", "test"), {})]
    with pytest.raises(DataError, match="nope: tfds data folder not found"):
        data.load_dataset("celeb_a", data_dir=tmp_path / "nope")
    with pytest.raises(ValueError, match=r"valid names: \['mnist', 'fashion_mnist', 'cifar10', 'celeb_a'\]"):
        data.load_dataset("imagenet")


def test_load_tfds_failure_becomes_data_error(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(tfds, "data_source", offline)
    with pytest.raises(DataError, match="tfds could not provide dataset 'mnist'.*no network.*--data_dir") as info:
        data.load_tfds("mnist", "train")
    assert isinstance(info.value.__cause__, ConnectionError)


# ---------------------------------------------------------------- to_model_range


def test_to_model_range_golden_values():
    x = np.array([0, 255, 127, 128], np.uint8).reshape(1, 2, 2)
    y = data.to_model_range(x)
    assert y.shape == (1, 2, 2, 1) and y.dtype == np.float32
    np.testing.assert_array_equal(y[0, :, :, 0], np.float32([[-1.0, 1.0], [-1 / 255, 1 / 255]]))
    # Every level is the correctly rounded x / 127.5 - 1, symmetric about the 127.5 midpoint.
    levels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    y = data.to_model_range(levels)[..., 0]
    np.testing.assert_array_equal(y, (levels / 127.5 - 1.0).astype(np.float32))
    np.testing.assert_array_equal(y, -data.to_model_range(255 - levels)[..., 0])
    assert data.to_model_range(np.zeros((2, 4, 4, 3), np.uint8)).shape == (2, 4, 4, 3)


def test_to_model_range_rejects_non_uint8_and_bad_rank():
    with pytest.raises(ValueError, match="uint8"):
        data.to_model_range(np.zeros((1, 2, 2), np.float32))
    with pytest.raises(ValueError, match="shape"):
        data.to_model_range(np.zeros((2, 2), np.uint8))


# ---------------------------------------------------------------- batch_indices

N, B = 103, 10  # Remainder 3 is dropped: 10 batches per epoch.


def epoch_batches(key, epoch, fn=data.batch_indices):
    return np.stack([np.asarray(fn(key, epoch * 10 + i, N, B)) for i in range(10)])


def test_batch_indices_epoch_is_disjoint_cover():
    batches = epoch_batches(jax.random.key(0), 0)
    assert batches.dtype == np.int32 and batches.shape == (10, B)
    assert len(np.unique(batches)) == 100 and batches.min() >= 0 and batches.max() < N


def test_batch_indices_deterministic_and_epochs_differ():
    key = jax.random.key(0)
    np.testing.assert_array_equal(epoch_batches(key, 0), epoch_batches(jax.random.key(0), 0))
    assert not np.array_equal(epoch_batches(key, 0), epoch_batches(key, 1))
    assert not np.array_equal(epoch_batches(key, 0), epoch_batches(jax.random.key(1), 0))
    assert len(np.unique(epoch_batches(key, 3))) == 100


def test_batch_indices_jit_matches_eager():
    jitted = jax.jit(data.batch_indices, static_argnums=(2, 3))
    key = jax.random.key(42)
    for step in (0, 7, 10, 23, 999):
        np.testing.assert_array_equal(jitted(key, jnp.int32(step), N, B), data.batch_indices(key, step, N, B))
    # Raw uint32 keys work too.
    raw = jax.random.PRNGKey(1)
    np.testing.assert_array_equal(jitted(raw, jnp.int32(5), N, B), data.batch_indices(raw, 5, N, B))


@pytest.mark.parametrize("batch_size", [0, N + 1])
def test_batch_indices_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size must be in 1..num_examples=103"):
        data.batch_indices(jax.random.key(0), 0, N, batch_size)


def test_epoch_orders_give_the_same_batches_without_a_sort_per_batch():
    """batch_indices_from(epoch_orders) reads bitwise the batches batch_indices derives."""
    key = jax.random.key(7)
    orders = data.epoch_orders(key, 2, 3, N)  # epochs 2, 3, 4
    assert orders.perms.shape == (3, N) and orders.perms.dtype == jnp.int32
    read = jax.jit(data.batch_indices_from, static_argnums=(2, 3))
    for batch_number in range(20, 50):  # every batch of epochs 2..4 (10 batches per epoch)
        np.testing.assert_array_equal(read(orders, jnp.int32(batch_number), N, B),
                                      data.batch_indices(key, batch_number, N, B))
    np.testing.assert_array_equal(orders.perms[1], data.epoch_permutation(key, 3, N))
    with pytest.raises(ValueError, match="epoch orders of 103 examples for a dataset of 50"):
        data.batch_indices_from(orders, 0, 50, B)


def test_epochs_spanned_is_the_most_epochs_any_run_of_batches_touches():
    for num_examples, batch_size in ((103, 10), (64, 8), (64, 64), (60000, 128)):
        per_epoch = num_examples // batch_size
        for num_batches in (1, 2, 3, 5, 8, 9, 17, 100):
            touched = max(len({(first + i) // per_epoch for i in range(num_batches)})
                          for first in range(per_epoch))
            assert data.epochs_spanned(num_batches, num_examples, batch_size) == touched, (
                num_examples, batch_size, num_batches)
    with pytest.raises(ValueError, match="num_batches must be >= 1"):
        data.epochs_spanned(0, N, B)


# ---------------------------------------------------------------- real files


@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason=f"real MNIST IDX files not at {REAL_MNIST}")
def test_real_mnist_files():
    images, labels = data.load_dataset("mnist", "train", data_dir=REAL_MNIST)
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and set(np.unique(labels)) == set(range(10))
    images, labels = data.load_dataset("mnist", "test", data_dir=REAL_MNIST)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
