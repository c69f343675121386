"""The PyTorch reference (benchmark only) is the same model and step as ours.

Skipped unless torch is installed (``pip install -e ".[bench]"``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from experiments import torch_reference as tr  # noqa: E402
from gan_jax import losses, models, steps  # noqa: E402
from gan_jax.config import Config  # noqa: E402
from gan_jax.state import build_gan, count_params, create_state  # noqa: E402

CONFIG = Config(batch_size=8)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Speed is not tested here; PyTorch's OpenMP threads crawl when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def jax_state():
    return create_state(CONFIG, jax.random.key(0))


def test_registry_matches_ours():
    assert set(tr.TORCH_ARCHITECTURES) <= set(models.ARCHITECTURES)
    for name, arch in tr.TORCH_ARCHITECTURES.items():
        h, w, c = models.get_architecture(name).image_shape
        assert arch.image_shape == (c, h, w)
    with pytest.raises(ValueError, match="thesis"):
        tr.get_torch_architecture("nope")


@pytest.mark.parametrize("channels_last", [False, True])
def test_thesis_parameter_counts_and_shapes(jax_state, channels_last):
    g = tr.ThesisGenerator(channels_last=channels_last)
    d = tr.ThesisDiscriminator(channels_last=channels_last)
    assert tr.count_params(g) == count_params(jax_state.g_params) == 6_675_009
    assert tr.count_params(d) == count_params(jax_state.d_params) == 1_102_721
    with torch.no_grad():
        images = g(torch.rand(5, 96) * 2 - 1)
        assert images.shape == (5, 1, 28, 28)
        assert float(images.abs().max()) <= 1.0
        assert d(images).shape == (5,)


def test_losses_match_ours():
    logits = np.array([-1e30, -30.0, -1.0, 0.0, 2.0, 30.0, 1e30], np.float32)
    real, fake = logits, logits[::-1].copy()
    to_torch = torch.from_numpy
    np.testing.assert_allclose(
        float(tr.discriminator_loss(to_torch(real), to_torch(fake))),
        float(losses.bce_discriminator_loss(real_logits=real, fake_logits=fake)), rtol=1e-6)
    for name, loss in tr.GENERATOR_LOSSES.items():
        want = losses.get_objective(name).generator_loss(fake_logits=fake)
        np.testing.assert_allclose(float(loss(to_torch(fake))), float(want), rtol=1e-6)


@pytest.mark.parametrize("channels_last", [False, True])
def test_thesis_same_function_as_flax(jax_state, channels_last):
    """With our Flax parameters copied in, G (train-mode BatchNorm) and D compute our outputs."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g = tr.ThesisGenerator(channels_last=channels_last).to(memory_format=fmt)
    d = tr.ThesisDiscriminator(channels_last=channels_last).to(memory_format=fmt)
    tr.load_flax_variables(g, jax_state.g_params, jax_state.g_batch_stats)
    tr.load_flax_variables(d, jax_state.d_params)
    arch = models.get_architecture("thesis")
    z = jax.random.uniform(jax.random.key(1), (6, 96), minval=-1, maxval=1)
    want_images, _ = arch.generator().apply(
        {"params": jax_state.g_params, "batch_stats": jax_state.g_batch_stats}, z, train=True,
        mutable=["batch_stats"])
    want_logits = arch.discriminator().apply({"params": jax_state.d_params}, want_images)
    with torch.no_grad():
        images = g(torch.from_numpy(np.array(z)))
        logits = d(torch.from_numpy(np.array(want_images)).permute(0, 3, 1, 2)
                   .contiguous(memory_format=fmt))
    np.testing.assert_allclose(images.permute(0, 2, 3, 1).numpy(), want_images, atol=2e-5)
    np.testing.assert_allclose(logits.numpy(), want_logits, rtol=1e-4, atol=1e-5)


def test_step_matches_ours(jax_state):
    """Same parameters, real batch and z: the D and G updates report our losses and D values."""
    config = CONFIG
    gan = build_gan(config)
    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, (8, 28, 28, 1)).astype(np.float32)
    d_key, g_key = jax.random.split(jax.random.key(2))

    @jax.jit  # one compile is cheaper than running the updates op by op
    def updates(state, real):
        state, d_metrics = steps.discriminator_update(gan, state, real, d_key)
        _, g_metrics = steps.generator_update(gan, state, 8, g_key)
        return {**d_metrics, **g_metrics}

    want = updates(jax_state, jnp.asarray(real))

    trainer = tr.TorchTrainStep(config, real)
    tr.load_flax_variables(trainer.generator, jax_state.g_params, jax_state.g_batch_stats)
    tr.load_flax_variables(trainer.discriminator, jax_state.d_params)
    to_torch = lambda x: torch.from_numpy(np.array(x))  # noqa: E731
    got = trainer.discriminator_update(to_torch(real).permute(0, 3, 1, 2).contiguous(
        memory_format=torch.channels_last), to_torch(gan.sample_z(d_key, 8)))
    got.update(trainer.generator_update(to_torch(gan.sample_z(g_key, 8))))
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_allclose(float(got[name]), float(want[name]), rtol=1e-4, atol=1e-5,
                                   err_msg=name)
    # Only G was stepped by the G update; D kept its requires_grad.
    assert all(p.requires_grad for p in trainer.discriminator.parameters())


@pytest.mark.parametrize("adam", tr.ADAM_IMPLEMENTATIONS)
def test_train_step_runs(tiny_images, adam):
    timer = tr.TorchStepTimer(CONFIG.replace(disc_steps=2), tiny_images, adam=adam,
                              channels_last=adam != "forloop")
    assert timer.compile() > 0
    assert timer.run(2) > 0
    assert timer.trainer.step_count == 3
    assert set(timer.metrics) == {"d_loss", "d_real", "d_fake", "g_loss", "g_d_fake"}
    assert all(np.isfinite(float(v)) for v in timer.metrics.values())
    assert adam in timer.describe()


def test_bad_inputs(tiny_images):
    with pytest.raises(ValueError, match="batch_size"):
        tr.TorchTrainStep(CONFIG.replace(batch_size=100), tiny_images)
    with pytest.raises(ValueError, match="NHWC"):
        tr.TorchTrainStep(CONFIG, tiny_images.transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match="adam"):
        tr.TorchTrainStep(CONFIG, tiny_images, adam="sgd")


@pytest.mark.parametrize("channels_last", [False, True])
def test_dcgan64_counts_match_ours(channels_last):
    g = tr.DCGAN64Generator(100, channels_last=channels_last)
    d = tr.DCGAN64Discriminator(channels_last=channels_last)
    assert tr.count_params(g) == 3_576_704 and tr.count_params(d) == 2_765_568
    images = g(torch.zeros(2, 100))
    assert images.shape == (2, 3, 64, 64) and d(images).shape == (2,)
