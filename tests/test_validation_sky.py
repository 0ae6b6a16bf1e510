"""Tests of the simulated sky, sources and scene of astrobgopt.validation."""

import numpy as np
import pytest
from astropy.table import Table

from astrobgopt.validation import (add_sources, make_sinc_blemish_scene, make_sinc_blemish_sky,
                                   make_source_image, make_source_table)


def test_sky_is_gradient_plus_sinc_blemishes():
    sky = make_sinc_blemish_sky((300, 400), n_blemishes=5, gradient=(1.0, 0.25), seed=3)
    blemishes = sky.blemishes
    assert len(blemishes) == 5
    for row, col in [(0, 0), (17, 311), (150, 200), (299, 399), (260, 5)]:
        gradient = 1.0 * row / 300 + 0.25 * col / 400
        radius = np.hypot(row - blemishes['y'], col - blemishes['x'])
        # sinc(r / (w pi)) = sin(r / w) / (r / w), written out independently of np.sinc.
        scaled = radius / blemishes['width']
        ripples = np.where(scaled > 0, np.sin(scaled) / np.where(scaled > 0, scaled, 1), 1.0)
        expected = gradient + np.sum(blemishes['amplitude'] * ripples)
        assert sky.noiseless[row, col] == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_blemish_parameters_follow_the_recipe():
    blemishes = make_sinc_blemish_sky((200, 300), n_blemishes=400, noise=0.0, seed=1).blemishes
    assert blemishes.colnames == ['x', 'y', 'width', 'amplitude']
    assert np.all((blemishes['x'] >= 0) & (blemishes['x'] < 300))
    assert np.all((blemishes['y'] >= 0) & (blemishes['y'] < 200))
    assert np.all((blemishes['width'] >= 30) & (blemishes['width'] < 130))
    assert np.all((blemishes['amplitude'] >= 0) & (blemishes['amplitude'] < 1))
    # Uniform draws: means near the middle of each range (400 draws: ~1.5% error).
    assert np.mean(blemishes['width']) == pytest.approx(80, rel=0.06)
    assert np.mean(blemishes['x']) == pytest.approx(150, rel=0.06)


def test_gradient_alone_without_blemishes():
    sky = make_sinc_blemish_sky((100, 50), n_blemishes=0, gradient=(2.0, -0.5), noise=0.0)
    assert sky.noiseless[0, 0] == 0
    assert sky.noiseless[99, 0] == pytest.approx(2.0 * 99 / 100)
    assert sky.noiseless[0, 49] == pytest.approx(-0.5 * 49 / 50)
    np.testing.assert_array_equal(sky.sky, sky.noiseless)


def test_sky_noise_level_and_determinism():
    first = make_sinc_blemish_sky((500, 500), seed=42)
    noise = first.sky - first.noiseless
    assert noise.std() == pytest.approx(0.1, rel=0.02)
    assert abs(noise.mean()) < 0.001  # 5 standard errors
    assert first.sky.dtype == np.float64
    again = make_sinc_blemish_sky((500, 500), seed=42)
    np.testing.assert_array_equal(first.sky, again.sky)
    other = make_sinc_blemish_sky((500, 500), seed=43)
    assert not np.array_equal(first.noiseless, other.noiseless)


@pytest.mark.parametrize('kwargs, error', [
    ({'shape': (0, 10)}, ValueError),
    ({'shape': (10.5, 10)}, TypeError),
    ({'noise': -0.1}, ValueError),
    ({'n_blemishes': -1}, ValueError),
    ({'gradient': (1.0, 2.0, 3.0)}, ValueError),
])
def test_sky_rejects_bad_input(kwargs, error):
    with pytest.raises(error):
        make_sinc_blemish_sky(**kwargs)


def test_source_table_ranges():
    sources = make_source_table((300, 500), 2000, seed=5)
    assert len(sources) == 2000
    assert np.all((sources['x_mean'] >= 2) & (sources['x_mean'] <= 498))
    assert np.all((sources['y_mean'] >= 2) & (sources['y_mean'] <= 298))
    assert np.all((sources['flux'] >= 0) & (sources['flux'] < 50))
    for column in ('x_stddev', 'y_stddev'):
        assert np.all((sources[column] >= 0.1) & (sources[column] < 5))
    assert np.all((sources['theta'] >= 0) & (sources['theta'] < np.pi))
    np.testing.assert_allclose(sources['re'], np.sqrt(sources['x_stddev'] * sources['y_stddev']))
    assert np.mean(sources['flux']) == pytest.approx(25, rel=0.05)


def test_single_source_flux_and_peak():
    sources = Table({'x_mean': [20.0], 'y_mean': [30.0], 'flux': [12.0], 'x_stddev': [2.0],
                     'y_stddev': [1.5], 'theta': [0.3]})
    image = make_source_image((60, 50), sources)
    assert image.sum() == pytest.approx(12.0, rel=0.005)
    assert image[30, 20] == pytest.approx(12.0 / (2 * np.pi * 2.0 * 1.5), rel=1e-9)
    assert np.unravel_index(image.argmax(), image.shape) == (30, 20)


def test_source_image_conserves_flux_inside_the_frame():
    shape = (400, 400)
    sources = make_source_table(shape, 600, seed=11)
    # 5.5 standard deviations of the widest source fit inside a 28-pixel margin.
    inside = ((sources['x_mean'] > 28) & (sources['x_mean'] < 372)
              & (sources['y_mean'] > 28) & (sources['y_mean'] < 372))
    image = make_source_image(shape, sources[inside])
    assert image.sum() == pytest.approx(np.sum(sources['flux'][inside]), rel=0.03)


def test_add_sources_leaves_the_input_alone():
    sky = np.full((80, 90), 3.0)
    sources = make_source_table(sky.shape, 20, seed=2)
    scene = add_sources(sky, sources)
    np.testing.assert_array_equal(sky, 3.0)
    np.testing.assert_allclose(scene, sky + make_source_image(sky.shape, sources))


def test_source_image_needs_its_columns():
    with pytest.raises(ValueError, match='y_stddev'):
        make_source_image((10, 10), Table({'x_mean': [1.0], 'y_mean': [1.0], 'flux': [1.0],
                                           'x_stddev': [1.0], 'theta': [0.0]}))


def test_scene_is_sky_plus_sources_and_deterministic():
    scene = make_sinc_blemish_scene((150, 200), n_blemishes=2, n_sources=40, seed=9)
    np.testing.assert_allclose(scene.scene, scene.sky + scene.source_image)
    np.testing.assert_allclose(scene.source_image, make_source_image((150, 200), scene.sources))
    np.testing.assert_allclose(scene.noise_residual, scene.sky - scene.noiseless)
    assert len(scene.sources) == 40 and len(scene.blemishes) == 2
    again = make_sinc_blemish_scene((150, 200), n_blemishes=2, n_sources=40, seed=9)
    np.testing.assert_array_equal(scene.scene, again.scene)
