"""The PyTorch reference (benchmark only) is the same model and step as ours.

Skipped unless torch is installed (``pip install -e ".[bench]"``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from experiments import torch_reference as tr  # noqa: E402
from gan_jax.config import Config  # noqa: E402
from gan_jax.games import classic_updates, count_params, create_state, losses  # noqa: E402
from gan_jax.games.classic import build_gan  # noqa: E402
from gan_jax.models import architectures as models  # noqa: E402

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


@pytest.fixture(scope="module")
def arch_state(jax_state):
    """``arch -> (config, Flax state)``, batch 8; z is 100-d as in the DCGAN and MLP papers."""
    cache = {"thesis": (CONFIG, jax_state)}

    def get(arch):
        if arch not in cache:
            config = CONFIG.replace(arch=arch, latent_dim=100)
            cache[arch] = config, create_state(config, jax.random.key(0))
        return cache[arch]

    return get


def test_registry_matches_ours():
    # Every image architecture but dcgan32 (CIFAR-10 size, added after the benchmarks) has
    # one; the theory lab's low-dimensional models (registered when their modules are
    # imported, e.g. by other tests) have none.
    from gan_jax.theory import train as theory_train
    from gan_jax.models import toy as toy_models
    lab = set(toy_models.TOY_ARCHITECTURES) | {"mixture1d"}
    assert theory_train.MIXTURE_ARCH is models.ARCHITECTURES["mixture1d"]
    began = {"began", "began_reference"}  # another game
    assert set(tr.TORCH_ARCHITECTURES) == set(models.ARCHITECTURES) - {"dcgan32"} - began - lab
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


@pytest.mark.parametrize("arch", ["thesis", "mlp", "dcgan"])
def test_step_matches_ours(arch_state, arch):
    """Same parameters, real batches and z: a D update, a G update against the updated D and
    a second D update (which sees the updated G) report our losses and D values."""
    config, jax_state = arch_state(arch)
    gan = build_gan(config)
    rng = np.random.default_rng(0)
    reals = rng.uniform(-1, 1, (2, 8, 28, 28, 1)).astype(np.float32)
    d_key, g_key, d2_key = jax.random.split(jax.random.key(2), 3)

    @jax.jit  # one compile is cheaper than running the updates op by op
    def updates(state, reals):
        state, d_metrics = classic_updates.discriminator_update(gan, state, reals[0], d_key)
        state, g_metrics = classic_updates.generator_update(gan, state, 8, g_key)
        _, d2_metrics = classic_updates.discriminator_update(gan, state, reals[1], d2_key)
        return {**d_metrics, **g_metrics, **{f"second_{k}": v for k, v in d2_metrics.items()}}

    want = updates(jax_state, jnp.asarray(reals))

    trainer = tr.TorchTrainStep(config, reals[0])
    tr.load_flax_variables(trainer.generator, jax_state.g_params, jax_state.g_batch_stats)
    tr.load_flax_variables(trainer.discriminator, jax_state.d_params, jax_state.d_batch_stats)
    to_torch = lambda x: torch.from_numpy(np.array(x))  # noqa: E731
    real = lambda x: to_torch(x).permute(0, 3, 1, 2).contiguous(  # noqa: E731
        memory_format=torch.channels_last)
    got = trainer.discriminator_update(real(reals[0]), to_torch(gan.sample_z(d_key, 8)))
    got.update(trainer.generator_update(to_torch(gan.sample_z(g_key, 8))))
    second = trainer.discriminator_update(real(reals[1]), to_torch(gan.sample_z(d2_key, 8)))
    got.update({f"second_{k}": v for k, v in second.items()})
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


# Pinned: (generator, discriminator) parameters with z of 100 dimensions.
PARAM_COUNTS = {"mlp": (114_064, 100_609), "goodfellow_mlp": (2_503_984, 1_231_441),
                "dcgan": (1_781_504, 431_872)}


def _torch_pair(arch, channels_last=False):
    torch_arch = tr.get_torch_architecture(arch)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return (torch_arch.generator(latent_dim=100, channels_last=channels_last).to(memory_format=fmt),
            torch_arch.discriminator(channels_last=channels_last).to(memory_format=fmt))


@pytest.mark.parametrize("arch", sorted(PARAM_COUNTS))
def test_parameter_counts_match_ours(arch_state, arch):
    _, state = arch_state(arch)
    g, d = _torch_pair(arch)
    assert (tr.count_params(g), tr.count_params(d)) == PARAM_COUNTS[arch]
    assert (count_params(state.g_params), count_params(state.d_params)) == PARAM_COUNTS[arch]


@pytest.mark.parametrize("arch, channels_last", [("mlp", False), ("goodfellow_mlp", False),
                                                 ("dcgan", False), ("dcgan", True)])
def test_same_function_as_flax(arch_state, arch, channels_last):
    """With our variables copied in, G and D compute our outputs: in train mode (BatchNorm on
    batch statistics) where that is deterministic, and in eval mode (running averages taken
    from a Flax train-mode pass, so they are not the initial 0 / 1; dropout off)."""
    _, state = arch_state(arch)
    flax_arch = models.get_architecture(arch)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g, d = _torch_pair(arch, channels_last)
    z = jax.random.uniform(jax.random.key(1), (6, 100), minval=-1, maxval=1)
    real = jax.random.uniform(jax.random.key(2), (6, 28, 28, 1), minval=-1, maxval=1)

    def flax_apply(module, params, batch_stats, x, train):
        if not batch_stats:
            return module.apply({"params": params}, x, train=train), batch_stats
        out, new = module.apply({"params": params, "batch_stats": batch_stats}, x, train=train,
                                mutable=["batch_stats"])
        return out, new["batch_stats"]

    def torch_apply(net, x):
        with torch.no_grad():
            return net(x)

    def assert_close(got, want):
        # Relative to the output's scale: goodfellow_mlp's initial logits are ~1e-3.
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))

    to_torch = lambda x: torch.from_numpy(np.array(x))  # noqa: E731
    to_nchw = lambda x: to_torch(x).permute(0, 3, 1, 2).contiguous(memory_format=fmt)  # noqa: E731
    g_stats, d_stats = state.g_batch_stats, state.d_batch_stats
    if arch != "goodfellow_mlp":  # train-mode dropout masks are PyTorch's own, not ours
        # Its updated running averages are the ones the eval-mode check uses.
        g_train, g_stats = flax_apply(flax_arch.generator(), state.g_params, g_stats, z, True)
        d_train, d_stats = flax_apply(flax_arch.discriminator(), state.d_params, d_stats, real,
                                      True)
        tr.load_flax_variables(g, state.g_params, state.g_batch_stats)
        tr.load_flax_variables(d, state.d_params, state.d_batch_stats)
        g.train(), d.train()
        images = torch_apply(g, to_torch(z))
        assert_close(images.permute(0, 2, 3, 1).numpy(), g_train)
        assert_close(torch_apply(d, to_nchw(real)).numpy(), d_train)

    tr.load_flax_variables(g, state.g_params, g_stats)
    tr.load_flax_variables(d, state.d_params, d_stats)
    g.eval(), d.eval()
    want_images = flax_arch.generator().apply(
        {"params": state.g_params, "batch_stats": g_stats}, z, train=False)
    want_logits = flax_arch.discriminator().apply(
        {"params": state.d_params, "batch_stats": d_stats}, want_images, train=False)
    images = torch_apply(g, to_torch(z))
    assert images.shape == (6, 1, 28, 28)
    assert_close(images.permute(0, 2, 3, 1).numpy(), want_images)
    logits = torch_apply(d, to_nchw(want_images))
    assert logits.shape == (6,)
    assert_close(logits.numpy(), want_logits)


def test_goodfellow_dropout_and_maxout():
    """Dropout rates and order are ours (0.2 on the input, 0.5 after each maxout) and active in
    train mode only; maxout takes unit j from outputs j * pieces ... j * pieces + pieces - 1."""
    d = tr.GoodfellowDiscriminator()
    assert [m.p for m in d.modules() if isinstance(m, torch.nn.Dropout)] == [0.2, 0.5, 0.5]
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        d.eval()
        assert torch.equal(d(x), d(x))
        d.train()
        assert not torch.equal(d(x), d(x))
        maxout = tr.Maxout(3, units=2, pieces=4)
        y = torch.randn(5, 3)
        want = maxout.linear(y).view(5, 2, 4).amax(-1)
        assert torch.equal(maxout(y), want)
        assert torch.equal(want[:, 1], maxout.linear(y)[:, 4:8].amax(-1))


@pytest.mark.parametrize("arch", sorted(PARAM_COUNTS))
def test_train_step_runs_for_arch(tiny_images, arch):
    """TorchTrainStep on every new pair, in train mode (dropout on for goodfellow_mlp)."""
    config = CONFIG.replace(arch=arch, latent_dim=100)
    timer = tr.TorchStepTimer(config, tiny_images, adam="foreach")
    assert timer.compile() > 0 and timer.run(1) > 0
    assert timer.trainer.step_count == 2
    assert timer.trainer.discriminator.training and timer.trainer.generator.training
    assert all(np.isfinite(float(v)) for v in timer.metrics.values())


def test_step_flops_is_the_hand_count():
    """FlopCounterMode counts exactly Algorithm 1's matrix products for the MLP GAN."""
    from tests.test_benchmark import MLP_STEP_FLOPS_PER_IMAGE

    for batch_size in (8, 16):
        trainer = tr.TorchTrainStep(Config(arch="mlp", batch_size=batch_size),
                                    np.zeros((32, 28, 28, 1), np.float32))
        assert tr.step_flops(trainer) == batch_size * MLP_STEP_FLOPS_PER_IMAGE
    assert tr.matmul_gflops(size=256, repeats=2) > 0
