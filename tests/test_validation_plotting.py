"""Tests of the figures of astrobgopt.validation."""

import numpy as np
import pytest

from astrobgopt.validation import plot_residual_maps, plot_rms_vs_scale, plot_scene


def test_residual_maps_share_a_symmetric_scale():
    rng = np.random.default_rng(0)
    residuals = {f'estimator {index}': scale * rng.normal(size=(50, 60))
                 for index, scale in enumerate([1.0, 2.0, 4.0, 8.0])}
    figure = plot_residual_maps(residuals)
    images = [ax.images[0] for ax in figure.axes if ax.images]
    assert [image.axes.get_title() for image in images] == list(residuals)
    expected = np.median([np.percentile(np.abs(r), 99.5) for r in residuals.values()])
    for image in images:
        assert image.get_clim() == pytest.approx((-expected, expected))
    # 4 panels on a 3-column grid of 2 rows: the last 2 cells are hidden.
    hidden = [ax for ax in figure.axes if not ax.get_visible()]
    assert len(hidden) == 2 and not any(ax.images for ax in hidden)
    with pytest.raises(ValueError, match='empty'):
        plot_residual_maps({})


def test_large_images_are_block_averaged_over_the_full_frame():
    noiseless = np.add.outer(np.arange(900.0), np.zeros(1200))
    figure = plot_scene(noiseless, noiseless, mask=np.zeros((900, 1200), dtype=bool))
    image = figure.axes[0].images[0]
    assert max(image.get_array().shape) <= 300
    assert image.get_extent() == [-0.5, 1199.5, -0.5, 899.5]
    # Block means of a ramp in rows: 4-row blocks average to 1.5, 5.5, ...
    assert image.get_array()[0, 0] == pytest.approx(1.5)


def test_rms_versus_scale_panels():
    widths = np.array([2, 4, 8])
    figure = plot_rms_vs_scale(widths, {'noise': 1.0 / widths}, ratio=False)
    ax = figure.axes[0]
    assert ax.get_xscale() == 'log' and ax.get_yscale() == 'log'
    guide = [line for line in ax.lines if line.get_label() == '1 / width'][0]
    np.testing.assert_allclose(guide.get_ydata(), 1.0 / widths)
    figure = plot_rms_vs_scale(widths, {'a': [1.0, 1.1, 1.3]}, ylim=(0.8, 2.0))
    assert figure.axes[0].get_ylim() == (0.8, 2.0)
    assert any(line.get_label() == 'perfect' for line in figure.axes[0].lines)
