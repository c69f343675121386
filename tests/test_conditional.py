"""Class-conditional GANs: the wrappers' math, parameter counts, the step's use of labels,
sampling with one row per class, and training + evaluation end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gan_jax
from gan_jax.models import conditional
from gan_jax.games import losses
from gan_jax.training import sampling
from gan_jax.metrics import scoring
from gan_jax.games.classic import build_gan
from gan_jax.games import count_params, create_state
from gan_jax.games.classic_updates import discriminator_update
from gan_jax.training.steps import make_train_step
from tests.helpers import tree_equal, write_mnist_dir

ROOT = Path(__file__).resolve().parents[1]

MLP = gan_jax.Config(arch="mlp", conditional=True, batch_size=8, num_steps=4, log_every=2,
                     sample_every=2, checkpoint_every=2, eval_every=0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return (rng.uniform(-1, 1, (64, 28, 28, 1)).astype(np.float32),
            rng.integers(0, 10, 64).astype(np.int32))


@pytest.mark.parametrize("arch,g_extra,d_extra", [
    ("thesis", 10 * 1024, 10 * 5 * 5 * 32),  # z+10 -> Dense 1024; 1+10 channels -> conv 5x5x32
    ("dcgan", 10 * 7 * 7 * 256, 10 * 4 * 4 * 64),  # z+10 -> 7x7x256; 1+10 channels -> 4x4x64
    ("mlp", 10 * 128, 10 * 128),  # z+10 -> 128; flat 784+10 -> 128 (Mirza & Osindero)
    ("goodfellow_mlp", 10 * 1200, 10 * 240 * 5),  # z+10 -> 1200; 784+10 -> maxout 240x5
])
def test_conditional_parameter_counts(arch, g_extra, d_extra):
    config = gan_jax.Config(arch=arch)
    plain = jax.eval_shape(lambda: create_state(config, jax.random.key(0)))
    cond = jax.eval_shape(lambda: create_state(config.replace(conditional=True),
                                               jax.random.key(0)))
    assert count_params(cond.g_params) - count_params(plain.g_params) == g_extra
    assert count_params(cond.d_params) - count_params(plain.d_params) == d_extra
    assert list(cond.g_params) == ["generator"] and list(cond.d_params) == ["discriminator"]


def test_wrappers_feed_the_one_hot_label():
    class Probe(gan_jax.models.architectures.nn.Module):  # returns its input: shows what the wrapper feeds
        def __call__(self, x, train=True):
            return x

    z = jnp.arange(6.0).reshape(2, 3)
    labels = jnp.array([2, 0])
    g_in = conditional.ConditionalGenerator(Probe(), 4).apply({}, z, labels)
    np.testing.assert_array_equal(g_in, [[0, 1, 2, 0, 0, 1, 0], [3, 4, 5, 1, 0, 0, 0]])
    x = jnp.ones((2, 3, 3, 1))
    d_in = conditional.ConditionalDiscriminator(Probe(), 4).apply({}, x, labels)
    assert d_in.shape == (2, 3, 3, 5)
    np.testing.assert_array_equal(d_in[0, :, :, 1:], np.broadcast_to([0, 0, 1, 0], (3, 3, 4)))
    np.testing.assert_array_equal(d_in[1, :, :, 1:], np.broadcast_to([1, 0, 0, 0], (3, 3, 4)))
    flat = conditional.ConditionalDiscriminator(Probe(), 4, flat=True).apply({}, x, labels)
    np.testing.assert_array_equal(flat[0], [1] * 9 + [0, 0, 1, 0])


def test_label_helpers():
    np.testing.assert_array_equal(conditional.balanced_labels(7, 3), [0, 1, 2, 0, 1, 2, 0])
    np.testing.assert_array_equal(conditional.grid_labels(3, 2), [0, 0, 1, 1, 2, 2])
    labels = conditional.sample_labels(jax.random.key(0), 5000, 10)
    assert labels.dtype == jnp.int32 and set(np.unique(labels)) == set(range(10))
    assert abs(np.bincount(labels).min() - 500) < 80
    with pytest.raises(ValueError, match="dataset 'celeb_a' has none"):
        gan_jax.Config(dataset="celeb_a", arch="dcgan64", conditional=True)


def test_discriminator_update_conditions_fakes_on_the_real_labels(data):
    """The D step's loss equals a hand computation with fakes G(z, y_real) and D(., y_real)."""
    images, labels = data
    config = MLP.replace(objective="nonsaturating")
    gan = build_gan(config)
    state = create_state(config, jax.random.key(0))
    real, y = jnp.asarray(images[:8]), jnp.asarray(labels[:8])
    key = jax.random.key(3)
    _, metrics = jax.jit(lambda s: discriminator_update(gan, s, real, key, labels=y))(state)
    z = gan.sample_z(key, 8)
    fake = gan.generator.apply({"params": state.g_params}, z, y)
    d = lambda x, lab: gan.discriminator.apply({"params": state.d_params}, x, lab)  # noqa: E731
    expected = losses.bce_discriminator_loss(real_logits=d(real, y), fake_logits=d(fake, y))
    np.testing.assert_allclose(metrics["d_loss"], expected, rtol=1e-5)
    other = losses.bce_discriminator_loss(real_logits=d(real, (y + 1) % 10),
                                          fake_logits=d(fake, (y + 1) % 10))
    assert abs(float(other) - float(expected)) > 1e-4  # the labels do matter
    with pytest.raises(ValueError, match="needs the real minibatch's labels"):
        discriminator_update(gan, state, real, key)


def test_train_step_needs_labels_exactly_when_conditional(data):
    images, labels = data
    with pytest.raises(ValueError, match="needs the training set's labels"):
        make_train_step(MLP, images)
    with pytest.raises(ValueError, match="labels were given to an unconditional GAN"):
        make_train_step(MLP.replace(conditional=False), images, labels=labels)
    with pytest.raises(ValueError, match=r"labels \(63,\) do not match images"):
        make_train_step(MLP, images, labels=labels[:63])


def test_conditional_training_end_to_end(data, tmp_path):
    """train() with labels: deterministic, the grid has one row per class, the generator
    follows its label, and evaluation reports label accuracy."""
    images, labels = data
    config = MLP.replace(workdir=str(tmp_path / "a"))
    state = gan_jax.train(config, images, labels)
    again = gan_jax.train(config.replace(workdir=str(tmp_path / "b")), images, labels)
    assert tree_equal(state, again)
    assert json.load(open(tmp_path / "a" / "config.json"))["conditional"] is True
    assert os.path.exists(tmp_path / "a" / "samples" / "step_000004.png")
    with pytest.raises(ValueError, match="needs the labels of the images"):
        gan_jax.train(config.replace(workdir=str(tmp_path / "c")), images)

    outputs = gan_jax.training.loop._Outputs(config, None, 0)
    np.testing.assert_array_equal(outputs.fixed_labels, np.repeat(np.arange(10), 10))
    np.testing.assert_array_equal(outputs.fixed_z[:10], outputs.fixed_z[10:20])  # z per column
    z = outputs.fixed_z[:2]
    as_three = sampling.generate(config, state, z, jnp.array([3, 3]))
    as_seven = sampling.generate(config, state, z, jnp.array([7, 7]))
    assert not np.allclose(as_three, as_seven)
    with pytest.raises(ValueError, match="needs labels"):
        sampling.generate(config, state, z)
    np.testing.assert_array_equal(sampling.sample_labels(config, 12), np.arange(12) % 10)
    samples = sampling.sample(config, state, jax.random.key(1), 12)
    expected = sampling.generate(config, state, build_gan(config).sample_z(jax.random.key(1), 12),
                                 np.arange(12) % 10)
    np.testing.assert_allclose(samples, expected, rtol=1e-6)


def test_conditional_evaluation_reports_label_accuracy(tmp_path):
    eval_dir = write_mnist_dir(tmp_path / "mnist", num_train=160, num_test=120)
    config = MLP.replace(workdir=str(tmp_path / "run"), data_dir=str(eval_dir), eval_every=4,
                         eval_samples=100)
    gan_jax.train(config)  # loads the labels with the images
    row = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")][-1]
    assert 0.0 <= row["label_accuracy"] <= 1.0
    result = scoring.evaluate_workdir(config.workdir, num_samples=100, parzen=False)
    assert result["conditional"] is True and 0.0 <= result["label_accuracy"] <= 1.0
    # experiments.sample writes the classes next to the images, and scoring that file gives the
    # same label accuracy (same seed, same samples).
    npz = tmp_path / "samples.npz"
    done = subprocess.run([sys.executable, "-m", "experiments.sample", f"--workdir={config.workdir}",
                           "--num=100", f"--npz={npz}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    sampled, sampled_labels = scoring.load_samples_npz(str(npz), with_labels=True)
    np.testing.assert_array_equal(sampled_labels, np.arange(100) % 10)
    assert scoring.quick_scores(sampled, scoring.load_reference("mnist", str(eval_dir)),
                                sampled_labels)["label_accuracy"] == result["label_accuracy"]
    # label_accuracy is the share of images the evaluator assigns to their requested class.
    reference = scoring.load_reference("mnist", str(eval_dir))
    images, labels = gan_jax.load_dataset("mnist", "test", str(eval_dir))
    predicted = np.argmax(reference.evaluator.features_and_probs(
        scoring.prepare_images(images)[0])[1], axis=1)
    assert scoring.quick_scores(images, reference, predicted)["label_accuracy"] == 1.0
    assert scoring.quick_scores(images, reference, (predicted + 1) % 10)["label_accuracy"] == 0.0
