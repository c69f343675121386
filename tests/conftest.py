"""Shared fixtures. Compiles are the cost of this suite: tests share one tiny configuration
(``TINY``, batch 8) so the train step compiles once per objective/k and is reused."""

import os
import shutil
import tempfile

import pytest

from gan_jax import xla_config

# The command-line programs' XLA settings (experiments/__init__.py), applied before JAX starts
# its backend: in-process results then match the programs' to the bit whatever the test order.
xla_config.use_fast_cpu_convolutions()

# One persistent compilation cache for the session, set before JAX is imported and inherited by
# the command-line programs the tests start: a computation compiled once (a train step built
# again, or the same step in a restarted subprocess) is then loaded, not compiled again. A cached
# executable is the compiled code itself, so results are bitwise those of a fresh compile.
_CACHE_DIR = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _CACHE_DIR = tempfile.mkdtemp(prefix="gan_jax_test_jit_cache_")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE_DIR
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

from gan_jax.config import Config  # noqa: E402
from tests.helpers import uniform, write_mnist_dir

TINY = Config(batch_size=8, num_steps=4, log_every=2, sample_every=2, checkpoint_every=2,
              eval_every=0)


@pytest.fixture(scope="session")
def tiny_config():
    return TINY


@pytest.fixture(scope="session")
def tiny_images():
    """64 random images float32 [64, 28, 28, 1] in [-1, 1]."""
    return uniform(0, (64, 28, 28, 1))


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory):
    """A folder with the four MNIST IDX files holding 64 train / 16 test random images."""
    return write_mnist_dir(tmp_path_factory.mktemp("mnist"))


# The slowest test files, slowest first (measured with -n 2 on 2 cores). pytest.ini hands whole
# files to the workers in collection order, so the long ones start first and the short ones
# fill in at the end: the workers finish together. Only a schedule: every file is independent.
LONGEST_FIRST = ("test_layers.py", "test_multiprocess.py", "test_experiments.py", "test_steps.py", "test_parallel.py",
                 "test_models.py", "test_games.py", "test_sweep.py", "test_began.py",
                 "test_theory.py", "test_readme.py", "test_mixtures.py", "test_scoring.py",
                 "test_conditional.py", "test_evaluator.py", "test_training.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order kept within


def pytest_sessionfinish(session, exitstatus):
    if _CACHE_DIR is not None:
        shutil.rmtree(_CACHE_DIR, ignore_errors=True)
