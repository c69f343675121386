"""Checkpoints: bitwise round trip into a typed target, clear errors, incomplete saves ignored."""

import os
import shutil

import jax
import jax.numpy as jnp
import pytest

from gan_jax.training.checkpoint import CheckpointError, Checkpointer
from gan_jax.games.classic import GANState
from gan_jax.games import abstract_state, create_state
from tests.helpers import tree_equal



@pytest.fixture(scope="module")
def state(tiny_config):
    return create_state(tiny_config, jax.random.key(0)).replace(step=jnp.int32(7))


def test_round_trip_is_bitwise_and_typed(tmp_path, tiny_config, state):
    with Checkpointer(str(tmp_path)) as ckpt:
        ckpt.save(7, state)
        ckpt.save(7, state)  # saving an existing step again is a no-op, not an error
        assert ckpt.latest_step() == 7
        restored = ckpt.restore(abstract_state(tiny_config))
    assert isinstance(restored, GANState)
    assert restored.step.dtype == jnp.int32 and int(restored.step) == 7
    assert tree_equal(restored, state)


def test_keeps_the_newest_three(tmp_path, state):
    with Checkpointer(str(tmp_path), max_to_keep=3) as ckpt:
        for step in (1, 2, 3, 4, 5):
            ckpt.save(step, state)
        assert ckpt.all_steps() == [3, 4, 5]


def test_missing_directory_and_step_are_named(tmp_path, tiny_config, state):
    with pytest.raises(CheckpointError, match="nope: checkpoint directory not found"):
        Checkpointer(str(tmp_path / "nope"), read_only=True)
    with Checkpointer(str(tmp_path)) as ckpt:
        with pytest.raises(CheckpointError, match="no complete checkpoint found"):
            ckpt.restore(abstract_state(tiny_config))
        ckpt.save(2, state)
        with pytest.raises(CheckpointError, match=r"/9: no such checkpoint; available steps: \[2\]"):
            ckpt.restore(abstract_state(tiny_config), step=9)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, tiny_config, state):
    with Checkpointer(str(tmp_path)) as ckpt:
        ckpt.save(4, state)
    # Truncate every data file of the checkpoint, as a disk failure would.
    for root, _, files in os.walk(tmp_path / "4"):
        for name in files:
            if name not in ("_CHECKPOINT_METADATA", "commit_success.txt"):
                with open(os.path.join(root, name), "r+b") as f:
                    f.truncate(max(os.path.getsize(f.name) // 3, 1))
    with Checkpointer(str(tmp_path)) as ckpt:
        with pytest.raises(CheckpointError, match=r"/4: checkpoint is corrupt or does not match"):
            ckpt.restore(abstract_state(tiny_config))


def test_checkpoint_of_another_model_is_a_clear_error(tmp_path, tiny_config, state):
    with Checkpointer(str(tmp_path)) as ckpt:
        ckpt.save(1, state)
        other = abstract_state(tiny_config.replace(latent_dim=10))
        with pytest.raises(CheckpointError, match="corrupt or does not match this model"):
            ckpt.restore(other)


def test_incomplete_save_is_ignored_and_cleaned(tmp_path, tiny_config, state):
    """What a SIGKILL during a save leaves behind: orbax's temporary directory."""
    with Checkpointer(str(tmp_path)) as ckpt:
        ckpt.save(2, state)
    partial = tmp_path / "6.orbax-checkpoint-tmp"
    shutil.copytree(tmp_path / "2", partial)
    os.remove(partial / "commit_success.txt")
    with Checkpointer(str(tmp_path)) as ckpt:
        assert ckpt.latest_step() == 2
        assert tree_equal(ckpt.restore(abstract_state(tiny_config)), state)
    assert not partial.exists()  # cleaned up on start
