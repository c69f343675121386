"""Scoring images against a real-data reference: input handling, the record and its card, the
evaluation during training, and the experiments.evaluate program."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gan_jax
from gan_jax import data
from gan_jax.metrics import evaluation, scoring
from gan_jax.metrics.evaluator import EVALUATORS
from gan_jax.training.loop import eval_key
from tests.helpers import write_mnist_dir

ROOT = Path(__file__).resolve().parents[1]
EVAL_JSON_KEYS = {"fd", "score", "classes_covered", "class_kl", "precision", "recall", "kid",
                  "parzen_ll", "parzen_se", "parzen_sigma", "n_samples", "evaluator_sha256"}


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory):
    """A tiny MNIST-shaped folder: 160 train, 120 test random images."""
    return write_mnist_dir(tmp_path_factory.mktemp("eval_mnist"), num_train=160, num_test=120)


@pytest.fixture(scope="module")
def reference(eval_dir):
    # Goodfellow's Parzen validation slice (train[50000:51000]) does not exist in a tiny set;
    # the test stands it in with train[100:160].
    old = scoring.PARZEN_VALIDATION
    scoring.PARZEN_VALIDATION = slice(100, 160)
    try:
        yield scoring.load_reference("mnist", str(eval_dir))
    finally:
        scoring.PARZEN_VALIDATION = old


def _test_images(eval_dir):
    images, _ = data.load_dataset("mnist", "test", str(eval_dir))
    return images


@pytest.mark.parametrize("make,described", [
    (lambda u: u, "uint8"),
    (lambda u: u.astype(np.float32) / 255.0, "[0, 1]"),
    (lambda u: u.astype(np.float32) / 127.5 - 1.0, "[-1, 1]"),
    (lambda u: (u.astype(np.float32) / 127.5 - 1.0)[..., 0], "[-1, 1]"),
])
def test_prepare_images_detects_and_normalises_the_range(make, described):
    raw = np.random.default_rng(0).integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
    raw[:, 0, 0, 0] = 0  # every image has a black pixel, as digits do
    images, description = scoring.prepare_images(make(raw))
    assert described in description
    assert images.shape == (5, 28, 28, 1) and images.dtype == np.float32
    np.testing.assert_allclose(images, raw.astype(np.float32) / 127.5 - 1.0, atol=1e-6)


@pytest.mark.parametrize("bad,message", [
    (np.full((5, 28, 28, 1), np.nan, np.float32), "NaN"),
    (np.zeros((5, 28, 28, 3), np.float32), "shape"),
    (np.zeros((5, 784), np.float32), "shape"),
    (np.full((5, 28, 28), 2.0, np.float32), "expected [0, 1] or [-1, 1]"),
    (np.zeros((5, 28, 28), np.int64), "dtype"),
])
def test_prepare_images_rejects_bad_input(bad, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        scoring.prepare_images(bad)


def test_real_images_score_like_the_reference(reference, eval_dir):
    """The test split scored against itself: FD 0, precision = recall = 1, and the card."""
    result = scoring.score_images(_test_images(eval_dir), reference)
    assert EVAL_JSON_KEYS <= set(result)
    assert abs(result["fd"]) < 1e-3
    assert result["precision"] == 1.0 and result["recall"] == 1.0
    assert result["n_samples"] == 120 and result["n_real"] == 120
    assert result["real_split"] == "mnist test"
    assert result["evaluator_sha256"] == EVALUATORS["mnist"].sha256
    assert result["input_range"].startswith("uint8")
    assert result["parzen_sigma"] in list(scoring.PARZEN_SIGMAS)
    # The Parzen numbers are those of the pure function on the same data.
    flat = _test_images(eval_dir).reshape(120, -1).astype(np.float32) / 255.0
    ll, se = evaluation.parzen_log_likelihood(flat, reference.parzen_test, result["parzen_sigma"])
    assert result["parzen_ll"] == pytest.approx(ll, rel=1e-6)
    assert result["parzen_se"] == pytest.approx(se, abs=1e-5)  # ~0: each point is a sample
    assert json.loads(json.dumps(result)) == result  # plain JSON types only


def test_score_differs_for_other_images_and_counts_classes(reference):
    blank = -np.ones((200, 28, 28, 1), np.float32)  # one image 200 times: total collapse
    result = scoring.quick_scores(blank, reference)
    assert result["fd"] > 1.0
    assert result["classes_covered"] == 1
    assert result["class_kl"] == pytest.approx(np.log(10), abs=1e-6)
    assert result["score"] == pytest.approx(1.0, abs=1e-5)


def test_too_few_samples_is_an_error(reference):
    with pytest.raises(ValueError, match="too few"):
        scoring.score_images(np.zeros((10, 28, 28, 1), np.float32), reference)


def test_load_samples_npz_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        scoring.load_samples_npz(str(tmp_path / "missing.npz"))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="garbage.npz"):
        scoring.load_samples_npz(str(garbage))
    wrong_key = tmp_path / "wrong.npz"
    np.savez(wrong_key, pictures=np.zeros((2, 28, 28)))
    with pytest.raises(ValueError, match="no array 'images'.*pictures"):
        scoring.load_samples_npz(str(wrong_key))


def test_npz_labels_are_checked(tmp_path, reference):
    images = np.zeros((20, 28, 28), np.float32)
    path = tmp_path / "labelled.npz"
    np.savez(path, images=images, labels=np.arange(20) % 10)
    loaded, labels = scoring.load_samples_npz(str(path), with_labels=True)
    assert loaded.shape == (20, 28, 28) and list(labels[:3]) == [0, 1, 2]
    assert scoring.load_samples_npz(str(path)).shape == (20, 28, 28)  # images only
    np.savez(path, images=images, labels=np.zeros(19, np.int64))
    with pytest.raises(ValueError, match=r"labelled.npz: 'labels' must be integer classes \[N\] "
                                         r"for the 20 images, got int64 \[19\]"):
        scoring.load_samples_npz(str(path), with_labels=True)
    np.savez(path, images=images)
    assert scoring.load_samples_npz(str(path), with_labels=True)[1] is None
    fakes = np.random.default_rng(0).uniform(-1, 1, (120, 28, 28, 1)).astype(np.float32)
    with pytest.raises(ValueError, match=r"labels must be integer classes in 0..9, got int64 "
                                         r"values in \[0, 10\]"):
        scoring.quick_scores(fakes, reference, labels=np.arange(120) % 11)


def test_training_logs_evaluations_and_evaluate_scores_the_run(eval_dir, tmp_path, tiny_config):
    config = tiny_config.replace(workdir=str(tmp_path / "run"), data_dir=str(eval_dir),
                                 eval_every=2, eval_samples=100)
    gan_jax.train(config)
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    evaluated = [row["step"] for row in rows if "fd" in row]
    card = json.loads((tmp_path / "run" / "eval_card.json").read_text())
    assert card == {"evaluator": "mnist", "evaluator_sha256": EVALUATORS["mnist"].sha256,
                    "real_split": "mnist test", "n_real": 120, "n_samples": 100}
    assert evaluated == [2, 4]
    assert all(row["fd"] > 0 and 1 <= row["classes_covered"] <= 10 for row in rows if "fd" in row)
    # The same fakes (a fixed z) as the library's sampling with the run's eval key.
    reference = scoring.load_reference("mnist", str(eval_dir))
    state = gan_jax.train(config)  # already at num_steps: restores, trains nothing
    images = gan_jax.sample(config, state, eval_key(config.seed), 100)
    assert scoring.quick_scores(images, reference)["fd"] == pytest.approx(rows[-1]["fd"], rel=1e-6)

    result = scoring.evaluate_workdir(config.workdir, num_samples=100, parzen=False)
    assert result["step"] == 4 and result["n_samples"] == 100 and result["parzen_ll"] is None


def test_evaluate_cli_scores_an_npz(eval_dir, tmp_path):
    npz = tmp_path / "fakes.npz"
    rng = np.random.default_rng(1)
    np.savez(npz, images=rng.uniform(0, 1, (100, 28, 28)).astype(np.float32))
    result = subprocess.run(
        [sys.executable, "-m", "experiments.evaluate", f"--samples={npz}",
         f"--data_dir={eval_dir}", "--noparzen"],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads((tmp_path / "fakes.eval.json").read_text())
    assert EVAL_JSON_KEYS <= set(written)
    assert written["n_samples"] == 100 and "[0, 1]" in written["input_range"]
    assert "label_accuracy" not in written
    # With the classes a conditional G was asked for, the score adds label_accuracy: the
    # evaluator's own predictions as labels give 1.0.
    images = np.load(npz)["images"]
    reference = scoring.load_reference("mnist", str(eval_dir))
    predicted = np.argmax(reference.evaluator.features_and_probs(
        scoring.prepare_images(images)[0])[1], axis=1)
    np.savez(npz, images=images, labels=predicted.astype(np.int32))
    result = subprocess.run(
        [sys.executable, "-m", "experiments.evaluate", f"--samples={npz}",
         f"--data_dir={eval_dir}", "--noparzen"],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "fakes.eval.json").read_text())["label_accuracy"] == 1.0
    bad = subprocess.run(
        [sys.executable, "-m", "experiments.evaluate", f"--samples={tmp_path / 'none.npz'}",
         f"--data_dir={eval_dir}"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert bad.returncode == 1 and "none.npz" in bad.stderr
