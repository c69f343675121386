"""Figures: grid layout and value mapping, curve plot written as a real PNG."""

import matplotlib.image
import numpy as np
import pytest

from gan_jax import plotting


def test_image_grid_layout_and_scaling():
    images = np.stack([np.full((2, 3, 1), v, np.float32) for v in (-1.0, 0.0, 1.0)])
    grid = plotting.image_grid(images, ncols=2, pad=1)
    # 2 rows x 2 cols of 2x3 tiles with 1 px of white padding around each.
    assert grid.shape == (2 * 3 + 1, 2 * 4 + 1, 1)
    np.testing.assert_array_equal(grid[1:3, 1:4, 0], 0.0)   # -1 -> black
    np.testing.assert_array_equal(grid[1:3, 5:8, 0], 0.5)   # 0 -> grey
    np.testing.assert_array_equal(grid[4:6, 1:4, 0], 1.0)   # 1 -> white
    np.testing.assert_array_equal(grid[4:6, 5:8, 0], 1.0)   # empty slot stays white
    # 10 images: ceil(sqrt(10)) = 4 columns, 3 rows.
    assert plotting.image_grid(np.zeros((10, 4, 4)), pad=0).shape == (12, 16, 1)
    with pytest.raises(ValueError, match=r"expected images \[N, H, W, C\]"):
        plotting.image_grid(np.zeros((4, 4)))


def test_save_image_grid_writes_png(tmp_path):
    path = tmp_path / "g.png"
    plotting.save_image_grid(np.linspace(-1, 1, 4 * 28 * 28).reshape(4, 28, 28, 1), str(path))
    png = matplotlib.image.imread(str(path))
    assert png.shape[:2] == (2 * 30 + 2, 2 * 30 + 2)


def test_plot_curves_writes_png(tmp_path):
    rows = [{"step": s, "d_real": 0.6, "d_fake": 0.4, "d_loss": 1.2, "g_loss": 0.9}
            for s in range(1, 60)]
    path = tmp_path / "curves.png"
    plotting.plot_curves(rows, str(path))
    assert matplotlib.image.imread(str(path)).shape == (400, 1100, 4)
