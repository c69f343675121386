"""Layers whose formulation matters for speed on XLA:CPU, with the exact mathematics of the plain ones.

``ConvTranspose`` computes PyTorch's ``ConvTranspose2d(kernel, stride, padding)``: by definition
the transpose (adjoint) of the strided convolution ``Conv2d(kernel, stride, padding)``. Writing it
that way, with a hand-written VJP whose two halves are again a strided convolution and that
convolution's weight gradient, keeps XLA:CPU on its fast convolution kernels. Flax's stock
``nn.ConvTranspose`` lowers to an input-dilated convolution whose weight gradient XLA:CPU runs
as a naive loop (measured: thesis GAN step 2.3 -> 6.6 steps/s on 2 cores, see README).

The kernel is stored as ``[kh, kw, out_features, in_features]``: the HWIO kernel of the strided
convolution being transposed (PyTorch's ``ConvTranspose2d.weight`` is ``[in, out, kh, kw]``, the
same numbers permuted). ``tests/test_layers.py`` checks outputs and gradients against
``nn.ConvTranspose`` with the equivalent (flipped, transposed) kernel.
"""

from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_DIMS = ("NHWC", "HWIO", "NHWC")


def _strided_conv(y: jax.Array, kernel: jax.Array, stride: int, padding: int) -> jax.Array:
    """``Conv2d``: ``y [B, H', W', out] -> [B, H, W, in]`` with ``kernel [kh, kw, out, in]``."""
    return lax.conv_general_dilated(y, kernel, (stride, stride),
                                    ((padding, padding), (padding, padding)),
                                    dimension_numbers=_DIMS)


def _output_shape(x_shape, kernel_shape, stride, padding):
    b, h, w, _ = x_shape
    kh, kw, out_features, _ = kernel_shape
    return (b, (h - 1) * stride - 2 * padding + kh, (w - 1) * stride - 2 * padding + kw,
            out_features)


# Phase split of ConvTranspose2d(k=4, s=2, p=1): output row 2m + a only sees input rows
# m - 1, m, m + 1 through kernel taps _PHASE_TAPS[a][t] (t = offset + 1; -1: no tap), because
# y[o] = sum_q x[q] K[o + p - 2q]. So the layer is one stride-1 3x3 convolution with 4x the
# output channels (one group per (row phase, column phase)) followed by a pixel interleave.
PHASE_SPLIT = False
_PHASE_TAPS = ((3, 1, -1), (-1, 2, 0))
_PHASE_SELECT = np.zeros((2, 3, 4), np.float32)  # [phase, tap, kernel index]
for _a, _taps in enumerate(_PHASE_TAPS):
    for _t, _k in enumerate(_taps):
        if _k >= 0:
            _PHASE_SELECT[_a, _t, _k] = 1.0


def _conv_transpose_phase_split(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """ConvTranspose2d(k=4, s=2, p=1) as a stride-1 3x3 conv to 4*out channels + interleave."""
    b, h, w, _ = x.shape
    out = kernel.shape[2]
    select = jnp.asarray(_PHASE_SELECT, kernel.dtype)
    # [3, 3, in, 2, 2, out]: tap (th, tw), input channel, phase (ah, aw), output channel.
    phase_kernel = jnp.einsum("ahk,bwl,kloi->hwiabo", select, select, kernel)
    y = lax.conv_general_dilated(x, phase_kernel.reshape(3, 3, x.shape[-1], 4 * out), (1, 1),
                                 ((1, 1), (1, 1)), dimension_numbers=_DIMS)
    y = y.reshape(b, h, w, 2, 2, out).transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(b, 2 * h, 2 * w, out)


def conv_transpose(x: jax.Array, kernel: jax.Array, stride: int, padding: int) -> jax.Array:
    """PyTorch-semantics transposed convolution ``x [B, H, W, in] -> [B, H', W', out]``.

    ``H' = (H - 1) * stride - 2 * padding + kh``. ``kernel`` is ``[kh, kw, out, in]``. When
    ``PHASE_SPLIT`` is set, the DCGAN upsampling layer (k=4, s=2, p=1) takes the phase-split
    path (plain autodiff of a stride-1 convolution); otherwise, and for every other shape, the
    adjoint of the strided convolution. Off by default: on the 2-core CPU it was not
    measurably faster (noisy A/B, see the issue notes); both paths are tested equal.
    """
    if PHASE_SPLIT and kernel.shape[:2] == (4, 4) and stride == 2 and padding == 1:
        return _conv_transpose_phase_split(x, kernel)
    return conv_transpose_adjoint(x, kernel, stride, padding)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_transpose_adjoint(x: jax.Array, kernel: jax.Array, stride: int, padding: int
                           ) -> jax.Array:
    """:func:`conv_transpose` as the adjoint of the strided convolution, with its own VJP."""
    shape = jax.ShapeDtypeStruct(_output_shape(x.shape, kernel.shape, stride, padding), x.dtype)
    (y,) = jax.linear_transpose(lambda y: _strided_conv(y, kernel, stride, padding), shape)(x)
    return y


def _conv_transpose_fwd(x, kernel, stride, padding):
    return conv_transpose_adjoint(x, kernel, stride, padding), (x, kernel)


def _conv_transpose_bwd(stride, padding, residuals, g):
    x, kernel = residuals
    # y = A_k^T x, so dL/dx = A_k g (a strided conv) and dL/dk = d<x, A_k g>/dk, the weight
    # gradient of the same strided conv with input g and output cotangent x.
    grad_x, kernel_vjp = jax.vjp(lambda k: _strided_conv(g, k, stride, padding), kernel)
    (grad_kernel,) = kernel_vjp(x)
    return grad_x, grad_kernel


conv_transpose_adjoint.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


class ConvTranspose(nn.Module):
    """``ConvTranspose2d(in, features, kernel_size, stride, padding)`` with a bias, NHWC.

    Attributes:
      features: output channels.
      kernel_size: square kernel side.
      stride: upsampling factor.
      padding: PyTorch's ``padding`` (removed from each border of the full output).
    """

    features: int
    kernel_size: int = 4
    stride: int = 2
    padding: int = 1
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.xavier_uniform()
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (k, k, self.features, x.shape[-1]))
        y = conv_transpose(x, kernel.astype(x.dtype), self.stride, self.padding)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,)).astype(x.dtype)
        return y


def flax_kernel_to_transpose_kernel(flax_kernel: jax.Array) -> jax.Array:
    """Maps an ``nn.ConvTranspose`` kernel ``[kh, kw, in, out]`` (``transpose_kernel=False``,
    padding ``k - 1 - p``) to this module's ``[kh, kw, out, in]`` layout: flip space, swap I/O."""
    return jnp.flip(flax_kernel, (0, 1)).transpose(0, 1, 3, 2)
