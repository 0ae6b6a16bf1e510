"""SplineOptBackground under odd and bad input (issue 12): dtypes, masked arrays, early errors."""
import astropy.units as u
import numpy as np
import pytest

from astrobgopt import SplineOptBackground
from astrobgopt.prepare import working_dtype

SHAPE = (60, 90)
NOISE = 0.01


def smooth_sky(pedestal, *, noise=NOISE, seed=3):
    """A tilted plane with a gentle bump on ``pedestal``, and Gaussian noise."""
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    truth = 0.5 * xx / SHAPE[1] + 0.3 * yy / SHAPE[0] + 0.2 * np.exp(
        -((xx - 40) ** 2 + (yy - 30) ** 2) / (2 * 30 ** 2))
    truth = pedestal + truth
    rng = np.random.default_rng(seed)
    return truth, truth + rng.normal(0, noise, SHAPE)


def quick(**options):
    options = {'n_points': 16, 'downscale_factor': 5, 'mask_extended': False,
               'progress': False, **options}
    return SplineOptBackground(**options)


@pytest.mark.parametrize('dtype, expected', [
    ('>f8', np.float64), ('<f8', np.float64), ('>f4', np.float32), (np.float16, np.float32),
    (np.int16, np.float32), (np.uint16, np.float32), (np.uint8, np.float32), (bool, np.float32),
    (np.int32, np.float64), (np.uint32, np.float64), (np.int64, np.float64)])
def test_working_dtype_rule(dtype, expected):
    assert working_dtype(dtype) == expected
    assert working_dtype(dtype).isnative


def test_big_endian_float64_gives_native_float64():
    _, data = smooth_sky(100.0)
    result = quick()(data.astype('>f8'))
    assert result.background.dtype == np.float64
    assert result.background.dtype.isnative


def test_float32_stays_float32():
    _, data = smooth_sky(100.0, noise=0.05)
    assert quick()(data.astype(np.float32)).background.dtype == np.float32


def test_large_pedestal_in_float64_is_as_accurate_as_the_noise():
    # A float32 evaluation quantizes a model at 1e7 to steps of 1: two values.
    truth, data = smooth_sky(1e7)
    background = quick()(data).background
    assert background.dtype == np.float64
    error = background - truth
    assert np.sqrt(np.mean(error ** 2)) < 0.3 * NOISE


@pytest.mark.parametrize('dtype, pedestal, noise', [
    (np.int32, 1e9, 3.0), (np.int64, 2.0 ** 40, 3.0)])
def test_large_integers_give_float64_to_the_noise(dtype, pedestal, noise):
    truth, data = smooth_sky(pedestal, noise=noise)
    truth = pedestal + 300 * (truth - pedestal)  # a gradient of some 300 counts
    data = np.round(truth + np.random.default_rng(1).normal(0, noise, SHAPE)).astype(dtype)
    background = quick()(data).background
    assert background.dtype == np.float64
    assert np.sqrt(np.mean((background - truth) ** 2)) < 0.5 * noise


def test_masked_array_mask_is_used_with_mask():
    truth, data = smooth_sky(100.0, noise=0.05)
    bright = np.zeros(SHAPE, dtype=bool)
    bright[10:30, 20:50] = True
    given = np.zeros(SHAPE, dtype=bool)
    given[40:55, 60:80] = True
    data = data.copy()
    data[bright] += 50
    data[given] = -50
    masked = np.ma.MaskedArray(data, mask=bright)
    prepared = quick().prepare(masked, mask=given)
    assert np.all(prepared.usable_fraction[bright | given] == 0)
    assert np.all(prepared.usable_fraction[~(bright | given)] == 1)
    background = quick()(masked, mask=given).background
    assert np.abs(background - truth).max() < 0.1


def test_nan_under_the_mask_of_a_masked_array():
    truth, data = smooth_sky(100.0, noise=0.05)
    data = data.copy()
    hidden = np.zeros(SHAPE, dtype=bool)
    hidden[5:15, 5:25] = True
    data[hidden] = np.nan
    background = quick()(np.ma.MaskedArray(data, mask=hidden)).background
    assert np.all(np.isfinite(background))
    assert np.abs(background - truth).max() < 0.1


def test_colour_masked_array_masks_a_pixel_masked_in_any_channel():
    _, data = smooth_sky(100.0, noise=0.05)
    cube = np.stack([data, data, data])
    mask = np.zeros(cube.shape, dtype=bool)
    mask[1, 3, 4] = True
    prepared = quick().prepare(np.ma.MaskedArray(cube, mask=mask), channel_axis=0)
    assert prepared.usable_fraction[3, 4] == 0
    assert np.count_nonzero(prepared.usable_fraction == 0) == 1


def test_too_many_control_points_fail_before_the_design(monkeypatch):
    import astrobgopt.extended
    import astrobgopt.optimize

    def forbidden(*args, **kwargs):
        raise AssertionError('the design was built before n_points was checked')

    monkeypatch.setattr(astrobgopt.optimize, 'make_design', forbidden)
    monkeypatch.setattr(astrobgopt.extended, 'mask_extended_objects', forbidden, raising=False)
    _, data = smooth_sky(100.0)
    estimator = SplineOptBackground(n_points=10000, downscale_factor=5, progress=False)
    with pytest.raises(ValueError, match='only 216 usable samples for n_points=10000 control '
                       'points, which need at least 10003: use fewer control points'):
        estimator(data)


@pytest.mark.parametrize('shape', [(1, 50), (50, 1), (1, 1)])
def test_single_row_or_column_is_too_small_whatever_the_factor(shape):
    with pytest.raises(ValueError, match='at least 2 pixels on each side') as info:
        quick(downscale_factor=1)(np.ones(shape))
    assert 'smaller factor' not in str(info.value)
    with pytest.raises(ValueError, match='at least 2 pixels on each side'):
        SplineOptBackground(progress=False)(np.ones(shape))


def test_too_large_factor_names_the_largest_that_works():
    with pytest.raises(ValueError, match='use a factor of at most 10'):
        quick(downscale_factor=11)(np.ones((20, 30)))


@pytest.mark.parametrize('options, error, message', [
    ({'seed': 2 ** 63}, ValueError, r'seed must be in \[0, 2147483647\]'),
    ({'seed': 2 ** 31}, ValueError, r'seed must be in \[0, 2147483647\]'),
    ({'seed': -1}, ValueError, r'seed must be in'),
    ({'threshold_max': '100'}, TypeError, 'threshold_max must be a number or a scalar Quantity'),
    ({'threshold_min': [1, 2]}, TypeError, 'threshold_min must be a number'),
    ({'threshold_min': True}, TypeError, 'threshold_min must be a number'),
    ({'threshold_max': np.nan}, ValueError, 'not NaN'),
    ({'smoothing': np.nan}, ValueError, 'smoothing must be a finite number >= 0'),
    ({'alpha': -1}, ValueError, 'alpha must be a finite number >= 0'),
    ({'alpha': 'high'}, TypeError, 'alpha must be a number')])
def test_bad_seed_and_thresholds_are_refused_on_creation(options, error, message):
    with pytest.raises(error, match=message):
        SplineOptBackground(**options)


def test_largest_seed_and_quantity_thresholds_are_accepted():
    _, data = smooth_sky(100.0, noise=0.05)
    result = quick(seed=2 ** 31 - 1, threshold_max=np.float32(1e6))(data)
    assert np.all(np.isfinite(result.background))
    SplineOptBackground(threshold_min=3 * u.adu, threshold_max=np.int64(5))
