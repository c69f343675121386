"""Command-line experiments: each parses flags, builds a Config and calls one library function.

Importing this package applies the fast XLA:CPU convolution setting (gan_jax.xla_config) before
JAX starts, so every experiment runs the fast path by default; GAN_JAX_PLAIN_XLA=1 opts out.
"""

from gan_jax.xla_config import use_fast_cpu_convolutions

use_fast_cpu_convolutions()
