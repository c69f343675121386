"""BEGAN (gan_jax.games.began, gan_jax.models.began): the k update, M_global, the losses'
gradients, shapes, the learning-rate halving, its config, and one step on the trainer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gan_jax
from gan_jax.games import began
from gan_jax.models import began as began_models
from tests.helpers import uniform


def test_k_update_is_clipped_to_the_unit_interval_and_has_its_fixed_point():
    k = jnp.float32(0.3)
    # gamma L(x) = L(G(z)): the equilibrium; k does not move.
    assert float(began.update_k(k, 0.4, 0.2, gamma=0.5, lambda_k=0.01)) == pytest.approx(0.3)
    # closed form inside the bounds
    assert float(began.update_k(k, 0.4, 0.1, gamma=0.5, lambda_k=0.01)) == pytest.approx(
        0.3 + 0.01 * (0.5 * 0.4 - 0.1))
    assert float(began.update_k(k, 0.4, 0.3, gamma=0.5, lambda_k=0.01)) == pytest.approx(
        0.3 + 0.01 * (0.5 * 0.4 - 0.3))
    # bounds: never below 0, never above 1
    assert float(began.update_k(jnp.float32(0.001), 0.1, 5.0, 0.5, 0.01)) == 0.0
    assert float(began.update_k(jnp.float32(0.999), 5.0, 0.0, 0.5, 0.01)) == 1.0
    # monotone in the balance
    values = [float(began.update_k(k, 0.4, f, 0.5, 0.01)) for f in np.linspace(0, 1, 11)]
    assert values == sorted(values, reverse=True)


def test_convergence_measure_on_hand_set_values():
    assert float(began.convergence_measure(0.4, 0.1, 0.5)) == pytest.approx(0.4 + 0.1)
    assert float(began.convergence_measure(0.4, 0.3, 0.5)) == pytest.approx(0.4 + 0.1)
    assert float(began.convergence_measure(0.4, 0.2, 0.5)) == pytest.approx(0.4)


def test_losses_with_an_identity_autoencoder_are_zero():
    x = jnp.asarray(uniform(0, (4, 28, 28, 1)))
    assert float(began.reconstruction_loss(x, x)) == 0.0
    assert float(began.reconstruction_loss(x, jnp.zeros_like(x))) == pytest.approx(
        float(jnp.mean(jnp.abs(x))))
    assert float(began.discriminator_loss(0.4, 0.2, 0.5)) == pytest.approx(0.3)


@pytest.mark.parametrize("size, stages, bottleneck", [(28, 3, 7), (32, 3, 8)])
def test_networks_keep_one_channel_at_28_and_32(size, stages, bottleneck):
    g = began_models.BEGANDecoder(bottleneck=bottleneck, stages=stages, filters=4, channels=1)
    d = began_models.BEGANDiscriminator(hidden=8, bottleneck=bottleneck, stages=stages,
                                        filters=4, channels=1)
    z = jnp.zeros((2, 8))
    # Shapes only: jax.eval_shape traces the networks without compiling a convolution.
    g_vars = jax.eval_shape(g.init, jax.random.key(0), z)
    x = jax.eval_shape(g.apply, g_vars, z)
    assert x.shape == (2, size, size, 1)
    d_vars = jax.eval_shape(d.init, jax.random.key(1), x)
    assert jax.eval_shape(d.apply, d_vars, x).shape == (2, size, size, 1)


def test_mnist_generator_is_the_reference_decoder_with_batchnorm_and_tanh():
    z = jnp.zeros((2, 64))
    g, ref = began_models.began28_generator(), began_models.began28_reference_generator()
    g_vars = jax.eval_shape(g.init, jax.random.key(0), z)
    ref_vars = jax.eval_shape(ref.init, jax.random.key(0), z)
    n, h, s = 16, 64, 7  # filters, embedding, bottleneck side
    conv = 9 * n * n + n
    reference = (h * s * s * n + s * s * n) + 6 * conv + (9 * n + 1)  # dense, 6 convs, output
    norms = s * s * n + 6 * n  # one BatchNorm after the dense layer and after each conv
    assert gan_jax.count_params(ref_vars["params"]) == reference == 65025
    assert "batch_stats" not in ref_vars
    assert gan_jax.count_params(g_vars["params"]) == reference + 2 * norms
    assert gan_jax.count_params(g_vars["batch_stats"]) == 2 * norms
    # tanh: inside (-1, 1) however large z is (the reference's linear output is not bounded).
    params = g.init(jax.random.key(0), z)
    big = 1e3 * jax.random.normal(jax.random.key(1), (4, 64))
    out = g.apply(params, big, train=True, mutable=["batch_stats"])[0]
    assert float(jnp.abs(out).max()) <= 1.0
    ref_out = ref.apply(ref.init(jax.random.key(0), z), big)
    assert float(jnp.abs(ref_out).max()) > 1.0


def test_nearest_neighbour_upsampling_repeats_each_pixel():
    x = jnp.arange(4.0).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(began_models.upsample_nearest(x)[0, :, :, 0],
                                  [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])


@pytest.fixture(scope="module")
def tiny_began():
    # With EMA on for every test here: one state layout, so create_state (about 9 s to
    # compile on 2 cores) and the step compile once for the whole file.
    config = gan_jax.Config(game="began", batch_size=4, eval_every=0, num_steps=3,
                            checkpoint_every=1, log_every=1, sample_every=3, ema_decay=0.9)
    return config, gan_jax.build_game(config)


def test_at_k_zero_the_discriminator_gradient_does_not_depend_on_the_fakes(tiny_began):
    config, game = tiny_began
    state = gan_jax.create_state(config, jax.random.key(0))
    real = jnp.asarray(uniform(1, (4, 28, 28, 1)))

    @jax.jit
    def grad(fake, k):
        def loss(d_params):
            recon = lambda v: game.discriminator.apply({"params": d_params}, v)  # noqa: E731
            return began.discriminator_loss(began.reconstruction_loss(real, recon(real)),
                                            began.reconstruction_loss(fake, recon(fake)), k)
        return jax.grad(loss)(state.d_params)

    fakes = [jnp.asarray(uniform(i, (4, 28, 28, 1)))
             for i in (2, 3)]
    for a, b in zip(jax.tree.leaves(grad(fakes[0], 0.0)), jax.tree.leaves(grad(fakes[1], 0.0))):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(grad(fakes[0], 0.5)),
                                                     jax.tree.leaves(grad(fakes[1], 0.5))))


def test_step_measures_the_balance_under_one_discriminator(tiny_began, tiny_images):
    # k_{t+1} and M_global come from D's pass (L(x), L(G(z_D)) under the same D), not from G's
    # loss under the just-updated D, which D's step biases up (and k towards 0).
    config, game = tiny_began
    state = gan_jax.create_state(config, jax.random.key(0)).replace(k=jnp.float32(0.5))
    batches = gan_jax.games.Batches(jnp.asarray(tiny_images), None, jax.random.key(1), 4)
    new, metrics = jax.jit(lambda s: game.train_step(s, jax.random.key(2), batches))(state)
    real, fake = metrics["real_loss"], metrics["fake_loss"]
    assert float(new.k) == float(began.update_k(jnp.float32(0.5), real, fake, config.gamma,
                                                config.lambda_k))
    # Inside the jitted step XLA may fuse gamma * L(x) - L(G(z)) (one rounding less).
    assert float(metrics["m_global"]) == pytest.approx(
        float(began.convergence_measure(real, fake, config.gamma)), rel=1e-6)
    assert float(metrics["k"]) == float(new.k) and float(new.k) != 0.5
    assert float(metrics["d_loss"]) == pytest.approx(float(real - 0.5 * fake), rel=1e-6)
    # G's BatchNorm running means (momentum 0.9, from 0) move with both of the step's train-mode
    # passes, D's on z_D and then G's on z_G: 0.9 * 0.1 * mu(z_D) + 0.1 * mu(z_G). Checked at
    # the first BatchNorm, after the dense layer: mu(z) = mean over the batch of z W + b.
    d_key, g_key = jax.random.split(jax.random.fold_in(jax.random.key(2), 0))
    dense = state.g_params["Dense_0"]
    mu = lambda z: (z @ dense["kernel"] + dense["bias"]).mean(0)  # noqa: E731
    expected = 0.09 * mu(game.sample_z(d_key, 4)) + 0.1 * mu(game.sample_z(g_key, 4))
    assert not np.any(state.g_batch_stats["BatchNorm_0"]["mean"])
    np.testing.assert_allclose(new.g_batch_stats["BatchNorm_0"]["mean"], expected, rtol=1e-5,
                               atol=1e-7)


def test_learning_rate_halves_at_each_boundary_down_to_the_floor():
    schedule = began.halving_schedule(1e-4, 1000, 2e-5)
    got = [float(schedule(c)) for c in (0, 999, 1000, 1999, 2000, 3000, 10000)]
    np.testing.assert_allclose(got, [1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5, 2e-5, 2e-5], rtol=1e-6)


def test_config_defaults_and_refusals():
    config = gan_jax.Config(game="began")
    assert (config.arch, config.objective, config.gamma, config.lambda_k) == (
        "began", None, 2.0, 0.001)
    assert (config.latent_dim, config.batch_size, config.learning_rate,
            config.lr_halve_every, config.lr_floor) == (64, 64, 1e-4, 5000, 2e-5)
    # The reference's networks with the settings they were run with before (docs/began.md).
    reference = gan_jax.Config(game="began", arch="began_reference")
    assert (reference.batch_size, reference.learning_rate, reference.gamma, reference.lambda_k,
            reference.lr_halve_every) == (16, 2e-4, 0.9, 0.01, 1000)
    with pytest.raises(ValueError, match="objective applies to game"):
        gan_jax.Config(game="began", objective="wgan")
    with pytest.raises(ValueError, match="an architecture of game 'classic'"):
        gan_jax.Config(game="began", arch="thesis")
    with pytest.raises(ValueError, match="an architecture of game 'began'"):
        gan_jax.Config(arch="began")
    with pytest.raises(ValueError, match="gamma applies to game 'began' only"):
        gan_jax.Config(gamma=0.7)
    for gamma in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="gamma must be a finite number > 0"):
            gan_jax.Config(game="began", gamma=gamma)
    assert gan_jax.Config(game="began", gamma=2.0).gamma == 2.0  # > 1 allowed (docs/began.md)
    with pytest.raises(ValueError, match="lr_floor must be in"):
        gan_jax.Config(game="began", lr_floor=1.0)
    with pytest.raises(ValueError, match="conditional applies to game 'classic' only"):
        gan_jax.Config(game="began", conditional=True)


def test_trainer_runs_began_and_resumes_bitwise(tmp_path, tiny_began, tiny_images):
    config, _ = tiny_began
    full = gan_jax.train(config.replace(workdir=str(tmp_path / "full")), tiny_images)
    gan_jax.train(config.replace(workdir=str(tmp_path / "cut"), num_steps=1), tiny_images)
    resumed = gan_jax.train(config.replace(workdir=str(tmp_path / "cut")), tiny_images)
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(a, b)
    assert int(full.step) == 3 and 0.0 <= float(full.k) <= 1.0
    rows = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 3 and all(key in rows[-1] for key in ("k", "m_global", "real_loss"))
    assert (tmp_path / "full" / "curves.png").exists()
    images, step = gan_jax.sample_from_workdir(str(tmp_path / "full"), 5)
    assert images.shape == (5, 28, 28, 1) and step == 3
    assert images.min() >= -1.0 and images.max() <= 1.0
