"""The theory lab's low-dimensional networks: registration, parameter counts, parallel lines."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import Config, count_params, create_state  # noqa: F401
from gan_jax.models import architectures as models, toy as toy_models


@pytest.mark.parametrize("name,latent,g_count,d_count,dim", [
    # 1*32+32 + 32*32+32 + 32+1 (G and D alike)
    ("toy1d", 1, 1153, 1153, 1),
    # 16*128+128 + 128*128+128 + 128*2+2 | 2*128+128 + 128*128+128 + 128+1
    ("toy2d", 16, 18946, 17025, 2),
    # theta | 2*64+64 + 64*64+64 + 64+1
    ("parallel_lines", 1, 1, 4417, 2),
])
def test_toy_architectures(name, latent, g_count, d_count, dim):
    config = Config(arch=name)
    assert config.latent_dim == latent and config.batch_size == 256
    state = create_state(config, jax.random.key(0))
    assert count_params(state.g_params) == g_count
    assert count_params(state.d_params) == d_count
    gan_arch = models.get_architecture(name)
    assert gan_arch.image_shape == (dim,)


def test_parallel_lines_generator_is_theta_and_uniform():
    gen = toy_models.ParallelLinesGenerator(theta_init=0.7)
    params = gen.init(jax.random.key(0), jnp.zeros((1, 1)))
    z = jnp.array([[-1.0], [0.0], [1.0]])
    out = gen.apply(params, z)
    np.testing.assert_allclose(out, [[0.7, 0.0], [0.7, 0.5], [0.7, 1.0]])
    assert jax.tree_util.tree_map(jnp.shape, params) == {"params": {"theta": ()}}
