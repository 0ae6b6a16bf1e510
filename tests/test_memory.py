"""The memory-saving paths of the frame pipeline give the results of the plain ones."""
import numpy as np
import pytest
from astropy.stats import mad_std
from numpy.testing import assert_allclose, assert_array_equal

import astrobgopt.downsample as downsample
from astrobgopt.downsample import block_reduce_masked
from astrobgopt.frame import _residual_statistics


@pytest.mark.parametrize('func', ['median', 'mean'])
@pytest.mark.parametrize('shape, factor', [((97, 83, 2), 5), ((60, 40, 1), 4)])
def test_block_reduction_in_strips_equals_the_whole(monkeypatch, func, shape, factor):
    rng = np.random.default_rng(5)
    data = rng.normal(size=shape).astype(np.float32)
    usable = rng.uniform(-0.5, 1, shape[:2]).clip(0, 1).astype(np.float32)
    whole = block_reduce_masked(data, usable, factor, func=func)
    # Strips of a single block row, and of three (with a short last strip).
    for pixels in (1, 3 * factor * factor * shape[1]):
        monkeypatch.setattr(downsample, '_STRIP_PIXELS', pixels)
        strips = block_reduce_masked(data, usable, factor, func=func)
        assert_array_equal(strips.values, whole.values)
        assert_array_equal(strips.usable_fraction, whole.usable_fraction)


@pytest.mark.parametrize('with_nan', [False, True])
def test_residual_statistics_match_the_plain_formulas(with_nan):
    rng = np.random.default_rng(6)
    corrected = rng.normal(3, 0.5, (80, 120, 3))
    if with_nan:
        corrected[5:9, 10:20, 1] = np.nan
    finite = np.all(np.isfinite(corrected), axis=-1)
    expected_median = np.median(corrected[finite], axis=0)
    expected_noise = mad_std(corrected[finite], axis=0)
    statistics = _residual_statistics(corrected.copy(), 8)
    assert_allclose(statistics['median'], expected_median, rtol=1e-12)
    assert_allclose(statistics['noise'], expected_noise, rtol=1e-12)
    assert statistics['large_scale_rms'].shape == (3,)
    assert np.all(statistics['large_scale_rms'] < 0.5 / 8 * 2)


def test_an_unmasked_image_costs_no_memory_for_its_usable_fraction():
    # A full-size float32 map of ones stayed with every result: a third of
    # a fit's resident peak beyond its outputs (3.0-3.2x the input at
    # 2000 x 3000, 2.4-2.5x without it).
    from astrobgopt import SplineOptBackground
    from astrobgopt.datasets import make_light_pollution_sky

    image = make_light_pollution_sky((200, 300), seed=2).image
    estimator = SplineOptBackground(n_points=16)
    prepared = estimator.prepare(image)
    assert prepared.usable_fraction.strides == (0, 0)
    assert not prepared.usable_fraction.flags.writeable
    assert_array_equal(prepared.usable_fraction, 1)
    # The same fit as with a real map of ones.
    real = prepared._replace(usable_fraction=np.ones(image.shape, np.float32))

    def background(prepared):
        samples = estimator.sample(prepared)
        return estimator.result(prepared, samples, estimator.fit(samples)).background

    assert_array_equal(background(prepared), background(real))
    # Masked pixels still count as masked.
    mask = np.zeros(image.shape, dtype=bool)
    mask[:20] = True
    assert_array_equal(estimator.prepare(image, mask=mask).usable_fraction[:20], 0)
