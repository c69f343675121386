"""The compiled Algorithm 1 step: update order, what each update touches, k, determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.games import classic_updates
from gan_jax import data as data_lib
from gan_jax.training import sampling, steps
from gan_jax.config import Config
from gan_jax.games.classic import build_gan
from gan_jax.games import create_state
from tests.helpers import tree_equal

KEY = jax.random.key(42)


def _fresh(config, seed=0):
    return create_state(config, jax.random.key(seed))



def _adam_count(opt_state):
    return int(opt_state[0].count)


@pytest.fixture(scope="module")
def stepped(tiny_config, tiny_images):
    """(state before, state after one step, metrics) for the tiny config."""
    train_step = steps.make_train_step(tiny_config, tiny_images)
    after, metrics = train_step(_fresh(tiny_config), KEY)
    return _fresh(tiny_config), after, jax.device_get(metrics)


def test_metrics_are_finite_scalars(stepped):
    _, after, metrics = stepped
    assert set(metrics) == {"d_loss", "g_loss", "d_real", "d_fake", "g_d_fake"}
    for value in metrics.values():
        assert np.shape(value) == () and np.isfinite(value)
    for name in ("d_real", "d_fake", "g_d_fake"):
        assert 0.0 < metrics[name] < 1.0
    assert int(after.step) == 1


def test_every_part_of_the_state_moves(stepped):
    before, after, _ = stepped
    for name in ("g_params", "d_params", "g_batch_stats"):
        assert not tree_equal(getattr(before, name), getattr(after, name)), name
    assert _adam_count(after.g_opt_state) == _adam_count(after.d_opt_state) == 1


def test_step_is_d_update_then_g_update_against_the_updated_d(tiny_config, tiny_images):
    """Recompose the step by hand from its documented pieces; G must see the *new* D.

    Both sides are jitted whole (the same operations in the same order, so the same compiled
    arithmetic), and must agree bit for bit. (Jitted against eager would need a loose
    tolerance: Adam's first update is ~lr * sign(grad), which amplifies float noise.)
    """
    gan = build_gan(tiny_config)
    images = jnp.asarray(tiny_images)
    after, _ = jax.jit(lambda s: steps.train_step_fn(tiny_config, s, KEY, images))(
        _fresh(tiny_config))

    @jax.jit
    def by_hand(state):
        data_key, noise_key = jax.random.split(KEY)
        d_key, g_key = jax.random.split(jax.random.fold_in(noise_key, 0), 2)
        real = images[data_lib.batch_indices(data_key, 0, 64, tiny_config.batch_size)]
        s1, _ = classic_updates.discriminator_update(gan, state, real, d_key)
        s2, _ = classic_updates.generator_update(gan, s1, tiny_config.batch_size, g_key)
        # The same G update against the stale D: different generator parameters, so the
        # comparison below really pins the order.
        stale, _ = classic_updates.generator_update(gan, s1.replace(d_params=state.d_params),
                                                    tiny_config.batch_size, g_key)
        return s2, stale

    s2, stale = by_hand(_fresh(tiny_config))
    assert tree_equal(after.replace(step=s2.step), s2)
    diff = jax.tree.map(lambda x, y: float(jnp.max(jnp.abs(x - y))), stale.g_params, s2.g_params)
    assert max(jax.tree_util.tree_leaves(diff)) > 1e-4


def test_each_update_moves_only_its_own_network(tiny_config, tiny_images):
    gan = build_gan(tiny_config)
    state = _fresh(tiny_config)
    real = jnp.asarray(tiny_images[:8])
    # Jitted (an update's untouched fields pass through a jit bit for bit).
    after_d, _ = jax.jit(lambda s, r, k: classic_updates.discriminator_update(gan, s, r, k))(
        state, real, jax.random.key(1))
    assert not tree_equal(after_d.d_params, state.d_params)
    assert tree_equal(after_d.g_params, state.g_params)
    assert tree_equal(after_d.g_opt_state, state.g_opt_state)
    after_g, _ = jax.jit(lambda s, k: classic_updates.generator_update(gan, s, 8, k))(
        state, jax.random.key(2))
    assert not tree_equal(after_g.g_params, state.g_params)
    assert tree_equal(after_g.d_params, state.d_params)
    assert tree_equal(after_g.d_opt_state, state.d_opt_state)


def test_k_discriminator_steps_per_generator_step(tiny_config, tiny_images):
    config = tiny_config.replace(disc_steps=3)
    train_step = steps.make_train_step(config, tiny_images)
    state = _fresh(config)
    for _ in range(2):
        state, _ = train_step(state, KEY)
    assert _adam_count(state.d_opt_state) == 6
    assert _adam_count(state.g_opt_state) == 2
    assert int(state.step) == 2


def test_same_key_same_bits_and_compiled_once(tiny_config, tiny_images):
    train_step = steps.make_train_step(tiny_config, tiny_images)
    runs = []
    for _ in range(2):
        state = _fresh(tiny_config)
        for _ in range(3):
            state, _ = train_step(state, KEY)
        runs.append(state)
    assert tree_equal(runs[0], runs[1])
    cache = steps._train_step._cache_size()
    # Another run that differs only in seed/workdir/length reuses the compiled step.
    other = steps.make_train_step(tiny_config.replace(seed=5, num_steps=99, workdir="/x"),
                                  tiny_images)
    other_state, _ = other(_fresh(tiny_config, seed=5), jax.random.key(5))
    assert steps._train_step._cache_size() == cache
    assert not tree_equal(other_state.g_params, runs[0].g_params)


def test_donation_only_off_the_cpu_and_same_bits_either_way(tiny_config, tiny_images):
    """On the CPU the step keeps its input state (donating it made XLA copy the parameters
    and Adam moments before the update: slower); on accelerators it donates. Both compiled
    variants compute the same bits."""
    assert not steps.donates_state("cpu")
    assert steps.donates_state("gpu") and steps.donates_state("tpu")
    assert steps.donates_state() == (jax.default_backend() != "cpu")
    train_step = steps.make_train_step(tiny_config, tiny_images)
    state = _fresh(tiny_config)
    kept = jax.tree.map(jnp.copy, state)
    new_state, _ = train_step(state, KEY)
    if jax.default_backend() == "cpu":
        assert tree_equal(state, kept)  # the input is intact and usable
    static = tiny_config.computation()
    images = jnp.asarray(tiny_images)
    orders = steps.training_epoch_orders(KEY, 0, 1, images.shape[0])
    plain = steps._train_step(static, jax.tree.map(jnp.copy, kept), KEY, images, None, orders)
    donated = steps._train_step_donating(static, jax.tree.map(jnp.copy, kept), KEY, images,
                                         None, orders)
    assert tree_equal(plain, donated)
    assert tree_equal(plain[0], new_state)


def test_sampling_uses_running_averages(stepped, tiny_config):
    _, after, _ = stepped
    z = build_gan(tiny_config).sample_z(jax.random.key(9), 6)
    full = sampling.generate(tiny_config, after, z)
    # Inference mode: each sample independent of the rest of the batch.
    np.testing.assert_allclose(sampling.generate(tiny_config, after, z[:2]), full[:2],
                               rtol=1e-5, atol=1e-6)
    # sample() draws z from the prior in chunks; chunking does not change the result.
    a = sampling.sample(tiny_config, after, jax.random.key(3), 7, batch_size=3)
    b = sampling.sample(tiny_config, after, jax.random.key(3), 7, batch_size=7)
    assert a.shape == (7, 28, 28, 1)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_rejects_batch_larger_than_dataset(tiny_config, tiny_images):
    with pytest.raises(ValueError, match="batch_size 128 exceeds the 64 training images"):
        steps.make_train_step(tiny_config.replace(batch_size=128), tiny_images)


def test_dropout_stream_reaches_the_discriminator(tiny_config, tiny_images):
    """D(x) of the same real batch varies with the key only when D has dropout."""
    real = jnp.asarray(tiny_images[:8])
    for arch, has_dropout in (("goodfellow_mlp", True), ("thesis", False)):
        config = tiny_config.replace(arch=arch, latent_dim=100)
        gan, state = build_gan(config), _fresh(config)
        d_real_of = jax.jit(  # noqa: B023 (called within this iteration)
            lambda key: classic_updates.discriminator_update(gan, state, real, key)[1]["d_real"])
        d_real = [float(d_real_of(jax.random.key(k))) for k in (1, 1, 2)]
        assert d_real[0] == d_real[1]  # same key, same dropout masks
        assert (d_real[0] != d_real[2]) == has_dropout


def test_goodfellow_mlp_trains(tiny_config, tiny_images):
    config = tiny_config.replace(arch="goodfellow_mlp", latent_dim=100)
    state, metrics = steps.make_train_step(config, tiny_images)(_fresh(config), KEY)
    assert all(np.isfinite(v) for v in jax.device_get(metrics).values())
    assert int(state.step) == 1


def test_golden_first_step(stepped):
    """Pins the random streams and the math of one step (tiny config, seed-0 state, key 42).

    A change here changes every published run; it must be deliberate (rtol covers only
    float32 differences between machines/XLA builds)."""
    _, _, metrics = stepped
    golden = {"d_fake": 0.5789175, "d_loss": 1.4416363, "d_real": 0.5651494,
              "g_d_fake": 0.0028671, "g_loss": 5.8674479}
    for name, value in golden.items():
        np.testing.assert_allclose(metrics[name], value, rtol=2e-4, err_msg=name)


# ------------------------------------------------------------------ critics: WGAN and WGAN-GP

def test_wgan_step_clips_every_critic_weight(tiny_config, tiny_images):
    config = tiny_config.replace(objective="wgan", arch="mlp")
    assert (config.disc_steps, config.clip, config.optimizer) == (5, 0.01, "rmsprop")
    before = _fresh(config)
    assert max(float(jnp.max(jnp.abs(p))) for p in jax.tree.leaves(before.d_params)) > 0.01
    state, metrics = steps.make_train_step(config, tiny_images)(before, KEY)
    for leaf in jax.tree.leaves(state.d_params):
        assert float(jnp.max(jnp.abs(leaf))) <= 0.01
    metrics = jax.device_get(metrics)
    assert set(metrics) == {"d_loss", "d_real", "d_fake", "critic_gap", "g_loss", "g_d_fake"}
    # Critic metrics are raw scores: d_loss = mean f(G(z)) - mean f(x) = -critic_gap.
    np.testing.assert_allclose(metrics["d_loss"], -metrics["critic_gap"], rtol=1e-5)
    np.testing.assert_allclose(metrics["critic_gap"], metrics["d_real"] - metrics["d_fake"],
                               rtol=1e-4, atol=1e-7)


def test_wgan_gp_step_logs_the_penalty(tiny_config, tiny_images):
    config = tiny_config.replace(objective="wgan-gp", arch="mlp")
    state, metrics = steps.make_train_step(config, tiny_images)(_fresh(config), KEY)
    metrics = jax.device_get(metrics)
    assert {"gradient_penalty", "critic_grad_norm", "critic_gap"} <= set(metrics)
    assert metrics["gradient_penalty"] > 0 and metrics["critic_grad_norm"] > 0
    assert int(state.step) == 1


def test_wgan_gp_critic_has_no_batchnorm():
    from gan_jax.games import abstract_state, count_params
    for arch in ("dcgan", "dcgan64"):
        # Shapes only (no initialisation compiled): the state's abstract layout.
        normal = abstract_state(Config(arch=arch))
        critic = abstract_state(Config(arch=arch, objective="wgan-gp"))
        assert normal.d_batch_stats and not critic.d_batch_stats
        # LayerNorm has a scale and a bias per channel, like BatchNorm: same parameter count.
        assert count_params(critic.d_params) == count_params(normal.d_params)


def test_warmup_schedule_closed_form():
    k = 5
    counts = [int(classic_updates.warmup_critic_steps(jnp.int32(s), k)) for s in range(1600)]
    assert counts[:25] == [100] * 25 and counts[25] == 5 and counts[499] == 5
    assert counts[500] == counts[1000] == counts[1500] == 100 and counts[501] == 5
    totals = np.concatenate([[0], np.cumsum(counts)])
    for s in (0, 1, 24, 25, 26, 499, 500, 501, 1000, 1001, 1599):
        assert int(classic_updates.critic_updates_before(jnp.int32(s), k)) == totals[s], s


def test_warmup_step_runs_the_schedule(tiny_config, tiny_images):
    """Step 0 with warm-up = 100 critic updates (each on its own batch and key), then G."""
    config = tiny_config.replace(objective="wgan", arch="mlp", wgan_warmup=True)
    after, _ = jax.jit(lambda s: steps.train_step_fn(config, s, KEY, jnp.asarray(tiny_images)))(
        _fresh(config))
    gan, state = build_gan(config), _fresh(config)
    data_key, noise_key = jax.random.split(KEY)
    d_root, g_key = jax.random.split(jax.random.fold_in(noise_key, 0))
    d_update = jax.jit(lambda s, real, key: classic_updates.discriminator_update(gan, s, real, key)[0])
    for i in range(100):
        idx = data_lib.batch_indices(data_key, i, len(tiny_images), config.batch_size)
        state = d_update(state, jnp.asarray(tiny_images)[idx], jax.random.fold_in(d_root, i))
    state, _ = jax.jit(lambda s: classic_updates.generator_update(gan, s, config.batch_size,
                                                                  g_key))(state)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 after.d_params, state.d_params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 after.g_params, state.g_params)
    # make_train_step feeds the step precomputed epoch orders (step 0 draws 100 batches: 13
    # epochs of 8): bitwise the in-step result.
    host, _ = steps.make_train_step(config, tiny_images)(_fresh(config), KEY)
    assert tree_equal(host, after)


def test_host_batch_range_matches_the_step():
    """steps.batch_range (Python ints, for the host) agrees with the traced schedule."""
    k = 5
    config = Config(objective="wgan", disc_steps=k, wgan_warmup=True)
    for s in (0, 1, 24, 25, 26, 499, 500, 501, 1000, 1001, 1599):
        assert steps.batch_range(config, s) == (
            int(classic_updates.critic_updates_before(jnp.int32(s), k)),
            int(classic_updates.warmup_critic_steps(jnp.int32(s), k))), s
    assert steps.batch_range(Config(disc_steps=3), 7) == (21, 3)
    assert steps.max_batches_per_step(config) == 100
    assert steps.max_batches_per_step(Config(disc_steps=3)) == 3


@pytest.mark.parametrize("disc_steps", [1, 3])
def test_precomputed_epoch_orders_reproduce_the_in_step_stream(tiny_config, tiny_images,
                                                               disc_steps):
    """make_train_step hands each step its epochs' orders instead of sorting the data set per
    minibatch. Over 7 steps (3 epochs of 8 batches with k = 3, steps straddling epochs) the
    states are bitwise those of train_step_fn deriving every batch itself, also when a step is
    given a state it did not return (a copy: the host reads its step from the device)."""
    config = tiny_config.replace(arch="mlp", disc_steps=disc_steps)
    in_step = jax.jit(lambda s: steps.train_step_fn(config, s, KEY, jnp.asarray(tiny_images)))
    host = steps.make_train_step(config, tiny_images)
    a = b = _fresh(config)
    for i in range(7):
        a, _ = in_step(a)
        if i == 4:
            b = jax.tree.map(jnp.copy, b)  # not the object the step returned
        b, _ = host(b, KEY)
        assert tree_equal(a, b), i
    assert int(b.step) == 7
