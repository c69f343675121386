"""Shared fixtures. Compiles are the cost of this suite: tests share one tiny configuration
(``TINY``, batch 8) so the train step compiles once per objective/k and is reused."""

import numpy as np
import pytest

from gan_jax import xla_config

# The command-line programs' XLA settings (experiments/__init__.py), applied before JAX starts
# its backend: in-process results then match the programs' to the bit whatever the test order.
xla_config.use_fast_cpu_convolutions()

from gan_jax.config import Config  # noqa: E402
from tests.helpers import write_mnist_dir

TINY = Config(batch_size=8, num_steps=4, log_every=2, sample_every=2, checkpoint_every=2,
              eval_every=0)


@pytest.fixture(scope="session")
def tiny_config():
    return TINY


@pytest.fixture(scope="session")
def tiny_images():
    """64 random images float32 [64, 28, 28, 1] in [-1, 1]."""
    return np.random.default_rng(0).uniform(-1, 1, (64, 28, 28, 1)).astype(np.float32)


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory):
    """A folder with the four MNIST IDX files holding 64 train / 16 test random images."""
    return write_mnist_dir(tmp_path_factory.mktemp("mnist"))
