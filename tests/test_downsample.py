"""Block downscaling under masks."""
import numpy as np
import pytest
from numpy.testing import assert_allclose

from astrobgopt.downsample import block_reduce_masked


def test_median_ignores_masked_pixels_and_handles_edges():
    rng = np.random.default_rng(2)
    data = rng.normal(size=(23, 31))
    weights = (rng.random(data.shape) > 0.3).astype(np.float32)
    weights[:5, :5] = 0  # one block fully masked
    samples = block_reduce_masked(data, weights, 5, func='median')
    assert samples.shape == (5, 7)
    for j in range(5):
        for i in range(7):
            block = data[5 * j:5 * j + 5, 5 * i:5 * i + 5]
            usable = weights[5 * j:5 * j + 5, 5 * i:5 * i + 5] > 0
            if usable.any():
                assert_allclose(samples.values[j, i, 0], np.median(block[usable]))
            else:
                assert np.isnan(samples.values[j, i, 0])
            assert_allclose(samples.usable_fraction[j, i], usable.sum() / 25)
    # Partial edge blocks sit at the centre of the pixels they cover.
    assert_allclose(samples.x[-1], (30 + 31 - 1) / 2)
    assert_allclose(samples.y[-1], (20 + 23 - 1) / 2)
    assert_allclose(samples.x[0], 2.0)


def test_mean_is_weighted_and_ignores_nan_under_zero_weight():
    data = np.arange(16, dtype=float).reshape(4, 4)
    data[0, 0] = np.nan
    weights = np.ones((4, 4))
    weights[0, 0] = 0
    weights[0, 1] = 0.5
    samples = block_reduce_masked(data, weights, 2, func='mean')
    expected = (0.5 * 1 + 4 + 5) / 2.5
    assert_allclose(samples.values[0, 0, 0], expected)
    assert_allclose(samples.usable_fraction[0, 0], 2.5 / 4)


def test_channels_and_points():
    data = np.stack([np.ones((6, 6)), 2 * np.ones((6, 6))], axis=-1)
    weights = np.ones((6, 6))
    weights[:3, :3] = 0
    samples = block_reduce_masked(data, weights, 3)
    points, values, block_weights = samples.points()
    assert values.shape == (3, 2) and points.shape == (3, 2)
    assert_allclose(values, [[1, 2]] * 3)
    assert_allclose(block_weights, 1)


def test_unknown_function():
    with pytest.raises(ValueError, match='median'):
        block_reduce_masked(np.ones((4, 4)), np.ones((4, 4)), 2, func='mode')
