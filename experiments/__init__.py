"""Command-line experiments: each parses flags, builds a Config and calls one library function.

Importing this package applies the fast XLA:CPU convolution setting (gan_jax.xla_config) before
JAX starts, so every experiment runs the fast path by default; GAN_JAX_PLAIN_XLA=1 opts out.
"""

import contextlib
import sys

from absl import flags

from gan_jax.models import layers
from gan_jax.xla_config import use_fast_cpu_convolutions

use_fast_cpu_convolutions()

flags.DEFINE_enum("layers", None, list(layers.FORMS), "Convolution formulations: 'cpu' (tuned "
                  "for XLA:CPU, with their own VJPs), 'native' (XLA's convolution and transposed "
                  "convolution, for cuDNN and TPUs) or 'auto' (cpu on XLA:CPU, native elsewhere). "
                  f"Default: ${layers.LAYERS_ENV}, else auto. Same parameters and function.")


@contextlib.contextmanager
def exit_on_user_error():
    """A script's body (``--layers`` applied first): bad input, missing or corrupt files and a diverged run end the program
    with ``error: <message>`` on stderr and exit status 1, instead of a traceback. A run stopped
    by SIGTERM / SIGINT (a checkpoint written; rerunning continues) prints ``stopped:
    <message>`` and exits with status 75 (EX_TEMPFAIL)."""
    from absl import logging

    from gan_jax.training.checkpoint import CheckpointError
    from gan_jax.training.loop import TrainingDiverged
    from gan_jax.training.preemption import EXIT_INTERRUPTED, TrainingInterrupted

    # DataError and EvaluatorError are ValueErrors.
    try:
        if flags.FLAGS.is_parsed() and flags.FLAGS.layers is not None:
            layers.set_layer_form(flags.FLAGS.layers)
        layers.configured_form()  # a bad $GAN_JAX_LAYERS is refused before anything runs
        yield
    except (ValueError, FileNotFoundError, CheckpointError, TrainingDiverged) as e:
        logging.error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except TrainingInterrupted as e:
        logging.warning("%s", e)
        print(f"stopped: {e}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
