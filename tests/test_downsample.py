"""Block downscaling under masks."""
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

from astrobgopt.downsample import (BLOCK_NOISE_FACTOR, CROWDING_MIN_PIXELS,
                                   GAUSSIAN_LOWER_PERCENTILE, block_reduce_masked,
                                   nan_percentiles)


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


@pytest.mark.parametrize('with_nan, length', [(False, 90), (True, 90), (False, 5000),
                                              (True, 5000)])
def test_nan_percentiles_match_numpy_nanpercentile(with_nan, length):
    # The fast percentiles (a sort, or a partition for long rows without
    # NaN) must be numpy's linear-method ones, rows without a value included.
    rng = np.random.default_rng(3)
    values = rng.normal(size=(4, 6, 2, length))
    if with_nan:
        values[values > 1.2] = np.nan
        values[0, 0, 0] = np.nan
    percentiles = (GAUSSIAN_LOWER_PERCENTILE, 50, 99)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        expected = np.nanpercentile(values, percentiles, axis=-1)
    for ours, theirs in zip(nan_percentiles(values, percentiles), expected):
        assert_allclose(ours, theirs, rtol=1e-12, atol=0, equal_nan=True)
    assert np.isnan(nan_percentiles(values, (50,))[0][0, 0, 0]) == with_nan


def test_clipped_mean_is_as_precise_as_the_mean_and_as_robust_as_the_median():
    rng = np.random.default_rng(4)
    factor = 12
    noise = rng.normal(size=(120 * factor, 120 * factor))
    usable = np.ones(noise.shape, dtype=np.float32)
    scatter = {func: np.std(block_reduce_masked(noise, usable, factor, func=func).values)
               * factor for func in ('mean', 'median', 'clipped_mean')}
    # On pure noise: the noise factors the extended-object threshold uses.
    for func, value in scatter.items():
        assert value == pytest.approx(BLOCK_NOISE_FACTOR[func], rel=0.06)
    # A bright star in every block (3 pixels at 50 sigma) moves the mean by
    # 1 sigma, the clipped mean not at all.
    stars = noise.copy()
    stars[::factor, ::factor] += 50
    stars[1::factor, ::factor] += 50
    stars[::factor, 1::factor] += 50
    mean = block_reduce_masked(stars, usable, factor, func='mean').values
    clipped = block_reduce_masked(stars, usable, factor, func='clipped_mean').values
    assert np.mean(mean) == pytest.approx(150 / factor**2, abs=0.03)
    assert abs(np.mean(clipped)) < 0.03


def test_clipped_mean_ignores_masked_pixels_and_weights_the_rest():
    data = np.zeros((4, 4))
    data[0, 0] = np.nan  # masked
    data[0, 1] = 4.0  # half weight
    data[1, 0] = 1e6  # clipped
    data[1, 1] = -2.0
    weights = np.ones((4, 4))
    weights[0, 0] = 0
    weights[0, 1] = 0.5
    # Block (0, 0): median of (4, 1e6, -2) is 4, lower width 4 - (-2 + 6 * 0.317)
    # ~ 4.1: 1e6 is clipped, the weighted mean of 4 (weight 0.5) and -2 is 0.
    samples = block_reduce_masked(data, weights, 2, func='clipped_mean')
    assert_allclose(samples.values[0, 0, 0], 0.0, atol=1e-12)
    assert_allclose(samples.values[1:, 1:, 0], 0.0)


def test_estimator_fits_clipped_mean_blocks():
    # End to end (extended-object masking included, whose threshold uses the
    # statistic's noise factor): within the median's accuracy on a starry
    # frame with a trail (0.03 to 0.09 sigma over three seeds at this size).
    from astrobgopt import SplineOptBackground
    from astrobgopt.validation import error_rms, make_scene

    scene = make_scene('satellite_trail', size=(300, 450))
    result = SplineOptBackground(downscale_func='clipped_mean')(scene.data)
    assert result.meta['downscale_func'] == 'clipped_mean'
    assert error_rms(result.background, scene.background) < 0.15 * scene.noise_sigma


def test_pixel_rows_give_each_pixel_its_blocks_value():
    samples = block_reduce_masked(np.zeros((23, 31)), np.ones((23, 31)), 5)
    block_map = np.arange(35).reshape(5, 7)
    full = block_map[np.arange(23)[:, None] // 5, np.arange(31)[None, :] // 5]
    for start, stop in ((0, 23), (3, 4), (4, 16), (20, 23), (10, 15)):
        np.testing.assert_array_equal(samples.pixel_rows(block_map, start, stop, 31),
                                      full[start:stop])


def _faint_star_light(rng, shape, density):
    """Light of faint stars (3-pixel Gaussians, peaks 0.3 to 30 sigma), ``density`` per pixel."""
    from scipy.ndimage import gaussian_filter

    points = np.zeros(shape)
    n_stars = int(density * points.size)
    peaks = np.minimum(0.3 * (1 - rng.random(n_stars)) ** -1.5, 30)
    np.add.at(points, (rng.integers(0, shape[0], n_stars), rng.integers(0, shape[1], n_stars)),
              peaks * 2 * np.pi * 1.3 ** 2)
    return gaussian_filter(points, 1.3)


def test_crowding_tells_a_crowded_field_from_noise_and_few_stars():
    rng = np.random.default_rng(5)
    shape, factor = (600, 600), 12
    usable = np.ones(shape, dtype=np.float32)
    noise = rng.normal(size=shape)
    few_stars = noise + _faint_star_light(rng, shape, 0.001)
    crowded = noise + _faint_star_light(rng, shape, 0.05)
    measured = {name: block_reduce_masked(image, usable, factor).crowding[0]
                for name, image in (('noise', noise), ('few', few_stars),
                                    ('crowded', crowded))}
    assert abs(measured['noise']) < 0.03
    assert measured['few'] < 0.1  # below CROWDING_ONSET: the blocks stay as they are
    assert measured['crowded'] > 0.4  # CROWDING_FULL: lowered fully
    # Blocks too small to measure a skew, or means, have none.
    small = int(np.sqrt(CROWDING_MIN_PIXELS)) - 1
    assert np.isnan(block_reduce_masked(crowded, usable, small).crowding[0])
    assert np.isnan(block_reduce_masked(crowded, usable, factor, func='mean').crowding[0])


def test_crowding_correction_removes_most_of_the_faint_stars_bias():
    rng = np.random.default_rng(6)
    shape, factor = (600, 900), 12
    usable = np.ones(shape, dtype=np.float32)
    sky = 10.0
    crowded = sky + rng.normal(size=shape) + _faint_star_light(rng, shape, 0.05)
    blocks = block_reduce_masked(crowded, usable, factor)
    corrected = blocks.crowding_corrected()
    bias = np.median(blocks.values) - sky
    corrected_bias = np.median(corrected.values) - sky
    assert bias > 0.5  # the faint stars lift the medians
    assert abs(corrected_bias) < bias / 4
    # A frame of few stars is left as it is.
    few = block_reduce_masked(sky + rng.normal(size=shape) + _faint_star_light(rng, shape, 0.001),
                              usable, factor)
    assert few.crowding_corrected() is few
