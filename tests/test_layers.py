"""The fast transposed convolution equals Flax's nn.ConvTranspose (outputs and gradients)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import layers


@pytest.mark.parametrize("kernel,stride,padding,hw,cin,cout", [
    (4, 2, 1, 7, 5, 6),    # the thesis / DCGAN upsampling layer: 7 -> 14
    (4, 2, 1, 3, 3, 1),
    (5, 2, 2, 4, 2, 3),    # odd kernel: 4 -> 7
    (3, 1, 1, 5, 2, 2),    # stride 1 'same'
])
def test_matches_flax_conv_transpose(kernel, stride, padding, hw, cin, cout):
    kx, kk, kg = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (2, hw, hw, cin))
    flax_kernel = jax.random.normal(kk, (kernel, kernel, cin, cout))
    pad = kernel - 1 - padding
    plain = nn.ConvTranspose(cout, (kernel, kernel), (stride, stride), padding=((pad, pad),) * 2,
                             use_bias=False)

    def f_plain(x, k):
        return plain.apply({"params": {"kernel": k}}, x)

    def f_fast(x, k):
        return layers.conv_transpose(x, layers.flax_kernel_to_transpose_kernel(k), stride, padding)

    y_plain, y_fast = f_plain(x, flax_kernel), f_fast(x, flax_kernel)
    expected_hw = (hw - 1) * stride - 2 * padding + kernel
    assert y_fast.shape == y_plain.shape == (2, expected_hw, expected_hw, cout)
    np.testing.assert_allclose(y_fast, y_plain, rtol=1e-5, atol=1e-5)

    cot = jax.random.normal(kg, y_plain.shape)
    grads_plain = jax.grad(lambda x, k: jnp.sum(f_plain(x, k) * cot), (0, 1))(x, flax_kernel)
    grads_fast = jax.grad(lambda x, k: jnp.sum(f_fast(x, k) * cot), (0, 1))(x, flax_kernel)
    for gp, gf in zip(grads_plain, grads_fast):
        np.testing.assert_allclose(gf, gp, rtol=1e-4, atol=1e-4)


def test_is_the_adjoint_of_the_strided_convolution():
    # <A^T x, y> == <x, A y> for the strided conv A: the defining property of ConvTranspose2d.
    kx, ky, kk = jax.random.split(jax.random.key(1), 3)
    x = jax.random.normal(kx, (1, 7, 7, 4), jnp.float32)
    y = jax.random.normal(ky, (1, 14, 14, 3), jnp.float32)
    k = jax.random.normal(kk, (4, 4, 3, 4), jnp.float32)
    lhs = jnp.vdot(layers.conv_transpose(x, k, 2, 1), y)
    rhs = jnp.vdot(x, layers._strided_conv(y, k, 2, 1))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-5)


def test_module_parameters_and_shape():
    module = layers.ConvTranspose(8, 4, 2, 1)
    variables = module.init(jax.random.key(0), jnp.zeros((1, 7, 7, 16)))
    assert variables["params"]["kernel"].shape == (4, 4, 8, 16)
    assert variables["params"]["bias"].shape == (8,)
    assert module.apply(variables, jnp.ones((3, 7, 7, 16))).shape == (3, 14, 14, 8)


@pytest.mark.parametrize("hw,cin,cout", [(7, 5, 6), (4, 3, 2), (1, 4, 3)])
def test_phase_split_equals_adjoint_formulation(hw, cin, cout):
    """The k=4, s=2, p=1 fast path (stride-1 conv + interleave) against the adjoint path."""
    kx, kk, kg = jax.random.split(jax.random.key(7), 3)
    x = jax.random.normal(kx, (2, hw, hw, cin))
    kernel = jax.random.normal(kk, (4, 4, cout, cin))
    cot = jax.random.normal(kg, (2, 2 * hw, 2 * hw, cout))
    phase = lambda x, k: jnp.sum(layers._conv_transpose_phase_split(x, k) * cot)  # noqa: E731
    adjoint = lambda x, k: jnp.sum(layers.conv_transpose_adjoint(x, k, 2, 1) * cot)  # noqa: E731
    np.testing.assert_allclose(layers._conv_transpose_phase_split(x, kernel),
                               layers.conv_transpose_adjoint(x, kernel, 2, 1), rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.grad(phase, (0, 1))(x, kernel), jax.grad(adjoint, (0, 1))(x, kernel)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
