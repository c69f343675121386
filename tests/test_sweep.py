"""vmap sweeps: N runs in one program compute what N separate runs compute.

Runs are compared after one step: batched kernels reassociate float32 sums, and GAN training
at batch 8 amplifies such 1e-7 noise chaotically within a few Adam steps (measured: 1e-5 after
one step, 1e-3 after three), so longer comparisons would test chaos, not the code. Independence
of the runs over several steps is shown bitwise instead (identical seeds stay identical).
"""

import jax
import numpy as np
import pytest

from gan_jax.training import sweep
from gan_jax.games import create_state
from gan_jax.training.steps import make_train_step
from gan_jax.training.loop import run_keys
from tests.helpers import tree_equal

# Runs 0 and 2 share a seed (the learning-rate sweep below needs a twin); one compiled
# initialisation serves every sweep here.
SEEDS = (0, 3, 0)


def _run(states, i):
    return jax.tree.map(lambda x: x[i], states)


def _one_separate_step(config, images, seed):
    init_key, train_key, _ = run_keys(seed)
    state, metrics = make_train_step(config, images)(create_state(config, init_key), train_key)
    return state, jax.device_get(metrics)


def _assert_one_step_matches(swept, swept_metrics, i, separate, separate_metrics):
    for name, value in separate_metrics.items():
        np.testing.assert_allclose(swept_metrics[name][i], value, rtol=1e-5, atol=1e-6)
    a = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(_run(swept, i).g_params)])
    b = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(separate.g_params)])
    # Adam's first update is ~lr * sign(grad): a near-zero gradient's sign may flip with float
    # noise, so a handful of the 6.7M weights may differ by up to 2 * lr.
    assert np.mean(np.abs(a - b) < 1e-4) > 0.9999
    assert int(_run(swept, i).step) == int(separate.step) == 1


@pytest.fixture(scope="module")
def swept(tiny_config, tiny_images):
    states = sweep.create_states(tiny_config, SEEDS)
    single = {seed: create_state(tiny_config, run_keys(seed)[0]) for seed in set(SEEDS)}
    for i, seed in enumerate(SEEDS):  # initial states are exactly the single-run ones
        assert tree_equal(_run(states, i), single[seed])
    step = sweep.make_sweep_step(tiny_config, tiny_images, num_runs=len(SEEDS))
    states, metrics = step(states, sweep.train_keys(SEEDS))
    return states, jax.device_get(metrics)


def test_seed_sweep_matches_separate_runs(swept, tiny_config, tiny_images):
    states, metrics = swept
    assert metrics["d_loss"].shape == (len(SEEDS),)
    separate = {seed: _one_separate_step(tiny_config, tiny_images, seed) for seed in set(SEEDS)}
    for i, seed in enumerate(SEEDS):  # the twin seed's separate run is computed once
        _assert_one_step_matches(states, metrics, i, *separate[seed])


# A learning-rate sweep whose runs 0 and 2 are alike (seed and lr) and run 1 differs in both.
LRS = (1e-3, 2e-4, 1e-3)


@pytest.fixture(scope="module")
def lr_sweep(tiny_config, tiny_images):
    """(initial states, (states, metrics) after one step, states after three steps)."""
    init = sweep.create_states(tiny_config, SEEDS)
    step = sweep.make_sweep_step(tiny_config, tiny_images, learning_rates=LRS)
    keys = sweep.train_keys(SEEDS)
    states, metrics = step(init, keys)
    after_one = (states, jax.device_get(metrics))
    for _ in range(2):
        states, _ = step(states, keys)
    return init, after_one, states


def test_runs_do_not_interact(lr_sweep):
    """Runs 0 and 2 share a seed and lr: after 3 steps they are bit-identical whatever run 1
    (another seed, another lr) does."""
    _, _, states = lr_sweep
    assert tree_equal(_run(states, 0), _run(states, 2))
    assert not tree_equal(_run(states, 0).g_params, _run(states, 1).g_params)


def test_learning_rate_sweep(lr_sweep, tiny_config, tiny_images):
    init, (states, metrics), _ = lr_sweep
    for i in range(2):
        separate = _one_separate_step(tiny_config.replace(learning_rate=LRS[i]), tiny_images,
                                      SEEDS[i])
        _assert_one_step_matches(states, metrics, i, *separate)
    # Adam's first step moves each weight by ~lr: the typical move scales with the run's lr.
    moves = [np.median(np.abs(np.asarray(states.d_params["Dense_0"]["kernel"][i]
                                         - init.d_params["Dense_0"]["kernel"][i])))
             for i in range(2)]
    np.testing.assert_allclose(moves, LRS[:2], rtol=0.02)


def test_needs_learning_rates_or_num_runs(tiny_config, tiny_images):
    with pytest.raises(ValueError, match="learning_rates or num_runs"):
        sweep.make_sweep_step(tiny_config, tiny_images)


def test_sweep_reads_each_runs_own_epoch_orders(tiny_config, tiny_images):
    """The sweep feeds every run its own precomputed epoch orders (from its own key): over 7
    steps of k = 3 (3 epochs of 8 batches) it is bitwise the vmapped step that derives every
    minibatch itself; the runs draw different minibatches."""
    import jax.numpy as jnp
    from gan_jax.training.steps import train_step_fn

    config = tiny_config.replace(arch="mlp", disc_steps=3)
    keys = sweep.train_keys(SEEDS)
    in_step = jax.jit(jax.vmap(
        lambda s, k: train_step_fn(config, s, k, jnp.asarray(tiny_images))))
    host = sweep.make_sweep_step(config, tiny_images, num_runs=len(SEEDS))
    a = b = sweep.create_states(config, SEEDS)
    for i in range(7):
        a, _ = in_step(a, keys)
        b, _ = host(b, keys)
        assert tree_equal(a, b), i
    assert not tree_equal(_run(b, 0).d_params, _run(b, 1).d_params)
