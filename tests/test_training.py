"""The training loop: workdir outputs, bitwise resume, NaN stop with checkpoints intact."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gan_jax
from gan_jax.training import loop as train_lib
from gan_jax.training.checkpoint import Checkpointer
from gan_jax.games import abstract_state
from tests.helpers import tree_equal



def _rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def reference(tiny_config, tiny_images, tmp_path_factory):
    """An uninterrupted 4-step run: (workdir, final state)."""
    workdir = str(tmp_path_factory.mktemp("reference"))
    state = gan_jax.train(tiny_config.replace(workdir=workdir), tiny_images)
    return workdir, state


def test_workdir_outputs(reference, tiny_config):
    workdir, state = reference
    assert int(state.step) == 4
    assert gan_jax.load_config(os.path.join(workdir, "config.json")) == tiny_config.replace(
        workdir=workdir)
    rows = _rows(workdir)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert set(rows[0]) == {"step", "d_loss", "g_loss", "d_real", "d_fake", "g_d_fake"}
    assert sorted(os.listdir(os.path.join(workdir, "samples"))) == [
        "step_000000.png", "step_000002.png", "step_000004.png"]
    assert os.path.getsize(os.path.join(workdir, "curves.png")) > 10_000
    with Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True) as ckpt:
        assert ckpt.all_steps() == [2, 4]
        assert tree_equal(ckpt.restore(abstract_state(tiny_config)), state)


def test_same_seed_same_bits_other_seed_differs(reference, tiny_config, tiny_images, tmp_path):
    _, state = reference
    again = gan_jax.train(tiny_config.replace(workdir=str(tmp_path / "a")), tiny_images)
    assert tree_equal(again, state)
    other = gan_jax.train(tiny_config.replace(workdir=str(tmp_path / "b"), seed=1), tiny_images)
    assert not tree_equal(other.g_params, state.g_params)


def test_stop_and_resume_equals_uninterrupted(reference, tiny_config, tiny_images, tmp_path):
    ref_dir, ref_state = reference
    config = tiny_config.replace(workdir=str(tmp_path))
    half = gan_jax.train(config.replace(num_steps=2), tiny_images)
    assert int(half.step) == 2
    # A killed run can leave metric rows past its last checkpoint and a half-written line.
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 3, "d_loss": 123.0}) + "\n{\"step\": 4, \"d_lo")
    resumed = gan_jax.train(config, tiny_images)
    assert tree_equal(resumed, ref_state)
    assert _rows(str(tmp_path)) == _rows(ref_dir)


def test_resuming_with_other_settings_is_refused(reference, tiny_config, tiny_images):
    workdir, _ = reference
    with pytest.raises(ValueError, match=r"config.json belongs to a run with other settings "
                                         r"\(objective: saved 'nonsaturating' vs requested 'minimax'\)"):
        gan_jax.train(tiny_config.replace(workdir=workdir, objective="minimax"), tiny_images)


def _poisoned_train_step(monkeypatch, at_step, where):
    """Makes the loop's train step produce a NaN loss or NaN parameters at ``at_step``."""
    real = train_lib.make_train_step

    def make(config, images, **kwargs):
        step_fn = real(config, images, **kwargs)

        def poisoned(state, key):
            state, metrics = step_fn(state, key)
            if int(state.step) == at_step:
                if where == "loss":
                    metrics = {**metrics, "g_loss": jnp.float32(jnp.nan)}
                else:
                    state = state.replace(
                        d_params=jax.tree.map(lambda x: x * jnp.inf, state.d_params))
            return state, metrics
        return poisoned

    monkeypatch.setattr(train_lib, "make_train_step", make)


@pytest.mark.parametrize("where,message", [
    ("loss", r"non-finite \{'g_loss': nan\} at step 3"),
    ("params", r"non-finite parameters or optimiser state after step 4"),
])
def test_nan_stops_training_and_keeps_the_last_good_checkpoint(
        monkeypatch, reference, tiny_config, tiny_images, tmp_path, where, message):
    _, ref_state = reference
    at_step = 3 if where == "loss" else 4
    _poisoned_train_step(monkeypatch, at_step, where)
    config = tiny_config.replace(workdir=str(tmp_path), log_every=1)
    with pytest.raises(gan_jax.TrainingDiverged,
                       match=message + r".*last good checkpoint is step 2 in .*checkpoints"):
        gan_jax.train(config, tiny_images)
    with Checkpointer(str(tmp_path / "checkpoints"), read_only=True) as ckpt:
        assert ckpt.all_steps() == [2]
        restored = ckpt.restore(abstract_state(tiny_config))
    # The surviving checkpoint is loadable and is exactly the healthy run's step-2 state:
    # resuming without the poison ends where the reference run ended.
    monkeypatch.undo()
    assert int(restored.step) == 2
    assert tree_equal(gan_jax.train(config, tiny_images), ref_state)


def test_sample_from_workdir(reference):
    workdir, _ = reference
    images, step = gan_jax.sample_from_workdir(workdir, num=5, seed=1)
    assert step == 4 and images.shape == (5, 28, 28, 1) and images.dtype == np.float32
    assert -1.0 <= images.min() and images.max() <= 1.0
    again, _ = gan_jax.sample_from_workdir(workdir, num=5, seed=1)
    np.testing.assert_array_equal(images, again)
    earlier, step = gan_jax.sample_from_workdir(workdir, num=5, seed=1, step=2)
    assert step == 2 and not np.array_equal(earlier, images)
