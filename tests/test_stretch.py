"""The seed tool's delinearizing stretch and its exact inverse."""
import numpy as np
import pytest
from numpy.testing import assert_allclose

from astrobgopt.stretch import Stretch


@pytest.mark.parametrize('midtone', [0.02, 0.3, 0.5, 0.9])
def test_inverse_is_exact_everywhere(midtone):
    stretch = Stretch(pedestal=0.01, scale=0.2, midtone=midtone)
    linear = np.linspace(-0.5, 1.5, 2001)  # well outside [pedestal, pedestal + scale]
    assert_allclose(stretch.inverse(stretch.forward(linear)), linear, rtol=0, atol=1e-12)
    forward = stretch.forward(linear)
    assert np.all(np.diff(forward) > 0)  # monotonic: thresholds map back exactly


def test_from_data_maps_median_and_quantile():
    rng = np.random.default_rng(1)
    data = 0.1 + 0.01 * rng.standard_normal(200_000)
    stretch = Stretch.from_data(data, quantile=0.95, target_median=0.25)
    stretched = stretch.forward(data)
    assert abs(np.median(stretched) - 0.25) < 0.01
    assert abs(np.quantile(stretched, 0.95) - 1.0) < 0.01
    assert abs(np.quantile(stretched, 0.001)) < 0.01


def test_invalid_parameters():
    with pytest.raises(ValueError, match='scale'):
        Stretch(scale=0)
    with pytest.raises(ValueError, match='midtone'):
        Stretch(midtone=1.0)
    with pytest.raises(ValueError, match='quantile'):
        Stretch.from_data(np.ones(10), quantile=1.5)
    with pytest.raises(ValueError, match='no usable'):
        Stretch.from_data(np.full(10, np.nan))
