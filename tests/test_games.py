"""The game abstraction: today's runs unchanged, the registry, generator EMA and its BatchNorm
statistics, resume with EMA, and sampling from the averaged generator by default."""

import json
import os
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gan_jax
from gan_jax.games import ema as ema_lib
from gan_jax.training import sampling
from tests.helpers import normal, uniform

REFERENCE = Path(__file__).parent / "data" / "default_metrics_reference.jsonl"
# Made on main before the game abstraction (commit 5431c8f) by training this config on these
# images with the command-line programs' XLA settings (tests/conftest.py applies them too), on
# a 2-core x86 machine with AVX-512. XLA:CPU picks convolution kernels by instruction set and
# splits them by the number of cores it may use, so float32 results are bitwise only on such a
# machine; elsewhere the first two steps agree to float32 rounding (2.8e-7 relative on a 2-core
# AMD EPYC without AVX-512) and the rest drift apart (the default step has a kink at step 3
# that turns a 1e-7 difference into 4e-4, then 9% by step 12; tests/test_parallel.py).
REFERENCE_CORES = 2
REFERENCE_ISA = "avx512f"
REFERENCE_CONFIG = dict(num_steps=12, batch_size=32, eval_every=0, log_every=4,
                        sample_every=1000, checkpoint_every=1000)
COLUMNS = ("d_loss", "g_loss", "d_real", "d_fake", "g_d_fake")


def _reference_images():
    return uniform(0, (512, 28, 28, 1))


def _column_text(path):
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return [{k: repr(row[k]) for k in ("step",) + COLUMNS} for row in rows]


def _on_the_reference_machine() -> bool:
    if len(os.sched_getaffinity(0)) != REFERENCE_CORES:
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return REFERENCE_ISA in flags


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The stored reference's config trained on its images now: the metrics.jsonl path."""
    workdir = tmp_path_factory.mktemp("default_run")
    config = gan_jax.Config(workdir=str(workdir), **REFERENCE_CONFIG)
    assert (config.game, config.objective, config.arch) == ("classic", "nonsaturating", "thesis")
    gan_jax.train(config, _reference_images())
    return workdir / "metrics.jsonl"


def test_default_run_matches_the_pre_refactor_reference_to_rounding(default_run):
    new = [json.loads(line) for line in default_run.read_text().splitlines()]
    old = [json.loads(line) for line in REFERENCE.read_text().splitlines()]
    assert [row["step"] for row in new] == [row["step"] for row in old] == list(range(1, 13))
    for row_new, row_old in zip(new[:2], old[:2]):
        for column in COLUMNS:
            assert row_new[column] == pytest.approx(row_old[column], rel=2e-6, abs=1e-9), (
                row_new["step"], column)


@pytest.mark.skipif(not _on_the_reference_machine(),
                    reason=f"the stored reference was made on {REFERENCE_CORES} cores with "
                           f"{REFERENCE_ISA}; other CPUs round differently")
def test_default_run_metrics_are_byte_identical_to_before_the_refactor(default_run):
    assert _column_text(default_run) == _column_text(REFERENCE)


@pytest.fixture(scope="module")
def ema_trainings(tmp_path_factory, tiny_config, tiny_images):
    """The tiny config trained by the loop: without EMA ("off"), with EMA 0.9 for 4 steps
    ("full"), and with EMA stopped after 2 steps and resumed to 4 ("cut"). Returns (the
    folder holding the three workdirs, the final state of "full", of "cut")."""
    root = tmp_path_factory.mktemp("ema_trainings")
    config = tiny_config.replace(ema_decay=0.9, num_steps=4, checkpoint_every=2)
    gan_jax.train(config.replace(workdir=str(root / "off"), ema_decay=0.0), tiny_images)
    full = gan_jax.train(config.replace(workdir=str(root / "full")), tiny_images)
    gan_jax.train(config.replace(workdir=str(root / "cut"), num_steps=2), tiny_images)
    resumed = gan_jax.train(config.replace(workdir=str(root / "cut")), tiny_images)
    return root, full, resumed


def test_ema_does_not_change_the_training_metrics(ema_trainings):
    root, _, _ = ema_trainings
    assert (_column_text(root / "full" / "metrics.jsonl")
            == _column_text(root / "off" / "metrics.jsonl"))


def test_games_are_registered_and_unknown_ones_listed():
    assert {"classic", "began"} <= set(gan_jax.GAMES)
    with pytest.raises(ValueError, match=r"Unknown game 'cycle'; valid: \['began', 'classic'"):
        gan_jax.Config(game="cycle")


def test_ema_decay_schedule_closed_form():
    warm = ema_lib.GeneratorEMA(0.999)
    for t in (0, 1, 5, 100, 5000, 20000):
        assert float(warm.decay_at(t)) == pytest.approx(min(0.999, (1 + t) / (10 + t)), rel=1e-6)
    assert float(ema_lib.GeneratorEMA(0.9, warmup=False).decay_at(0)) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="ema_decay must be in"):
        gan_jax.Config(ema_decay=1.0)


@pytest.fixture(scope="module")
def ema_run(tiny_config, tiny_images):
    """Five steps of the tiny config with EMA on: (config, states after each step)."""
    config = tiny_config.replace(ema_decay=0.9)
    step = gan_jax.make_train_step(config, tiny_images)
    state = gan_jax.create_state(config, jax.random.key(0))
    states = [state]
    for _ in range(5):
        state, _ = step(state, jax.random.key(1))
        states.append(state)
    return config, states


def test_ema_equals_its_closed_form_after_n_steps(ema_run):
    config, states = ema_run
    n = len(states) - 1
    betas = [min(0.9, (1 + t) / (10 + t)) for t in range(n)]
    # avg_n = prod(beta) theta_0 + sum_j (1 - beta_{j-1}) prod_{t >= j} beta_t theta_j
    weights = [np.prod(betas)] + [(1 - betas[j - 1]) * np.prod(betas[j:]) for j in range(1, n + 1)]
    assert sum(weights) == pytest.approx(1.0)
    expected = jax.tree.map(lambda *ps: sum(w * p for w, p in zip(weights, ps)),
                            *[s.g_params for s in states])
    for got, want in zip(jax.tree.leaves(states[-1].g_ema_params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    # and it is not the live generator
    live, avg = jax.tree.leaves(states[-1].g_params), jax.tree.leaves(states[-1].g_ema_params)
    assert any(not np.allclose(a, b) for a, b in zip(live, avg))


def test_sampling_uses_the_averaged_generator_by_default(ema_run):
    config, states = ema_run
    state = states[-1]
    z = jnp.asarray(uniform(3, (16, config.latent_dim)))
    default = np.asarray(gan_jax.generate(config, state, z))
    live = np.asarray(gan_jax.generate(config, state, z, live=True))
    assert not np.allclose(default, live)
    # live = the trained weights with their running statistics
    gan = gan_jax.build_gan(config)
    by_hand = gan.generator.apply({"params": state.g_params, "batch_stats": state.g_batch_stats},
                                  z, train=False)
    # jitted vs not: float32 rounding (measured up to 1.1e-6, 3.8e-6 relative)
    np.testing.assert_allclose(live, by_hand, rtol=1e-5, atol=1e-6)
    # default = the averaged weights with statistics recomputed for them
    variables = sampling.generator_variables(config.computation(), state, False)
    assert variables["params"] is not None
    for got, want in zip(jax.tree.leaves(variables["params"]),
                         jax.tree.leaves(state.g_ema_params)):
        np.testing.assert_array_equal(got, want)
    by_hand = gan.generator.apply(variables, z, train=False)
    np.testing.assert_allclose(default, by_hand, rtol=1e-5, atol=1e-6)
    # sample() (grids, evaluation, experiments.sample) goes through the same path
    drawn = gan_jax.sample(config, state, jax.random.key(4), 8)
    drawn_live = gan_jax.sample(config, state, jax.random.key(4), 8, live=True)
    assert not np.allclose(drawn, drawn_live)


class _DenseBN(nn.Module):
    @nn.compact
    def __call__(self, z, train=True):
        x = nn.Dense(3)(z)
        return nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)


def test_recomputed_batch_stats_are_the_moments_of_the_layer_inputs():
    module = _DenseBN()
    z = jnp.asarray(normal(0, (64, 5))) * 3.0 + 1.0
    variables = module.init(jax.random.key(1), z[:2])
    chunks = [(z[i:i + 16],) for i in range(0, 64, 16)]
    stats = ema_lib.recompute_batch_stats(module.apply, variables["params"],
                                          variables["batch_stats"], chunks)
    pre = np.asarray(nn.Dense(3).apply({"params": variables["params"]["Dense_0"]}, z))
    np.testing.assert_allclose(stats["BatchNorm_0"]["mean"], pre.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats["BatchNorm_0"]["var"], pre.var(0), rtol=1e-4, atol=1e-5)


def test_resume_with_ema_is_bitwise(ema_trainings):
    _, full, resumed = ema_trainings
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(a, b)
    assert jax.tree.leaves(full.g_ema_params)


def test_checkpoint_of_another_state_layout_is_refused_by_name(tmp_path, tiny_config,
                                                              tiny_images):
    config = tiny_config.replace(workdir=str(tmp_path), num_steps=2)
    gan_jax.train(config, tiny_images)
    with gan_jax.Checkpointer(os.path.join(tmp_path, "checkpoints"), read_only=True) as ckpt:
        target = gan_jax.abstract_state(config)
        began = gan_jax.abstract_state(gan_jax.Config(game="began"))
        with pytest.raises(gan_jax.CheckpointError, match=r"lacks the fields \[.k.\]") as info:
            ckpt.restore(began, 2)
        assert "has fields ['d_batch_stats']" in str(info.value)
        assert int(ckpt.restore(target, 2).step) == 2
