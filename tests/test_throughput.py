"""Accelerator throughput options, exact on the CPU: N steps per compiled call (a lax.scan)
and bfloat16 arithmetic with float32 parameters."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gan_jax
from gan_jax.training import loop, steps
from tests.helpers import tree_equal


def _stack(metrics):
    return jax.tree.map(lambda *x: jnp.stack(x), *metrics)


def _singles(step, state, key, num):
    out = []
    for _ in range(num):
        state, m = step(state, key)
        out.append(m)
    return state, out


def test_steps_per_call_is_bitwise_the_single_calls(tiny_images):
    """MLP GAN, 3 calls of 4 steps = 12 single calls: the batches cross an epoch (8 per
    epoch of the 64 images), the noise follows the step counter, the metrics stack in order."""
    config = gan_jax.Config(arch="mlp", batch_size=8, eval_every=0)
    init_key, key, _ = loop.run_keys(0)
    state = gan_jax.create_state(config, init_key)
    want, singles = _singles(steps.make_train_step(config, tiny_images), state, key, 12)
    four = steps.make_train_step(config, tiny_images, steps_per_call=4)
    got, stacked = state, []
    for _ in range(3):
        got, m = four(got, key)
        stacked.append(m)
    assert int(got.step) == 12
    assert tree_equal(got, want)
    for i, m in enumerate(stacked):
        assert jax.tree.map(jnp.shape, m) == {k: (4,) for k in m}
        assert tree_equal(m, _stack(singles[4 * i:4 * i + 4]))


def test_steps_per_call_with_convolutions_agrees_to_rounding(tiny_images):
    """XLA compiles the convolutions of the loop body on its own (on the CPU the loop is
    unrolled, see steps.scan_steps), so conv nets agree to float32 rounding, not bit for bit."""
    config = gan_jax.Config(batch_size=8, eval_every=0)  # the thesis GAN
    init_key, key, _ = loop.run_keys(0)
    state = gan_jax.create_state(config, init_key)
    want, singles = _singles(steps.make_train_step(config, tiny_images), state, key, 2)
    got, m = steps.make_train_step(config, tiny_images, steps_per_call=2)(state, key)
    assert int(got.step) == 2
    for k, v in _stack(singles).items():
        np.testing.assert_allclose(m[k], v, rtol=1e-5, atol=1e-6)
    # Adam's early updates are ~lr * sign(g): a gradient that is zero up to rounding can flip
    # (tests/test_parallel.py), so a few parameters move by up to 2 lr; the rest agree.
    pairs = list(zip(jax.tree.leaves(got), jax.tree.leaves(want)))
    off = sum(int(np.sum(~np.isclose(a, b, rtol=1e-3, atol=1e-5))) for a, b in pairs)
    assert off <= 1e-5 * sum(a.size for a, _ in pairs), off
    assert max(float(np.max(np.abs(a - b))) for a, b in pairs) <= 2 * config.learning_rate


def test_the_loop_with_steps_per_call_is_the_same_run(tiny_config, tiny_images, tmp_path):
    """train() with 2 steps per call after a resume from an odd step (a single step first to
    reach a multiple of 2, single steps after the last whole call): every metrics row and the
    final state equal the 1-step run's (MLP: bitwise)."""
    config = tiny_config.replace(arch="mlp", num_steps=7, log_every=2, sample_every=2,
                                 checkpoint_every=2)
    ref = gan_jax.train(config.replace(workdir=str(tmp_path / "one")), tiny_images)
    workdir = str(tmp_path / "two")
    gan_jax.train(config.replace(workdir=workdir, num_steps=1), tiny_images)
    got = gan_jax.train(config.replace(workdir=workdir, steps_per_call=2), tiny_images)
    assert tree_equal(got, ref)
    rows = lambda d: [json.loads(x) for x in open(tmp_path / d / "metrics.jsonl")]  # noqa: E731
    assert rows("two") == rows("one") and [r["step"] for r in rows("two")] == list(range(1, 8))


def test_bfloat16_compute_keeps_float32_state_and_trains(tiny_images):
    config = gan_jax.Config(arch="dcgan", batch_size=8, eval_every=0)  # BatchNorm in G and D
    mixed = config.replace(compute_dtype="bfloat16")
    init_key, key, _ = loop.run_keys(0)
    state = gan_jax.create_state(config, init_key)
    assert tree_equal(gan_jax.create_state(mixed, init_key), state)  # same initial state
    want, m32 = steps.make_train_step(config, tiny_images)(state, key)
    step = steps.make_train_step(mixed, tiny_images)
    got, m16 = step(state, key)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    assert all(a.dtype == b.dtype for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)))
    assert not tree_equal(got, want)  # the arithmetic really was bfloat16
    for k in m32:  # bfloat16 keeps 8 bits of mantissa: ~0.4% per rounding
        np.testing.assert_allclose(m16[k], m32[k], rtol=3e-2, atol=3e-2)
    # It trains: 30 steps move D's loss on the real/fake split as the float32 run does.
    s16, s32 = got, want
    f32 = steps.make_train_step(config, tiny_images)
    for _ in range(30):
        s16, m16 = step(s16, key)
        s32, m32 = f32(s32, key)
    assert all(np.isfinite(float(v)) for v in m16.values())
    assert abs(float(m16["d_loss"]) - float(m32["d_loss"])) < 0.25 * float(m32["d_loss"])


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="log_every=3 must be a multiple of steps_per_call=2"):
        gan_jax.Config(steps_per_call=2, log_every=3)
    with pytest.raises(ValueError, match="steps_per_call must be >= 1"):
        gan_jax.Config(steps_per_call=0)
    with pytest.raises(ValueError, match=r"Unknown compute_dtype 'float16'; valid: "
                                         r"\['float32', 'bfloat16'\]"):
        gan_jax.Config(compute_dtype="float16")
