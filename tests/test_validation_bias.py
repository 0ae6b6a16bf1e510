"""Tests of the bias test of astrobgopt.validation."""

import numpy as np
import pytest
from astropy.table import Table
from scipy.ndimage import gaussian_filter

from astrobgopt.validation import bias_test, dilate_mask

SHAPE = (400, 400)


def _clumpy_mask(seed, n_clumps=300):
    """Random discs of radius 4, like a source mask (about 9% of the pixels)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(SHAPE, dtype=bool)
    mask[rng.integers(0, SHAPE[0], n_clumps), rng.integers(0, SHAPE[1], n_clumps)] = True
    return dilate_mask(mask, 4)


def _truth():
    row, col = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    return 1.0 + row / SHAPE[0] + 0.3 * np.sin(col / 40.0)


def _smooth_error(seed, rms=0.01):
    """Correlated residual (correlation length ~ 15 pixels), like a smooth model's error."""
    field = gaussian_filter(np.random.default_rng(seed).normal(size=SHAPE), 15, mode='wrap')
    return rms * field / field.std()


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_white_residual_unbiased_and_planted(seed):
    truth, mask = _truth(), _clumpy_mask(seed)
    noise = np.random.default_rng(seed + 100).normal(scale=0.01, size=SHAPE)
    unbiased = bias_test(truth + noise, mask, truth=truth)
    assert abs(unbiased.significance) < 3
    assert abs(unbiased.shifted_significance) < 3
    # White residuals: the shifted-mask spread equals the independent-pixel error.
    assert unbiased.null_std == pytest.approx(np.hypot(unbiased.stderr_masked,
                                                       unbiased.stderr_unmasked), rel=0.2)
    planted = bias_test(truth + noise + 0.001 * mask, mask, truth=truth)
    assert planted.difference == pytest.approx(unbiased.difference + 0.001, rel=1e-9)
    assert planted.significance > 5
    assert planted.shifted_significance > 5


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_correlated_residual_unbiased_and_planted(seed):
    truth, mask = _truth(), _clumpy_mask(seed)
    error = _smooth_error(seed + 100)
    unbiased = bias_test(truth + error, mask, truth=truth)
    assert abs(unbiased.shifted_significance) < 3
    # Correlated residuals: independent-pixel errors understate the spread several times.
    assert unbiased.null_std > 3 * np.hypot(unbiased.stderr_masked, unbiased.stderr_unmasked)
    # Source light leaking into the estimate under the sources.
    planted = bias_test(truth + error + 8 * unbiased.null_std * mask, mask, truth=truth)
    assert planted.shifted_significance > 5


def test_means_and_standard_errors():
    rng = np.random.default_rng(4)
    background = rng.normal(size=(60, 70))
    mask = rng.random((60, 70)) < 0.25
    result = bias_test(background, mask)
    masked, unmasked = background[mask], background[~mask]
    assert result.quantity == 'background'
    assert result.mean_masked == pytest.approx(masked.mean())
    assert result.stderr_masked == pytest.approx(masked.std() / np.sqrt(masked.size))
    assert result.mean_unmasked == pytest.approx(unmasked.mean())
    assert result.stderr_unmasked == pytest.approx(unmasked.std() / np.sqrt(unmasked.size))
    assert result.difference == pytest.approx(masked.mean() - unmasked.mean())
    assert result.significance == pytest.approx(
        result.difference / np.hypot(result.stderr_masked, result.stderr_unmasked))
    assert result.sources is None and result.fits is None


def test_source_tables_and_line_fits():
    """A residual of slope * flux under each source is fitted back exactly."""
    truth = np.zeros((200, 200))
    grid = np.arange(10, 200, 20)
    x, y = (axis.ravel().astype(float) for axis in np.meshgrid(grid, grid))
    flux = np.linspace(1.0, 50.0, x.size)
    re = np.linspace(0.5, 4.0, x.size)[::-1]
    sources = Table({'x_mean': x, 'y_mean': y, 'flux': flux, 're': re})
    residual = np.zeros_like(truth)
    mask = np.zeros(truth.shape, dtype=bool)
    for index, (col, row) in enumerate(zip(x.astype(int), y.astype(int))):
        residual[row - 1:row + 2, col - 1:col + 2] = 0.002 * flux[index] + 0.01
        if index % 2:  # mask every other source, with its window
            mask[row - 2:row + 3, col - 2:col + 3] = True
    result = bias_test(truth + residual, mask, truth=truth, sources=sources, seed=0)
    table = result.sources
    np.testing.assert_allclose(table['value'], 0.002 * flux + 0.01)
    np.testing.assert_array_equal(table['masked'], np.arange(x.size) % 2 == 1)
    for sample in ('masked', 'unmasked'):
        fit = result.fits[(result.fits['sample'] == sample) & (result.fits['versus'] == 'flux')]
        assert fit['slope'][0] == pytest.approx(0.002, rel=1e-9)
        assert fit['intercept'][0] == pytest.approx(0.01, rel=1e-9)
        assert fit['n'][0] == x.size // 2
    # Random positions: 5 per source drawn, only those whose 3x3 window is unmasked kept.
    random = result.random
    assert 0 < len(random) <= 5 * x.size
    for col, row in zip(random['x'], random['y']):
        assert not mask[row - 1:row + 2, col - 1:col + 2].any()
    assert set(random['flux']) <= set(flux) and set(random['radius']) <= set(re)


def test_plot_draws_flux_and_radius_panels():
    rng = np.random.default_rng(0)
    sources = Table({'x_mean': rng.uniform(5, 95, 40), 'y_mean': rng.uniform(5, 95, 40),
                     'flux': rng.uniform(0, 50, 40), 'x_stddev': rng.uniform(0.5, 5, 40),
                     'y_stddev': rng.uniform(0.5, 5, 40)})
    mask = rng.random((100, 100)) < 0.1
    result = bias_test(rng.normal(size=(100, 100)), mask, truth=np.zeros((100, 100)),
                       sources=sources)
    np.testing.assert_allclose(result.sources['radius'],
                               np.sqrt(sources['x_stddev'] * sources['y_stddev']))
    figure = result.plot()
    assert [ax.get_xlabel() for ax in figure.axes] == ['source flux', 'source radius']
    with pytest.raises(ValueError, match='without a source catalog'):
        bias_test(np.ones((10, 10)), np.eye(10, dtype=bool)).plot()


@pytest.mark.parametrize('mask, truth, match', [
    (np.zeros((20, 20), dtype=bool), None, 'both masked and unmasked'),
    (np.ones((20, 20), dtype=bool), None, 'both masked and unmasked'),
    (np.zeros((20, 21), dtype=bool), None, 'shape'),
    (np.eye(20, dtype=bool), np.zeros((21, 20)), 'shape'),
])
def test_bias_test_rejects_bad_input(mask, truth, match):
    with pytest.raises(ValueError, match=match):
        bias_test(np.zeros((20, 20)), mask, truth=truth)


def test_bias_test_rejects_incomplete_catalog():
    with pytest.raises(ValueError, match='columns'):
        bias_test(np.zeros((20, 20)), np.eye(20, dtype=bool),
                  sources=Table({'x_mean': [1.0], 'y_mean': [1.0], 'flux': [1.0]}))
