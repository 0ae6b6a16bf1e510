"""Tests of the source masks of astrobgopt.validation."""

import numpy as np
import pytest

from astrobgopt.validation import (dilate_mask, iterative_source_mask, make_sinc_blemish_scene,
                                   ring_median_filter, ring_median_mask)


@pytest.fixture(scope='module')
def scene():
    return make_sinc_blemish_scene((400, 400), n_blemishes=3, n_sources=200, seed=0)


def _centre_masked(mask, sources):
    x = np.rint(sources['x_mean']).astype(int)
    y = np.rint(sources['y_mean']).astype(int)
    return mask[y, x]


def test_ring_median_filter_ignores_a_compact_source():
    image = np.full((120, 130), 2.0)
    image[60:63, 70:73] = 50.0  # smaller than the ring's 15-pixel hole
    filtered = ring_median_filter(image)
    np.testing.assert_array_equal(filtered, 2.0)


def test_ring_median_filter_strips_match_a_single_call():
    image = np.random.default_rng(0).normal(size=(230, 170))
    np.testing.assert_array_equal(ring_median_filter(image, n_workers=3),
                                  ring_median_filter(image, n_workers=1))


def test_dilate_mask_grows_by_a_disc():
    mask = np.zeros((21, 21), dtype=bool)
    mask[10, 10] = True
    dilated = dilate_mask(mask, 2)
    rows, cols = np.nonzero(dilated)
    assert dilated.sum() == 13  # pixels within 2 of the centre: 1 + 4 + 4 + 4
    assert np.all(np.hypot(rows - 10, cols - 10) <= 2)
    np.testing.assert_array_equal(dilate_mask(mask, 0), mask)


def test_ring_median_mask_covers_bright_sources(scene):
    mask = ring_median_mask(scene.scene)
    bright = scene.sources['flux'] > 20
    assert _centre_masked(mask, scene.sources)[bright].mean() > 0.9
    assert 0.05 < mask.mean() < 0.4


def test_iterative_mask_covers_bright_sources_and_little_else(scene):
    mask = iterative_source_mask(scene.scene - scene.noiseless)
    bright = scene.sources['flux'] > 20
    assert _centre_masked(mask, scene.sources)[bright].mean() > 0.9
    assert mask.mean() < 0.4
    # Without sources only a small fraction of noise peaks is masked.
    noise_mask = iterative_source_mask(scene.sky - scene.noiseless)
    assert noise_mask.mean() < 0.03


def test_iterative_mask_keeps_the_given_mask(scene):
    given = np.zeros(scene.scene.shape, dtype=bool)
    given[:, :20] = True
    mask = iterative_source_mask(scene.scene - scene.noiseless, mask=given)
    assert mask[given].all()
    # Elsewhere the given mask only changes the noise statistics, and little.
    unconstrained = iterative_source_mask(scene.scene - scene.noiseless)
    assert np.mean(mask[~given] == unconstrained[~given]) > 0.99


def test_iterative_mask_single_scale_without_dilation():
    image = np.zeros((50, 50))
    image[20:23, 30:34] = 10.0  # a 12-pixel source on a noiseless background
    image += np.random.default_rng(1).normal(scale=0.1, size=image.shape)
    mask = iterative_source_mask(image, filter_fwhm=[1.0], tophat_size=[0], nsigma=5)
    assert mask[20:23, 30:34].all()
    assert mask.sum() < 40


@pytest.mark.parametrize('kwargs, error, match', [
    ({'filter_fwhm': (1, 3), 'tophat_size': (1,)}, ValueError, 'same length'),
    ({'mask': np.zeros((5, 5), dtype=bool)}, ValueError, 'shape'),
    ({'kernel_size': 4}, ValueError, 'odd'),
    ({'npixels': 0}, ValueError, 'npixels'),
])
def test_iterative_mask_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        iterative_source_mask(np.zeros((30, 30)), **kwargs)


def test_masks_reject_non_2d_input():
    with pytest.raises(ValueError, match='2-D'):
        ring_median_mask(np.zeros(100))
