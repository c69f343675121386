"""XLA settings that the command-line programs apply before JAX starts its backend.

``--xla_cpu_experimental_ynn_fusion_type=-individual_convolution`` keeps XLA:CPU from routing
single convolutions through its YNNPACK fusion path, which is slower for these small-channel
GAN convolutions (thesis train step 6.1 -> 7.1 steps/s on the 2-core CPU, interleaved quiet
benchmark). It is a CPU-backend flag (ignored on GPU/TPU) that jaxlib >= 0.10 knows; older
jaxlibs abort on unknown XLA flags, so it is only added for those versions. The library itself
never changes the environment: scripts opt in by calling :func:`use_fast_cpu_convolutions`.
"""

from __future__ import annotations

import importlib.metadata
import os

FAST_CPU_CONVOLUTIONS = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"


def _jaxlib_at_least(major: int, minor: int) -> bool:
    try:
        parts = importlib.metadata.version("jaxlib").split(".")
        return (int(parts[0]), int(parts[1])) >= (major, minor)
    except (importlib.metadata.PackageNotFoundError, ValueError, IndexError):
        return False


def use_fast_cpu_convolutions(environ=os.environ) -> bool:
    """Adds the flag to ``XLA_FLAGS`` unless the user already set that flag; True if it is on.

    Must run before the first JAX computation (the backend reads ``XLA_FLAGS`` once).
    ``GAN_JAX_PLAIN_XLA=1`` leaves ``XLA_FLAGS`` untouched.
    """
    flags = environ.get("XLA_FLAGS", "")
    if "xla_cpu_experimental_ynn_fusion_type" in flags:
        return FAST_CPU_CONVOLUTIONS in flags.split()
    if environ.get("GAN_JAX_PLAIN_XLA") == "1" or not _jaxlib_at_least(0, 10):
        return False
    environ["XLA_FLAGS"] = (flags + " " + FAST_CPU_CONVOLUTIONS).strip()
    return True
