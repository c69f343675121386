"""The fast transposed convolution equals Flax's nn.ConvTranspose (outputs and gradients)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.models import layers
from tests.helpers import normal


@pytest.mark.parametrize("kernel,stride,padding,hw,cin,cout", [
    (4, 2, 1, 7, 5, 6),    # the thesis / DCGAN upsampling layer: 7 -> 14
    (4, 2, 1, 3, 3, 1),
    (5, 2, 2, 4, 2, 3),    # odd kernel: 4 -> 7
    (3, 1, 1, 5, 2, 2),    # stride 1 'same'
])
def test_matches_flax_conv_transpose(kernel, stride, padding, hw, cin, cout):
    x = normal(0, (2, hw, hw, cin))
    flax_kernel = normal(1, (kernel, kernel, cin, cout))
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

    cot = normal(2, y_plain.shape)
    grads_plain = jax.grad(lambda x, k: jnp.sum(f_plain(x, k) * cot), (0, 1))(x, flax_kernel)
    grads_fast = jax.grad(lambda x, k: jnp.sum(f_fast(x, k) * cot), (0, 1))(x, flax_kernel)
    for gp, gf in zip(grads_plain, grads_fast):
        np.testing.assert_allclose(gf, gp, rtol=1e-4, atol=1e-4)


def test_is_the_adjoint_of_the_strided_convolution():
    # <A^T x, y> == <x, A y> for the strided conv A: the defining property of ConvTranspose2d.
    x, y, k = normal(3, (1, 7, 7, 4)), normal(4, (1, 14, 14, 3)), normal(5, (4, 4, 3, 4))
    lhs = jnp.vdot(layers.conv_transpose(x, k, 2, 1), y)
    rhs = jnp.vdot(x, layers._strided_conv(y, k, 2, 1))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-5)


def test_module_parameters_and_shape():
    module = layers.ConvTranspose(8, 4, 2, 1)
    variables = module.init(jax.random.key(0), jnp.zeros((1, 7, 7, 16)))
    assert variables["params"]["kernel"].shape == (4, 4, 8, 16)
    assert variables["params"]["bias"].shape == (8,)
    assert module.apply(variables, jnp.ones((3, 7, 7, 16))).shape == (3, 14, 14, 8)


def _dilated_transpose(x, kernel, stride, padding):
    """The reference value of conv_transpose: linear_transpose of the strided convolution
    (XLA's input-dilated convolution)."""
    shape = jax.ShapeDtypeStruct(layers._output_shape(x.shape, kernel.shape, stride, padding),
                                 x.dtype)
    return jax.linear_transpose(lambda y: layers._strided_conv(y, kernel, stride, padding),
                                shape)(x)[0]


@pytest.mark.parametrize("hw,cin,cout", [(7, 5, 16), (4, 3, 17), (1, 4, 16), (8, 2, 32)])
def test_subpixel_equals_dilated_transpose(hw, cin, cout):
    """The k=4, s=2, p=1 sub-pixel form (four phase convolutions, interleaved) against XLA's
    input-dilated transposed convolution, and the layer's gradients through it."""
    x = normal(70, (2, hw, hw, cin))
    kernel = normal(71, (4, 4, cout, cin))
    assert layers._subpixel_applies(kernel.shape, 2, 1, cout)
    y = layers.conv_transpose_subpixel(x, kernel)
    assert y.shape == (2, 2 * hw, 2 * hw, cout)
    np.testing.assert_allclose(y, _dilated_transpose(x, kernel, 2, 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layers.conv_transpose(x, kernel, 2, 1), y, rtol=0, atol=0)

    cot = normal(72, y.shape)
    fast = jax.grad(lambda x, k: jnp.sum(layers.conv_transpose(x, k, 2, 1) * cot), (0, 1))
    ref = jax.grad(lambda x, k: jnp.sum(_dilated_transpose(x, k, 2, 1) * cot), (0, 1))
    for a, b in zip(fast(x, kernel), ref(x, kernel)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_row_form_only_where_xla_would_mostly_pad():
    # (cotangent shape, kernel shape, padding): the thesis D's second layer; a 12x12 map with a
    # 5x5 kernel; a 30x30 map with a 3x3 kernel; "same" padding.
    assert layers._row_form_applies((128, 8, 8, 64), (5, 5, 32, 64), 0)
    assert layers._row_form_applies((64, 12, 12, 128), (5, 5, 128, 128), 0)
    assert not layers._row_form_applies((64, 30, 30, 64), (3, 3, 64, 64), 0)
    assert not layers._row_form_applies((64, 16, 16, 128), (5, 5, 128, 128), 2)


@pytest.mark.parametrize("hw,cin,cout", [(7, 5, 1), (4, 3, 3), (1, 4, 2), (8, 2, 4)])
def test_col2im_transposed_equals_dilated_transpose(hw, cin, cout):
    """The image layers' col2im form (one matmul, then each output phase's four shifted tap
    patches added) against XLA's input-dilated transposed convolution, and the layer's
    gradients through it."""
    x = normal(80, (2, hw, hw, cin))
    kernel = normal(81, (4, 4, cout, cin))
    assert layers._col2im_transposed_applies(kernel.shape, 2, 1, cout)
    np.testing.assert_allclose(layers.conv_transpose_col2im(x, kernel),
                               _dilated_transpose(x, kernel, 2, 1), rtol=1e-5, atol=1e-5)
    cot = normal(82, (2, 2 * hw, 2 * hw, cout))
    fast = jax.grad(lambda x, k: jnp.sum(layers.conv_transpose(x, k, 2, 1) * cot), (0, 1))
    ref = jax.grad(lambda x, k: jnp.sum(_dilated_transpose(x, k, 2, 1) * cot), (0, 1))
    for a, b in zip(fast(x, kernel), ref(x, kernel)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_col2im_transposed_only_for_the_image_layers():
    assert layers._col2im_transposed_applies((4, 4, 3, 64), 2, 1, 3)
    assert layers._col2im_transposed_applies((4, 4, 1, 64), 2, 1, 1)
    assert not layers._col2im_transposed_applies((4, 4, 5, 64), 2, 1, 5)
    assert not layers._col2im_transposed_applies((3, 3, 1, 64), 2, 1, 1)
    assert not layers._col2im_transposed_applies((4, 4, 1, 64), 1, 1, 1)


def test_subpixel_only_where_it_is_faster():
    # The image layers (1 or 3 outputs: col2im form) and other kernels do not take it.
    assert not layers._subpixel_applies((4, 4, 3, 64), 2, 1, 3)
    assert not layers._subpixel_applies((4, 4, 1, 64), 2, 1, 1)
    assert not layers._subpixel_applies((3, 3, 64, 64), 2, 1, 64)
    assert not layers._subpixel_applies((4, 4, 64, 64), 1, 1, 64)
    assert layers._subpixel_applies((4, 4, 64, 128), 2, 1, 64)


@pytest.mark.parametrize("hw,kernel,stride,padding,cin,features", [
    (8, 4, 2, 1, 16, 8),    # DCGAN: k=4, s=2, p=1, even map: the sub-pixel input gradient
    (14, 4, 2, 1, 5, 32),   # 5 input channels: XLA's own input gradient
    (8, 4, 2, 1, 3, 16),    # the RGB input layer: the col2im transposed input gradient
    (7, 4, 2, 1, 3, 16),    # odd map: A^T g would be 6x6, so XLA's own input gradient
    (8, 4, 2, 1, 1, 4),     # 1 channel (DCGAN-28's input layer): col2im
    (7, 3, 2, 1, 4, 16),    # DCGAN-28's 3x3 layer
    (12, 5, 1, 0, 1, 8),    # the thesis D's first layer: the col2im input gradient
    (9, 3, 1, 2, 3, 5),     # stride 1, padded, 3 channels: col2im, padding cropped
    (9, 3, 1, 1, 5, 4),     # 5 input channels, "same" padding: XLA's own input gradient
    (12, 5, 1, 0, 6, 8),    # the thesis D's second layer: the row form
    (6, 5, 1, 1, 6, 4),     # 4x4 cotangent, padded: the row form, padding cropped
])
def test_conv_matches_flax_conv(hw, kernel, stride, padding, cin, features):
    """layers.Conv is nn.Conv: same parameter paths and initial values, same output, and the
    same gradients (input gradient to float32 tolerance, weight gradient bit for bit)."""
    x = normal(30, (2, hw, hw, cin))
    fast = layers.Conv(features, kernel, stride, padding, use_bias=True)
    plain = nn.Conv(features, (kernel, kernel), (stride, stride),
                    padding=((padding, padding), (padding, padding)))
    variables = fast.init(jax.random.key(4), x)
    plain_variables = plain.init(jax.random.key(4), x)
    assert jax.tree.structure(variables) == jax.tree.structure(plain_variables)
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(plain_variables)):
        np.testing.assert_array_equal(a, b)
    variables = jax.tree.map(lambda v: v + 0.1, variables)  # a non-zero bias
    y = fast.apply(variables, x)
    np.testing.assert_array_equal(y, plain.apply(variables, x))

    cot = normal(31, y.shape)
    g_fast = jax.grad(lambda v, x: jnp.sum(fast.apply(v, x) * cot), (0, 1))(variables, x)
    g_plain = jax.grad(lambda v, x: jnp.sum(plain.apply(v, x) * cot), (0, 1))(variables, x)
    np.testing.assert_allclose(g_fast[1], g_plain[1], rtol=1e-4, atol=1e-4)
    for a, b in zip(jax.tree.leaves(g_fast[0]), jax.tree.leaves(g_plain[0])):
        np.testing.assert_array_equal(a, b)


def test_dcgan_discriminator_uses_the_fast_conv_with_flax_parameter_paths():
    from gan_jax.models import dcgan as dcgan_models
    d = dcgan_models.dcgan64_discriminator()
    variables = jax.eval_shape(d.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    assert sorted(variables["params"]) == [
        "BatchNorm_0", "BatchNorm_1", "BatchNorm_2", "Conv_0", "Conv_1", "Conv_2", "Conv_3",
        "Conv_4"]
    assert variables["params"]["Conv_1"]["kernel"].shape == (4, 4, 64, 128)


# --- The layer forms: XLA:CPU formulations ("cpu") vs XLA's own convolutions ("native") ---


def test_layer_form_resolution(monkeypatch):
    monkeypatch.delenv(layers.LAYERS_ENV, raising=False)
    assert layers.configured_form() == "auto"
    assert layers.resolved_form("cpu") == "cpu"
    assert layers.resolved_form("gpu") == layers.resolved_form("tpu") == "native"
    assert layers.resolved_form() == "cpu"  # this machine
    monkeypatch.setenv(layers.LAYERS_ENV, "native")
    assert layers.resolved_form("cpu") == "native"
    with layers.layer_form("cpu"):  # the flag wins over the variable
        assert layers.resolved_form("gpu") == "cpu"
        with layers.layer_form("auto"):  # "auto" forced defers to the variable
            assert layers.resolved_form("cpu") == "native"
    assert layers.resolved_form("tpu") == "native"
    monkeypatch.setenv(layers.LAYERS_ENV, "cudnn")
    with pytest.raises(ValueError, match=r"GAN_JAX_LAYERS='cudnn' .* valid: auto, cpu, native"):
        layers.configured_form()
    with pytest.raises(ValueError, match="valid: auto, cpu, native"):
        layers.set_layer_form("fast")


def _module_grads(module, x, form):
    """Output, parameter and input gradients of ``module`` under ``form``, plus whether the
    traced function holds a custom VJP (the CPU forms have one, the native ones do not)."""
    params = module.init(jax.random.key(0), x)
    with layers.layer_form(form):
        f = lambda p, x: module.apply(p, x)  # noqa: E731 (a fresh function: a fresh trace)
        y = f(params, x)
        cot = normal(7, y.shape)
        loss = lambda p, x: jnp.sum(f(p, x) * cot)  # noqa: E731
        grads = jax.grad(loss, (0, 1))(params, x)
        custom = "custom_vjp" in str(jax.make_jaxpr(loss)(params, x))
    return y, grads, custom


@pytest.mark.parametrize("module,shape", [
    (layers.ConvTranspose(32, 4, 2, 1), (2, 7, 7, 16)),   # sub-pixel form (>= 16 outputs)
    (layers.ConvTranspose(1, 4, 2, 1), (2, 14, 14, 8)),   # col2im form (image layer)
    (layers.ConvTranspose(3, 5, 2, 2), (2, 4, 4, 2)),     # generic adjoint
    (layers.Conv(8, 5, 1, 0), (2, 12, 12, 1)),            # col2im input gradient (thesis D 1)
    (layers.Conv(16, 5, 1, 0), (2, 8, 8, 8)),             # row-form input gradient (thesis D 2)
    (layers.Conv(16, 4, 2, 1), (2, 8, 8, 8)),             # sub-pixel input gradient (DCGAN D)
])
def test_native_form_is_the_same_function(module, shape):
    x = normal(6, shape)
    y_cpu, g_cpu, custom_cpu = _module_grads(module, x, "cpu")
    y_nat, g_nat, custom_nat = _module_grads(module, x, "native")
    assert custom_cpu and not custom_nat  # each path really ran
    np.testing.assert_allclose(y_nat, y_cpu, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(g_cpu), jax.tree.leaves(g_nat)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * float(np.abs(a).max()))


@pytest.mark.parametrize("arch", ["thesis", "dcgan"])
def test_architectures_have_one_parameter_tree_for_both_forms(arch):
    """A checkpoint trained in one form restores and computes the same images in the other."""
    from gan_jax.models.architectures import get_architecture

    a = get_architecture(arch)
    g = a.generator()
    z = normal(8, (2, 100 if arch == "dcgan" else 96))
    out = {}
    for form in ("cpu", "native"):
        with layers.layer_form(form):
            variables = g.init(jax.random.key(1), z, train=False)
            out[form] = (variables, g.apply(variables, z, train=False))
    assert jax.tree.structure(out["cpu"][0]) == jax.tree.structure(out["native"][0])
    for a_, b_ in zip(jax.tree.leaves(out["cpu"][0]), jax.tree.leaves(out["native"][0])):
        np.testing.assert_array_equal(a_, b_)  # same shapes and initial values
    np.testing.assert_allclose(out["native"][1], out["cpu"][1], rtol=1e-5, atol=1e-5)
