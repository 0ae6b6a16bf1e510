"""SplineOptInterpolator inside photutils Background2D, and the 4.0-proof path."""
import inspect
import time
import warnings

import astropy.units as u
import numpy as np
import pytest
from numpy.testing import assert_allclose
from photutils.background import Background2D, MedianBackground

from astrobgopt import SplineOptInterpolator, spline_background
from astrobgopt.validation import make_sinc_blemish_scene


def background2d(data, box_size, **kwargs):
    """Background2D, silencing only its own deprecation of ``interpolator=``."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*interpolator.*')
        return Background2D(data, box_size, **kwargs)


@pytest.fixture(scope='module')
def stsci():
    scene = make_sinc_blemish_scene(seed=4)
    return scene, scene.source_image > 0.01  # mask of the injected sources


@pytest.mark.slow
def test_stsci_scene_background_and_rms(stsci):
    scene, mask = stsci
    options = dict(mask=mask, filter_size=1, bkg_estimator=MedianBackground())
    zoom = background2d(scene.scene, 10, **options).background
    start = time.perf_counter()
    bkg = background2d(scene.scene, 10, interpolator=SplineOptInterpolator(n_points=256),
                       **options)
    spline = bkg.background
    elapsed = time.perf_counter() - start
    zoom_rms = np.std(zoom - scene.noiseless)
    spline_rms = np.std(spline - scene.noiseless)
    assert spline_rms <= 0.005 < zoom_rms
    assert elapsed < 30  # the 3 s figure is measured by benchmarks/bench_interpolator.py
    # Background2D calls the interpolator for the RMS mesh too: the noise is 0.1.
    assert_allclose(np.median(bkg.background_rms), 0.1, rtol=0.1)

    # The path that needs no interpolator keyword does as well or better.
    plain = background2d(scene.scene, 10, **options)
    result = spline_background(plain, shape=scene.scene.shape,
                               interpolator=SplineOptInterpolator(n_points=256))
    assert np.std(result.background - scene.noiseless) <= max(spline_rms, 0.005)
    assert_allclose(np.median(result.background_rms), 0.1, rtol=0.1)


def test_call_convention_and_versions_keywords():
    mesh = np.add.outer(np.linspace(0, 1, 20), np.linspace(0, 2, 30))  # a plane
    interpolator = SplineOptInterpolator(n_points=16, epochs=0)
    for extra in ({}, {'edge_method': 'pad'}, {'n_threads': 2}):  # 3.0, 2.x, 3.1 keys
        image = interpolator(mesh, shape=(200, 300), dtype=np.float64, box_size=10, **extra)
        assert image.shape == (200, 300) and image.dtype == np.float64
        assert image.flags.writeable
        # Box centres are at index * box + (box - 1) / 2: a plane stays a plane.
        y, x = np.mgrid[0:200, 0:300]
        expected = (y - 4.5) / 10 / 19 + 2 * (x - 4.5) / 10 / 29
        assert_allclose(image, expected, atol=1e-6)
    assert interpolator(mesh, shape=(200, 300), dtype=np.int16, box_size=10).dtype == np.float32
    rectangular = interpolator(mesh, shape=(100, 600), box_size=(5, 20))
    assert rectangular.shape == (100, 600)


def test_quantity_and_constant_meshes():
    interpolator = SplineOptInterpolator(n_points=9, epochs=0)
    constant = interpolator(np.full((8, 8), 3.0) * u.adu, shape=(64, 64), box_size=8,
                            dtype=np.float32)
    assert not isinstance(constant, u.Quantity)
    assert np.all(constant == 3.0)
    ramp = np.arange(64.0).reshape(8, 8) * u.electron
    assert interpolator(ramp, shape=(64, 64), box_size=8).shape == (64, 64)


def test_background2d_with_units_and_integer_data():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:120, 0:160]
    data = (100 + 0.1 * x + 0.05 * y + rng.normal(0, 1, x.shape)).astype(np.int32)
    bkg = background2d(data * u.adu, 10, interpolator=SplineOptInterpolator(n_points=16))
    assert bkg.background.unit == u.adu
    assert np.std(bkg.background.value - (100 + 0.1 * x + 0.05 * y)) < 0.5


def test_excluded_boxes_get_no_weight():
    # photutils fills excluded boxes (too few good pixels) by inverse-distance
    # weighting; spline_background ignores them through n_pixels_mesh.
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:200, 0:200]
    truth = 10 + 0.01 * x
    data = truth + rng.normal(0, 0.1, x.shape)
    mask = np.zeros(x.shape, bool)
    mask[80:120, 80:120] = True
    data[mask] += 50.0
    bkg = background2d(data, 20, mask=mask, filter_size=1, bkg_estimator=MedianBackground())
    n_pixels = bkg.n_pixels_mesh if hasattr(bkg, 'n_pixels_mesh') else bkg.npixels_mesh
    assert (n_pixels == 0).any()
    result = spline_background(bkg, shape=data.shape,
                               interpolator=SplineOptInterpolator(n_points=9))
    assert np.abs(result.background - truth).max() < 0.1


def test_errors():
    with pytest.raises(ValueError, match='too few'):
        SplineOptInterpolator(n_points=64)(np.random.rand(5, 5), shape=(50, 50), box_size=10)
    with pytest.raises(ValueError, match='2-D'):
        SplineOptInterpolator()(np.ones(5), shape=(50, 50), box_size=10)
    with pytest.raises(TypeError, match='shape'):
        SplineOptInterpolator()(np.random.rand(5, 5), box_size=10)
    with pytest.raises(ValueError, match='loss'):
        SplineOptInterpolator(loss='l2')
    with pytest.raises(ValueError, match='no mesh box'):
        SplineOptInterpolator()(np.full((5, 5), np.nan), shape=(50, 50), box_size=10)


def test_repr_names_every_constructor_argument():
    interpolator = SplineOptInterpolator(n_points=12, loss='asymmetric', seed=3, progress=True)
    text = repr(interpolator)
    for name in inspect.signature(SplineOptInterpolator).parameters:
        assert f'{name}=' in text
    assert 'n_points=12' in text and "loss='asymmetric'" in text and 'progress=True' in text
    assert 'validation_fraction=0.2' in text


def test_bad_box_size_and_mismatched_shape_are_refused():
    mesh = np.random.default_rng(0).random((5, 6))
    interpolator = SplineOptInterpolator(n_points=4, epochs=0)
    for box_size in (0, -10, (10, 0)):
        with pytest.raises(ValueError, match='box_size must be positive'):
            interpolator(mesh, shape=(50, 60), box_size=box_size)
    with pytest.raises(ValueError, match=r'does not match an image of shape \(80, 60\)'):
        interpolator(mesh, shape=(80, 60), box_size=10)
    for shape in ((50, 60, 3), (None, None), 'abc', 50):
        with pytest.raises(ValueError, match='shape must be'):
            interpolator(mesh, shape=shape, box_size=10)
    # A partial last box, padded (photutils) or cropped, still matches.
    assert interpolator(mesh, shape=(45, 55), box_size=10).shape == (45, 55)
    assert interpolator(mesh, shape=(59, 69), box_size=10).shape == (59, 69)


def test_spline_background_knows_the_shape():
    rng = np.random.default_rng(2)
    y, x = np.mgrid[0:90, 0:130]
    data = 5 + 0.02 * x - 0.01 * y + rng.normal(0, 0.05, x.shape)
    bkg = Background2D(data, 10, filter_size=1, bkg_estimator=MedianBackground())
    interpolator = SplineOptInterpolator(n_points=9)
    result = spline_background(bkg, interpolator=interpolator)
    assert result.background.shape == data.shape
    assert np.abs(result.background - (5 + 0.02 * x - 0.01 * y)).max() < 0.05
    same = spline_background(bkg, shape=data.shape, interpolator=interpolator)
    assert_allclose(same.background, result.background)
    with pytest.raises(ValueError, match=r'shape \(100, 130\) does not match'):
        spline_background(bkg, shape=(100, 130), interpolator=interpolator)
    for shape in ((90, 130, 1), 'garbage', (90.5, 130)):
        with pytest.raises(ValueError, match='shape must be'):
            spline_background(bkg, shape=shape, interpolator=interpolator)


def test_reading_background2d_attributes_again_costs_no_new_fit(monkeypatch):
    # photutils 2 recomputes background and background_rms on every access
    # (photutils 3 caches them): either way one fit per distinct mesh.
    import astrobgopt.optimize

    fits = []
    fit_spline = astrobgopt.optimize.fit_spline
    monkeypatch.setattr(astrobgopt.optimize, 'fit_spline',
                        lambda *args, **kwargs: fits.append(1) or fit_spline(*args, **kwargs))
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:160, :200]
    data = 10 + 0.01 * xx + 0.02 * yy + rng.normal(0, (1 + xx / 200), (160, 200))
    interpolator = SplineOptInterpolator(n_points=9, epochs=20)
    bkg = background2d(data, 20, interpolator=interpolator)
    first = bkg.background
    first[:] = 0  # a caller's change does not reach the remembered fit
    for _ in range(2):
        assert_allclose(bkg.background, background2d(data, 20).background, atol=1.0)
        assert np.all(bkg.background_rms > 0)
    assert len(fits) == 2  # the background mesh and the RMS mesh

    # Calling the interpolator itself: a new mesh, a new shape or new
    # options fit again; the same arguments do not.
    mesh = bkg.background_mesh
    interpolator(mesh, shape=data.shape, box_size=20, dtype=np.float64)
    assert len(fits) == 2
    interpolator(mesh + 1, shape=data.shape, box_size=20, dtype=np.float64)
    interpolator(mesh, shape=(159, 200), box_size=20, dtype=np.float64)
    interpolator.n_points = 12
    interpolator(mesh, shape=data.shape, box_size=20, dtype=np.float64)
    assert len(fits) == 5
    # Pickled, an interpolator carries its options, not its fits.
    import pickle

    assert repr(pickle.loads(pickle.dumps(interpolator))) == repr(interpolator)
