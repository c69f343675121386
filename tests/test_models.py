"""Architectures: exact parameter counts, shapes, logits, and fast == plain formulations."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.models import layers, architectures as models
from gan_jax.games import count_params
from tests.helpers import normal, uniform




@pytest.fixture(scope="module")
def thesis():
    arch = models.get_architecture("thesis")
    g, d = arch.generator(), arch.discriminator()
    return g, d, _jit_init(g, 0, (2, 96)), _jit_init(d, 1, (2, 28, 28, 1))


def test_thesis_parameter_counts(thesis):
    _, _, g_vars, d_vars = thesis
    # G: 96*1024+1024 + 2*1024 (BN) + 1024*6272+6272 + 2*6272 + 4*4*128*64+64 + 2*64 + 4*4*64+1
    assert count_params(g_vars["params"]) == 6_675_009
    # D: 5*5*32+32 + 5*5*32*64+64 + 1024*1024+1024 + 1024+1
    assert count_params(d_vars["params"]) == 1_102_721
    # BatchNorm running mean and variance for 1024, 6272 and 64 features; none in D.
    assert count_params(g_vars["batch_stats"]) == 2 * (1024 + 6272 + 64)
    assert "batch_stats" not in d_vars


def test_thesis_layer_shapes(thesis):
    _, _, g_vars, d_vars = thesis
    gp, dp = g_vars["params"], d_vars["params"]
    assert gp["Dense_0"]["kernel"].shape == (96, 1024)
    assert gp["Dense_1"]["kernel"].shape == (1024, 7 * 7 * 128)
    assert gp["ConvTranspose_0"]["kernel"].shape == (4, 4, 64, 128)
    assert gp["ConvTranspose_1"]["kernel"].shape == (4, 4, 1, 64)
    assert dp["Conv_0"]["kernel"].shape == (5, 5, 1, 32)
    assert dp["Conv_1"]["kernel"].shape == (5, 5, 32, 64)
    assert dp["Dense_0"]["kernel"].shape == (1024, 1024)
    assert dp["Dense_1"]["kernel"].shape == (1024, 1)


def test_thesis_outputs(thesis):
    g, d, g_vars, d_vars = thesis
    z = uniform(2, (5, 96))
    images, _ = g.apply(g_vars, z, train=True, mutable=["batch_stats"])
    assert images.shape == (5, 28, 28, 1)
    assert float(jnp.max(jnp.abs(images))) <= 1.0  # tanh output
    logits = d.apply(d_vars, images)
    assert logits.shape == (5,)
    # Logits, not probabilities: a large input drives them outside [0, 1].
    big = d.apply(d_vars, 100.0 * jnp.ones((1, 28, 28, 1)))
    assert not 0.0 <= float(big[0]) <= 1.0


def test_max_pool_matches_flax():
    x = normal(0, (2, 8, 6, 3))
    np.testing.assert_array_equal(models.max_pool_2x2(x), nn.max_pool(x, (2, 2), (2, 2)))
    g = normal(1, (2, 4, 3, 3))
    ga = jax.grad(lambda x: jnp.sum(models.max_pool_2x2(x) * g))(x)
    gb = jax.grad(lambda x: jnp.sum(nn.max_pool(x, (2, 2), (2, 2)) * g))(x)
    np.testing.assert_array_equal(ga, gb)


def test_fast_generator_equals_plain_flax_generator(thesis):
    """The default (fast) thesis G and the stock nn.ConvTranspose version, same parameters."""
    g, _, g_vars, _ = thesis
    plain = models.ThesisGenerator(plain=True)
    plain_params = dict(g_vars["params"])
    for name in ("ConvTranspose_0", "ConvTranspose_1"):
        plain_params[name] = {
            "kernel": jnp.flip(g_vars["params"][name]["kernel"], (0, 1)).transpose(0, 1, 3, 2),
            "bias": g_vars["params"][name]["bias"],
        }
    # Sanity of the mapping helper used by layers.
    np.testing.assert_array_equal(
        layers.flax_kernel_to_transpose_kernel(plain_params["ConvTranspose_0"]["kernel"]),
        g_vars["params"]["ConvTranspose_0"]["kernel"])
    z = uniform(3, (4, 96))

    def run(module, params):
        def loss(p):
            out, _ = module.apply({"params": p, "batch_stats": g_vars["batch_stats"]}, z,
                                  train=True, mutable=["batch_stats"])
            return jnp.sum(out ** 3), out
        # Jitted: one compile per network instead of op-by-op dispatch (tolerances below).
        return jax.jit(jax.value_and_grad(loss, has_aux=True))(params)

    (_, out_fast), grads_fast = run(g, g_vars["params"])
    (_, out_plain), grads_plain = run(plain, plain_params)
    np.testing.assert_allclose(out_fast, out_plain, rtol=1e-5, atol=1e-5)

    def close(fast, plain):
        # float32 tolerance on the gradient's own scale: sums of many O(10) terms (through
        # BatchNorm over 4 examples) differ by ~1e-5 of their largest entry when the
        # convolutions are computed in another order (the sub-pixel form's phase convolutions).
        np.testing.assert_allclose(fast, plain, rtol=1e-3, atol=1e-5 * np.abs(plain).max())

    for name in ("Dense_0", "Dense_1", "BatchNorm_2"):
        for leaf in grads_fast[name]:
            close(grads_fast[name][leaf], grads_plain[name][leaf])
    for name in ("ConvTranspose_0", "ConvTranspose_1"):
        close(grads_fast[name]["kernel"],
              layers.flax_kernel_to_transpose_kernel(grads_plain[name]["kernel"]))
        close(grads_fast[name]["bias"], grads_plain[name]["bias"])


def test_plain_discriminator_equals_fast_discriminator(thesis):
    """thesis_plain's D (nn.max_pool, nn.Conv) and the default D (max_pool_2x2, layers.Conv's
    col2im input gradient): same logits, parameter gradients and input gradient (what G's
    update sees)."""
    _, d, _, d_vars = thesis
    plain = models.ThesisDiscriminator(plain=True)
    x = normal(4, (3, 28, 28, 1))

    def run(module):
        return jax.jit(jax.value_and_grad(
            lambda p, x: jnp.sum(module.apply({"params": p}, x) ** 2), (0, 1)))(d_vars["params"], x)

    (value_fast, grads_fast), (value_plain, grads_plain) = run(d), run(plain)
    np.testing.assert_allclose(value_fast, value_plain, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 grads_fast[0], grads_plain[0])
    scale = np.abs(grads_plain[1]).max()
    np.testing.assert_allclose(grads_fast[1], grads_plain[1], rtol=1e-4, atol=1e-6 * scale)


BUILT_IN = ["dcgan", "dcgan32", "dcgan64", "goodfellow_mlp", "mlp", "thesis", "thesis_plain"]


def test_unknown_architecture_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown architecture 'vgg'; valid: \[") as err:
        models.get_architecture("vgg")
    # Every registered name, sorted (other test modules may have registered their own).
    listed = str(err.value).split("valid: ")[1]
    assert listed == str(sorted(models.ARCHITECTURES))
    assert set(BUILT_IN) <= set(models.ARCHITECTURES)


class _TinyGenerator(nn.Module):
    @nn.compact
    def __call__(self, z, train=True):
        return jnp.tanh(nn.Dense(2)(z))


class _TinyCritic(nn.Module):
    @nn.compact
    def __call__(self, x, train=True):
        return nn.Dense(1)(x)[:, 0]


def test_register_architecture_trains_through_the_library(monkeypatch):
    monkeypatch.setattr(models, "ARCHITECTURES", dict(models.ARCHITECTURES))
    arch = models.Architecture(_TinyGenerator, _TinyCritic, (2,),
                               defaults={"latent_dim": 3, "batch_size": 4})
    models.register_architecture("tiny2d", arch)
    models.register_architecture("tiny2d", arch)  # the same object again: a no-op
    with pytest.raises(ValueError, match="'tiny2d' is already registered"):
        models.register_architecture("tiny2d", models.Architecture(_TinyGenerator, _TinyCritic,
                                                                   (2,)))
    with pytest.raises(TypeError, match="needs an Architecture"):
        models.register_architecture("bad", _TinyGenerator)
    from gan_jax.config import Config
    from gan_jax.games import create_state
    from gan_jax.training.steps import train_step_fn
    config = Config(arch="tiny2d", objective="nonsaturating")
    assert (config.latent_dim, config.batch_size, config.d_activation) == (3, 4, None)
    state = create_state(config, jax.random.key(0))
    assert count_params(state.g_params) == 3 * 2 + 2 and count_params(state.d_params) == 3
    data = jnp.asarray(np.random.default_rng(0).normal(size=(16, 2)), jnp.float32)
    new_state, metrics = train_step_fn(config, state, jax.random.key(1), data)
    assert int(new_state.step) == 1 and np.isfinite(float(metrics["d_loss"]))
    assert not np.allclose(new_state.d_params["Dense_0"]["kernel"],
                           state.d_params["Dense_0"]["kernel"])


def _jit_init(module, seed, input_shape):
    """``module.init`` in inference mode, jitted: one compile per network instead of op-by-op
    dispatch (the same variables)."""
    return jax.jit(functools.partial(module.init, train=False))(jax.random.key(seed),
                                                                jnp.zeros(input_shape))


@pytest.mark.parametrize("name,latent,g_count,d_count,g_stats,d_stats,shape", [
    # PyTorch DCGAN tutorial at 64x64x3: the well-known 3,576,704 / 2,765,568.
    ("dcgan64", 100, 3_576_704, 2_765_568, 2 * 960, 2 * 896, (64, 64, 3)),
    # 100*7*7*256 + 2*256 + 16*256*128 + 2*128 + 16*128 | 16*64 + 16*64*128 + 2*128 + 9*128*256 + 2*256 + 16*256
    ("dcgan", 100, 1_781_504, 431_872, 2 * 384, 2 * 384, (28, 28, 1)),
    # CIFAR-10 size: 100*8192 + 2*512 + 16*512*256 + 2*256 + 16*256*128 + 2*128 + 16*128*3 |
    # 16*3*128 + 16*128*256 + 2*256 + 16*256*512 + 2*512 + 16*512
    ("dcgan32", 100, 3_448_576, 2_637_312, 2 * 896, 2 * 768, (32, 32, 3)),
    # Seed 003: 100*128+128 + 128*784+784 | 784*128+128 + 128+1
    ("mlp", 100, 114_064, 100_609, 0, 0, (28, 28, 1)),
    # The thesis networks in stock Flax layers: the same counts as "thesis".
    ("thesis_plain", 96, 6_675_009, 1_102_721, 2 * (1024 + 6272 + 64), 0, (28, 28, 1)),
])
def test_registered_architectures(name, latent, g_count, d_count, g_stats, d_stats, shape):
    """Parameter counts, shapes and G's tanh output, traced (jax.eval_shape, make_jaxpr):
    nothing is compiled, so the five architectures cost seconds, not a minute (their values
    are checked by the tests below and by training)."""
    arch = models.get_architecture(name)
    assert arch.image_shape == shape
    g, d = arch.generator(), arch.discriminator()
    init = lambda m, x: jax.eval_shape(functools.partial(m.init, train=False),  # noqa: E731
                                       jax.random.key(0), x)
    g_vars, d_vars = init(g, jnp.zeros((2, latent))), init(d, jnp.zeros((2, *shape)))
    assert count_params(g_vars["params"]) == g_count
    assert count_params(d_vars["params"]) == d_count
    assert count_params(g_vars.get("batch_stats", {})) == g_stats
    assert count_params(d_vars.get("batch_stats", {})) == d_stats

    def forward(g_vars, d_vars, z):
        images = g.apply(g_vars, z, train=False)
        return images, d.apply(d_vars, images, train=False)

    images, logits = jax.eval_shape(forward, g_vars, d_vars, jnp.ones((3, latent)))
    assert images.shape == (3, *shape) and logits.shape == (3,)
    # G's images come out of a tanh (then at most reshaped), so they lie in [-1, 1].
    jaxpr = jax.make_jaxpr(lambda v, z: g.apply(v, z, train=False))(g_vars, jnp.ones((3, latent)))
    producer = {out: eqn for eqn in jaxpr.eqns for out in eqn.outvars}
    eqn = producer[jaxpr.jaxpr.outvars[0]]
    while eqn.primitive.name == "reshape":
        eqn = producer[eqn.invars[0]]
    assert eqn.primitive.name == "tanh"


def test_dcgan_initialisation_follows_radford():
    g_vars = _jit_init(models.get_architecture("dcgan64").generator(), 0, (2, 100))
    kernel = g_vars["params"]["ConvTranspose_0"]["kernel"]
    assert abs(float(jnp.std(kernel)) - 0.02) < 0.001 and abs(float(jnp.mean(kernel))) < 0.001
    scale = g_vars["params"]["BatchNorm_1"]["scale"]
    assert abs(float(jnp.mean(scale)) - 1.0) < 0.01 and 0.01 < float(jnp.std(scale)) < 0.03
    assert "bias" not in g_vars["params"]["ConvTranspose_0"]


def test_goodfellow_mlp_counts_and_dropout():
    from gan_jax.models import mlp as mlp_models
    g, d = mlp_models.GoodfellowGenerator(), mlp_models.GoodfellowDiscriminator()
    g_vars = g.init(jax.random.key(0), jnp.zeros((2, 100)))
    d_vars = d.init(jax.random.key(1), jnp.zeros((2, 28, 28, 1)), train=False)
    # 100*1200+1200 + 1200*1200+1200 + 1200*784+784
    assert count_params(g_vars["params"]) == 2_503_984
    # maxout 784 -> 240x5, 240 -> 240x5, 240 -> 1
    assert count_params(d_vars["params"]) == 784 * 1200 + 1200 + 240 * 1200 + 1200 + 241
    x = normal(2, (4, 28, 28, 1))
    # Inference is deterministic; training needs and uses the 'dropout' stream.
    np.testing.assert_array_equal(d.apply(d_vars, x, train=False), d.apply(d_vars, x, train=False))
    a = d.apply(d_vars, x, train=True, rngs={"dropout": jax.random.key(3)})
    b = d.apply(d_vars, x, train=True, rngs={"dropout": jax.random.key(4)})
    assert not np.allclose(a, b)
    # Maxout: max over the 5 pieces of each unit.
    m = mlp_models.Maxout(units=2, pieces=3)
    mv = m.init(jax.random.key(5), jnp.zeros((1, 4)))
    y = normal(6, (3, 4))
    pre = y @ mv["params"]["Dense_0"]["kernel"] + mv["params"]["Dense_0"]["bias"]
    np.testing.assert_allclose(m.apply(mv, y), pre.reshape(3, 2, 3).max(-1), rtol=1e-6)


@pytest.mark.parametrize("arch,slope", [("thesis", 0.01), ("dcgan", 0.2)])
def test_d_activation_relu_vs_leaky_relu(arch, slope):
    """Same parameters; ReLU zeroes what LeakyReLU scales by the architecture's slope."""
    a = models.get_architecture(arch)
    leaky = models.discriminator_for(a, d_activation="leaky_relu")
    relu = models.discriminator_for(a, d_activation="relu")
    assert leaky.negative_slope == slope and relu.negative_slope == 0.0
    x = normal(0, (3, 28, 28, 1))
    variables = leaky.init(jax.random.key(1), x, train=False)
    assert jax.tree.structure(relu.init(jax.random.key(1), x, train=False)) == jax.tree.structure(variables)
    out_leaky = leaky.apply(variables, x, train=False)
    out_relu = relu.apply(variables, x, train=False)
    assert not np.allclose(out_leaky, out_relu)
    # ReLU D == the same network with every LeakyReLU slope set to 0, by construction.
    zero = models.ThesisDiscriminator(negative_slope=0.0) if arch == "thesis" else None
    if zero is not None:
        np.testing.assert_array_equal(zero.apply(variables, x), out_relu)


def test_dcgan_dropout_variant():
    """--d_dropout: seed 003's DCGAN D, dropout after every LeakyReLU (train mode only)."""
    a = models.get_architecture("dcgan")
    plain = models.discriminator_for(a)
    dropped = models.discriminator_for(a, d_dropout=0.4)
    assert plain.dropout == 0.0 and dropped.dropout == 0.4
    x = normal(0, (4, 28, 28, 1))
    variables = plain.init(jax.random.key(1), x, train=False)
    # Same parameters; dropout adds none.
    assert jax.tree.structure(dropped.init(jax.random.key(1), x, train=False)) == \
        jax.tree.structure(variables)
    np.testing.assert_array_equal(dropped.apply(variables, x, train=False),
                                  plain.apply(variables, x, train=False))

    def train_logits(module, key):
        return module.apply(variables, x, train=True, rngs={"dropout": key},
                            mutable=["batch_stats"])[0]

    a1, a2 = train_logits(dropped, jax.random.key(2)), train_logits(dropped, jax.random.key(3))
    assert not np.allclose(a1, a2)  # the dropout key matters
    np.testing.assert_array_equal(a1, train_logits(dropped, jax.random.key(2)))
    assert not np.allclose(a1, train_logits(plain, jax.random.key(2)))
    with pytest.raises(ValueError, match="d_dropout is not offered"):
        models.discriminator_for(models.get_architecture("thesis"), d_dropout=0.4)
