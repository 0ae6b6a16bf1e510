"""Tests of the residual RMS versus scale of astrobgopt.validation."""

import numpy as np
import pytest

from astrobgopt.validation import residual_rms_vs_scale, rms_ratio_to_perfect

WIDTHS = [1, 2, 4, 8, 16, 32]


@pytest.fixture(scope='module')
def unit_noise():
    return np.random.default_rng(7).normal(size=(1600, 1600))


def test_white_noise_falls_as_one_over_width(unit_noise):
    rms = residual_rms_vs_scale(unit_noise, None, WIDTHS)
    # Width 32 leaves ~2400 blocks: the standard deviation is good to ~1.5%.
    np.testing.assert_allclose(rms * np.array(WIDTHS), 1.0, rtol=0.1)


def test_masked_and_border_pixels_are_left_out(unit_noise):
    noise = unit_noise[:400, :400].copy()
    mask = np.zeros(noise.shape, dtype=bool)
    mask[100:140, 50:300] = True
    clean = residual_rms_vs_scale(noise, mask, [4, 10])
    noise[mask] = 1e6  # a source under the mask
    noise[:2, :] = 1e6  # inside the width/2 border for both widths
    noise[:, -2:] = 1e6
    np.testing.assert_array_equal(residual_rms_vs_scale(noise, mask, [4, 10]), clean)
    assert np.all(clean < 1)


def test_block_means_of_a_known_pattern():
    # Columns alternate 0/1 in pairs, so 2-wide blocks average to 0 or 1 and 4-wide
    # blocks all to 0.5. Width 2 drops the first block row and column (the 1-pixel
    # border): 19 block columns remain, 10 of ones and 9 of zeros.
    residual = np.tile(np.repeat([0.0, 1.0], 2), (40, 10))
    rms = residual_rms_vs_scale(residual, None, [2, 4])
    np.testing.assert_allclose(rms, [np.sqrt(10 * 9) / 19, 0.0], atol=1e-12)


def test_too_few_blocks_give_nan():
    assert np.isnan(residual_rms_vs_scale(np.ones((10, 10)), None, [8])[0])


def test_ratio_to_perfect(unit_noise):
    noise = unit_noise[:500, :500]
    mask = np.zeros(noise.shape, dtype=bool)
    mask[::37, ::41] = True
    np.testing.assert_allclose(rms_ratio_to_perfect(2 * noise, mask, [3, 5, 9],
                                                    noise_residual=noise), 2.0)
    # A leftover smooth ramp grows relative to the noise with the block width.
    ramp = noise + np.linspace(0, 0.5, 500)[None, :]
    ratio = rms_ratio_to_perfect(ramp, mask, [3, 9, 27], noise_residual=noise)
    assert np.all(np.diff(ratio) > 0) and ratio[0] > 1


@pytest.mark.parametrize('args, error, match', [
    ((np.zeros((20, 20)), None, [0, 2]), ValueError, '>= 1'),
    ((np.zeros((20, 20)), None, [2.5]), TypeError, 'integers'),
    ((np.zeros((20, 20)), np.zeros((20, 10), dtype=bool), [2]), ValueError, 'shape'),
    ((np.zeros(20), None, [2]), ValueError, '2-D'),
    ((np.zeros((20, 20)), None, []), ValueError, 'non-empty'),
])
def test_rejects_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        residual_rms_vs_scale(*args)


def test_ratio_rejects_mismatched_noise():
    with pytest.raises(ValueError, match='noise_residual'):
        rms_ratio_to_perfect(np.zeros((20, 20)), None, [2], noise_residual=np.zeros((10, 10)))
