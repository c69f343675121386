"""Layers whose formulation matters for speed on XLA:CPU, with the exact mathematics of the plain ones.

``ConvTranspose`` computes PyTorch's ``ConvTranspose2d(kernel, stride, padding)``: by definition
the transpose (adjoint) of the strided convolution ``Conv2d(kernel, stride, padding)``. Writing it
that way, with a hand-written VJP whose two halves are again a strided convolution and that
convolution's weight gradient, keeps XLA:CPU on its fast convolution kernels. Flax's stock
``nn.ConvTranspose`` lowers to an input-dilated convolution whose weight gradient XLA:CPU runs
as a naive loop (measured: thesis GAN step 2.3 -> 6.6 steps/s on 2 cores, see README). The
value itself, for the DCGAN upsampling layer (k=4, s=2, p=1), is computed in sub-pixel form:
four stride-1 2x2 convolutions, one per output phase, interleaved, instead of XLA's
input-dilated convolution, which spends three quarters of its work on inserted zeros.

``Conv`` is ``nn.Conv`` (same parameters, paths, initial values and forward convolution) with
its own VJP: the input gradient of a strided convolution is that same transposed convolution
(so it takes the sub-pixel form too), and a stride-1 convolution with few input channels gets
its input gradient from one matmul plus col2im. The weight gradients stay XLA's.

The kernel of ``ConvTranspose`` is stored as ``[kh, kw, out_features, in_features]``: the HWIO
kernel of the strided convolution being transposed (PyTorch's ``ConvTranspose2d.weight`` is
``[in, out, kh, kw]``, the same numbers permuted). ``tests/test_layers.py`` checks outputs and
gradients against ``nn.ConvTranspose`` with the equivalent (flipped, transposed) kernel, and
``Conv`` against ``nn.Conv``.

These forms are tuned for XLA:CPU. On GPU and TPU, whose convolution libraries (cuDNN, the TPU's
MXU lowering) handle XLA's plain convolution and transposed convolution natively, the modules
compute those instead (``native`` form: the same parameters and function, XLA's own autodiff).
:func:`resolved_form` picks: :func:`set_layer_form` (the command lines' ``--layers``) over the
``GAN_JAX_LAYERS`` environment variable (``auto``, ``cpu`` or ``native``) over the backend
(``cpu`` forms on XLA:CPU, ``native`` elsewhere). The choice is read when a function is traced:
set it before the first call of a jitted step (a cached trace keeps the form it was traced with).
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Callable, Iterator, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_DIMS = ("NHWC", "HWIO", "NHWC")

# The layer forms: "cpu" (the formulations below, with their own VJPs), "native" (XLA's
# convolution and transposed convolution, XLA's autodiff), "auto" (by backend).
FORMS = ("auto", "cpu", "native")
LAYERS_ENV = "GAN_JAX_LAYERS"
_forced: Optional[str] = None


def _check_form(form: str, where: str) -> str:
    if form not in FORMS:
        raise ValueError(f"{where}={form!r} is not a layer form; valid: {', '.join(FORMS)}")
    return form


def set_layer_form(form: Optional[str]) -> None:
    """Forces ``form`` ("auto", "cpu" or "native") for every function traced from now on, over
    ``GAN_JAX_LAYERS``; ``None`` removes the setting."""
    global _forced
    _forced = None if form is None else _check_form(form, "layer form")


@contextlib.contextmanager
def layer_form(form: Optional[str]) -> Iterator[None]:
    """:func:`set_layer_form` for the body of a ``with`` block (trace inside it)."""
    previous = _forced
    set_layer_form(form)
    try:
        yield
    finally:
        set_layer_form(previous)


def configured_form() -> str:
    """The form asked for, before "auto" is resolved: the forced one, else ``GAN_JAX_LAYERS``
    (checked: a ValueError lists the valid values), else "auto". Needs no JAX backend."""
    if _forced not in (None, "auto"):
        return _forced
    return _check_form(os.environ.get(LAYERS_ENV, "auto") or "auto", LAYERS_ENV)


def resolved_form(backend: Optional[str] = None) -> str:
    """"cpu" or "native": :func:`configured_form`, with "auto" resolved by ``backend`` (default
    ``jax.default_backend()``): the CPU forms on XLA:CPU, the native ones elsewhere."""
    form = configured_form()
    if form == "auto":
        form = "cpu" if (backend or jax.default_backend()) == "cpu" else "native"
    return form


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


# Sub-pixel form of ConvTranspose2d(k=4, s=2, p=1). y[o] = sum_q x[q] K[o + p - 2q], so output
# row 2m + a only sees input rows m - 1 + a and m + a, through kernel taps _SUBPIXEL_TAPS[a]:
# each of the four output phases (a, b) is a stride-1 2x2 convolution of x with its own 2x2
# slice of the kernel, and the layer is those four convolutions, interleaved. XLA:CPU computes
# the input-dilated (zero-inserted) form at 85-290 GFLOP/s on the DCGAN shapes and the four
# phase convolutions at 300-380 (README, "Speed"); with few output channels (the image layers:
# 1 or 3) the small phase convolutions are slower, and the col2im form below is used.
_SUBPIXEL_TAPS = ((3, 1), (2, 0))
SUBPIXEL_MIN_FEATURES = 16


def _subpixel_applies(kernel_shape, stride: int, padding: int, out_features: int) -> bool:
    return (tuple(kernel_shape[:2]) == (4, 4) and stride == 2 and padding == 1
            and out_features >= SUBPIXEL_MIN_FEATURES)


# The image layers (k=4, s=2, p=1 with at most this many outputs: 1 or 3) in col2im form: one
# matmul gives every input pixel's 4x4 x out output patch, and each output phase is the sum of
# its four taps' patches, shifted by at most one pixel. XLA's input-dilated form multiplies
# mostly zeros and its phase convolutions would have 1-3 output channels: DCGAN-64's RGB layer
# (64 -> 3 channels, 32 -> 64, batch 64) 3.3 -> 1.5 ms, the MNIST layers (-> 1 channel, 14 -> 28,
# batch 128) 0.8-1.0 -> 0.2-0.4 ms.
COL2IM_TRANSPOSED_MAX_FEATURES = 4
# Output phase a (row 2m + a) sums the patches of input rows m - shift through kernel tap `tap`:
# y[2m + a] gets x[q] through tap 2m + a + 1 - 2q (p = 1), so a = 0 takes taps 1 (q = m) and
# 3 (q = m - 1), a = 1 taps 0 (q = m + 1) and 2 (q = m).
_COL2IM_PHASE_TAPS = (((1, 0), (3, 1)), ((0, -1), (2, 0)))  # ((tap, shift), ...) per phase


def _col2im_transposed_applies(kernel_shape, stride: int, padding: int,
                               out_features: int) -> bool:
    return (tuple(kernel_shape[:2]) == (4, 4) and stride == 2 and padding == 1
            and out_features <= COL2IM_TRANSPOSED_MAX_FEATURES)


def _shift(v: jax.Array, shift: int, axis: int) -> jax.Array:
    """``out[m] = v[m - shift]`` along ``axis`` (shift in {-1, 0, 1}), zero where that is
    outside ``v``."""
    if shift == 0:
        return v
    n = v.shape[axis]
    pad = [(0, 0)] * v.ndim
    pad[axis] = (1, 0) if shift > 0 else (0, 1)
    start = 0 if shift > 0 else 1
    return lax.slice_in_dim(jnp.pad(v, pad), start, start + n, axis=axis)


def conv_transpose_col2im(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """ConvTranspose2d(k=4, s=2, p=1) ``[B, H, W, in] -> [B, 2H, 2W, out]`` in col2im form
    (``COL2IM_TRANSPOSED_MAX_FEATURES``). ``kernel`` is ``[4, 4, out, in]``."""
    b, h, w, cin = x.shape
    out = kernel.shape[2]
    patches = (x.reshape(-1, cin) @ kernel.reshape(16 * out, cin).T
               ).reshape(b, h, w, 4, 4, out)
    rows = []
    for row_taps in _COL2IM_PHASE_TAPS:
        phases = []
        for col_taps in _COL2IM_PHASE_TAPS:
            phases.append(sum(
                _shift(_shift(patches[:, :, :, i, j, :], di, 1), dj, 2)
                for i, di in row_taps for j, dj in col_taps))
        rows.append(jnp.stack(phases, axis=3))  # [B, H, W, c, out]
    return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, out)  # [B, H, a, W, c, out]


def conv_transpose_subpixel(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """ConvTranspose2d(k=4, s=2, p=1) ``[B, H, W, in] -> [B, 2H, 2W, out]`` as four stride-1
    2x2 convolutions, one per output phase, interleaved. ``kernel`` is ``[4, 4, out, in]``."""
    b, h, w, _ = x.shape
    out = kernel.shape[2]
    taps = np.asarray(_SUBPIXEL_TAPS)
    rows = []
    for a in range(2):
        phases = []
        for c in range(2):
            # HWIO kernel of phase (a, c): taps [2, 2] of K, input channels, output channels.
            k = kernel[taps[a][:, None], taps[c][None, :]].transpose(0, 1, 3, 2)
            phases.append(lax.conv_general_dilated(
                x, k, (1, 1), ((1 - a, a), (1 - c, c)), dimension_numbers=_DIMS))
        rows.append(jnp.stack(phases, axis=3))  # [B, H, W, c, out]
    return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, out)  # [B, H, a, W, c, out]


def conv_transpose(x: jax.Array, kernel: jax.Array, stride: int, padding: int) -> jax.Array:
    """PyTorch-semantics transposed convolution ``x [B, H, W, in] -> [B, H', W', out]``.

    ``H' = (H - 1) * stride - 2 * padding + kh``. ``kernel`` is ``[kh, kw, out, in]``. The
    adjoint of the strided convolution, with its own VJP; the DCGAN upsampling layer (k=4, s=2,
    p=1) computes its value in sub-pixel form (at least ``SUBPIXEL_MIN_FEATURES`` outputs) or
    col2im form (at most ``COL2IM_TRANSPOSED_MAX_FEATURES``: the image layers).
    """
    return conv_transpose_adjoint(x, kernel, stride, padding)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_transpose_adjoint(x: jax.Array, kernel: jax.Array, stride: int, padding: int
                           ) -> jax.Array:
    """:func:`conv_transpose` as the adjoint of the strided convolution, with its own VJP; the
    value in sub-pixel form where that is faster."""
    if _subpixel_applies(kernel.shape, stride, padding, kernel.shape[2]):
        return conv_transpose_subpixel(x, kernel)
    if _col2im_transposed_applies(kernel.shape, stride, padding, kernel.shape[2]):
        return conv_transpose_col2im(x, kernel)
    shape = jax.ShapeDtypeStruct(_output_shape(x.shape, kernel.shape, stride, padding), x.dtype)
    (y,) = jax.linear_transpose(lambda y: _strided_conv(y, kernel, stride, padding), shape)(x)
    return y


def native_conv_transpose(x: jax.Array, kernel: jax.Array, stride: int, padding: int
                          ) -> jax.Array:
    """:func:`conv_transpose` as XLA's transposed convolution (``lax.conv_transpose``, an
    input-dilated convolution) with XLA's autodiff: the ``native`` form."""
    k = kernel.shape[0]
    pad = ((k - 1 - padding, k - 1 - padding),) * 2
    return lax.conv_transpose(x, kernel, (stride, stride), pad, dimension_numbers=_DIMS,
                              transpose_kernel=True)


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


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def strided_conv(x: jax.Array, kernel: jax.Array, stride: int, padding: int) -> jax.Array:
    """``Conv2d(kernel, stride, padding)``, ``x [B, H, W, in]``, ``kernel [kh, kw, in, out]``:
    the same XLA convolution as ``nn.Conv``, with a VJP whose input gradient (a transposed
    convolution) takes the sub-pixel or col2im form of :func:`conv_transpose` (k=4, s=2, p=1,
    even maps), the col2im form (stride 1, at most ``COL2IM_MAX_INPUT_CHANNELS`` inputs) or the
    row form (stride 1, small maps) where it applies; the weight gradient is XLA's."""
    return _strided_conv(x, kernel, stride, padding)


# Below this many input channels a stride-1 convolution's input gradient is one matmul to every
# patch's gradient plus the patches added into place (col2im): XLA:CPU's own, a convolution with
# that few output channels, ran the thesis D's first layer (1 channel) at 17 GFLOP/s, 6.1 ms
# against 1.1 ms.
COL2IM_MAX_INPUT_CHANNELS = 4


def _add_at_offsets(pieces, shape, dtype, padding: int) -> jax.Array:
    """The sum of ``pieces`` ``(v, i, j)``, each ``v`` zero-padded into ``shape`` ``[B, H, W,
    C]`` (a padded input) at offset ``(i, j)``, with ``padding`` cropped from every border."""
    _, h, w, _ = shape
    total = jnp.zeros(shape, dtype)
    for v, i, j in pieces:
        total = total + jnp.pad(
            v, ((0, 0), (i, h - v.shape[1] - i), (j, w - v.shape[2] - j), (0, 0)))
    return total[:, padding:h - padding, padding:w - padding, :]


def _col2im_input_gradient(g: jax.Array, kernel: jax.Array, padding: int) -> jax.Array:
    """Input gradient of the stride-1 ``_strided_conv(x, kernel, 1, padding)`` at cotangent
    ``g [B, OH, OW, out]``: ``cols = g @ W^T`` (each output position's patch gradient), then
    each of the kh x kw taps' slices added at its offset, the padding cropped."""
    kh, kw, cin, cout = kernel.shape
    b, oh, ow, _ = g.shape
    cols = (g.reshape(-1, cout) @ kernel.reshape(kh * kw * cin, cout).T
            ).reshape(b, oh, ow, kh, kw, cin)
    return _add_at_offsets(((cols[:, :, :, i, j, :], i, j) for i in range(kh) for j in range(kw)),
                           (b, oh + kh - 1, ow + kw - 1, cin), g.dtype, padding)


# The row form pays where XLA's "full" convolution would mostly pad: when the input gradient's
# rows (OH + kh - 1 - 2p) outnumber the cotangent's (OH) by this factor. Measured against XLA's
# own (2-core CPU): 8x8 outputs, 5x5 kernel, 1.5x: 1.84x faster; 12x12, 5x5, 1.33x: 1.28x faster;
# 30x30, 3x3, 1.07x: 0.59x; padded "same" convolutions, 1.0x: 0.46-0.85x.
ROW_FORM_MIN_GROWTH = 1.25


def _row_form_applies(g_shape, kernel_shape, padding: int) -> bool:
    kh, kw = kernel_shape[:2]
    _, oh, ow, _ = g_shape
    return (oh + kh - 1 - 2 * padding >= ROW_FORM_MIN_GROWTH * oh
            and ow + kw - 1 - 2 * padding >= ROW_FORM_MIN_GROWTH * ow)


def _row_input_gradient(g: jax.Array, kernel: jax.Array, padding: int) -> jax.Array:
    """Input gradient of the stride-1 ``_strided_conv(x, kernel, 1, padding)`` at cotangent
    ``g [B, OH, OW, out]``, computed by kernel rows: one convolution along W only, padded in
    W alone, whose ``kh * in`` outputs are every kernel row's contribution; then each row's
    slice added at its offset in H, the padding cropped.

    XLA's own is one "full" convolution of ``g`` padded by ``k - 1`` on every side, which
    multiplies mostly zeros on small maps (``ROW_FORM_MIN_GROWTH``): for the thesis D's second
    layer (8x8 outputs, 5x5 kernel, 32 -> 64 channels, batch 128) 5.2 ms against 2.8 ms here.
    """
    kh, kw, cin, cout = kernel.shape
    b, oh, ow, _ = g.shape
    # [1, kw, out, kh * in]: flipped along W (a correlation computes the full convolution),
    # output features ordered (kernel row, input channel).
    row_kernel = jnp.flip(kernel, 1).transpose(1, 3, 0, 2).reshape(1, kw, cout, kh * cin)
    rows = lax.conv_general_dilated(g, row_kernel, (1, 1), ((0, 0), (kw - 1, kw - 1)),
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))
    w = ow + kw - 1  # the padded input's width
    rows = rows.reshape(b, oh, w, kh, cin)
    return _add_at_offsets(((rows[:, :, :, i, :], i, 0) for i in range(kh)),
                           (b, oh + kh - 1, w, cin), g.dtype, padding)


def _strided_conv_fwd(x, kernel, stride, padding):
    return strided_conv(x, kernel, stride, padding), (x, kernel)


def _strided_conv_bwd(stride, padding, residuals, g):
    x, kernel = residuals
    # A^T g: the transposed convolution of g with the same [kh, kw, in, out] kernel (where its
    # output has x's shape: even maps).
    transposed_fits = _output_shape(g.shape, kernel.shape, stride, padding) == x.shape
    if transposed_fits and _subpixel_applies(kernel.shape, stride, padding, kernel.shape[2]):
        grad_x = conv_transpose_subpixel(g, kernel)
    elif transposed_fits and _col2im_transposed_applies(kernel.shape, stride, padding,
                                                        kernel.shape[2]):
        grad_x = conv_transpose_col2im(g, kernel)
    elif stride == 1 and kernel.shape[2] <= COL2IM_MAX_INPUT_CHANNELS:
        grad_x = _col2im_input_gradient(g, kernel, padding)
    elif stride == 1 and _row_form_applies(g.shape, kernel.shape, padding):
        grad_x = _row_input_gradient(g, kernel, padding)
    else:
        return jax.vjp(lambda x, k: _strided_conv(x, k, stride, padding), x, kernel)[1](g)
    # The weight gradient is XLA's, as for nn.Conv.
    (grad_kernel,) = jax.vjp(lambda k: _strided_conv(x, k, stride, padding), kernel)[1](g)
    return grad_x, grad_kernel


strided_conv.defvjp(_strided_conv_fwd, _strided_conv_bwd)


def _apply_with_bias(module: nn.Module, conv: Callable, x: jax.Array,
                     kernel_shape: tuple[int, ...]) -> jax.Array:
    """``conv(x, kernel, stride, padding)`` (+ bias) with ``module``'s parameters ``kernel``
    and ``bias``, created in that order (as Flax's own convolutions do)."""
    kernel = module.param("kernel", module.kernel_init, kernel_shape)
    y = conv(x, kernel.astype(x.dtype), module.stride, module.padding)
    if module.use_bias:
        y = y + module.param("bias", module.bias_init, (module.features,)).astype(x.dtype)
    return y


class Conv(nn.Module):
    """``nn.Conv(features, (k, k), (s, s), padding=((p, p), (p, p)))`` computed by
    :func:`strided_conv` (the ``cpu`` form): the same parameters (and, named ``Conv``, the same
    parameter paths and initial values), the same forward convolution, a faster input gradient
    on XLA:CPU. The ``native`` form is that convolution with XLA's autodiff."""

    features: int
    kernel_size: int = 4
    stride: int = 2
    padding: int = 1
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        conv = strided_conv if resolved_form() == "cpu" else _strided_conv
        return _apply_with_bias(self, conv, x, (k, k, x.shape[-1], self.features))


class ConvTranspose(nn.Module):
    """``ConvTranspose2d(in, features, kernel_size, stride, padding)`` with a bias, NHWC:
    :func:`conv_transpose` (the ``cpu`` form) or :func:`native_conv_transpose` (``native``).

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
        conv = conv_transpose if resolved_form() == "cpu" else native_conv_transpose
        return _apply_with_bias(self, conv, x, (k, k, self.features, x.shape[-1]))


def flax_kernel_to_transpose_kernel(flax_kernel: jax.Array) -> jax.Array:
    """Maps an ``nn.ConvTranspose`` kernel ``[kh, kw, in, out]`` (``transpose_kernel=False``,
    padding ``k - 1 - p``) to this module's ``[kh, kw, out, in]`` layout: flip space, swap I/O."""
    return jnp.flip(flax_kernel, (0, 1)).transpose(0, 1, 3, 2)
