"""SplineOptBackground: accuracy against known truth, inputs, outputs and errors."""
from pathlib import Path

import astropy
import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData, NDData
from astropy.utils.exceptions import AstropyUserWarning
from numpy.testing import assert_allclose

from astrobgopt import SplineOptBackground
from astrobgopt.datasets import make_light_pollution_sky


@pytest.fixture(scope='module')
def sky():
    return make_light_pollution_sky((400, 600), seed=7)


@pytest.fixture(scope='module')
def fitted(sky):
    return SplineOptBackground(progress=False)(sky.image)


def offset_free(residual):
    return residual - residual.mean()


def test_recovers_light_pollution_background(sky, fitted):
    # Gradient, corner glow and vignetting are recovered, the nebula and the
    # stars are not absorbed (same criteria as the 2000 x 3000 benchmark).
    residual = offset_free(fitted.background - sky.background)
    assert residual.std() <= 0.6 * sky.noise_sigma
    assert abs(residual[sky.nebula_region()].mean()) <= 1.0 * sky.noise_sigma


def test_without_extended_masking_the_nebula_leaks_in(sky, fitted):
    plain = SplineOptBackground(progress=False, mask_extended=False)(sky.image)
    leak = offset_free(plain.background - sky.background)[sky.nebula_region()].mean()
    kept = offset_free(fitted.background - sky.background)[sky.nebula_region()].mean()
    assert leak > 2 * sky.noise_sigma > 2 * abs(kept)


def test_result_has_the_background2d_attributes(sky, fitted):
    assert fitted.background.shape == sky.image.shape
    assert fitted.background.dtype == np.float32
    # The residual RMS is the pixel noise where there are no stars.
    rms = fitted.background_rms
    assert rms.shape == sky.image.shape
    assert_allclose(fitted.background_rms_median, sky.noise_sigma, rtol=0.15)
    assert_allclose(fitted.background_median, np.median(sky.background),
                    atol=2 * sky.noise_sigma)
    table = fitted.control_points
    assert set(table.colnames) == {'x', 'y', 'value'}
    assert len(table) == len(fitted.initial_control_points)
    assert fitted.loss_history.shape[1] == 2
    assert fitted.meta['downscale_factor'] == fitted.downscale_factor
    assert set(fitted.timings) >= {'downscale', 'fit', 'evaluate'}


def test_fast_full_image_evaluation_matches_exact(fitted):
    fast = fitted.model.evaluate_image(fitted.background.shape, dtype=np.float64)
    exact = fitted.model.evaluate_image(fitted.background.shape, dtype=np.float64, exact=True)
    assert np.abs(fast - exact).max() <= 2e-4 * np.ptp(exact)


def test_background_error_matches_the_scatter_of_refits():
    # Refit the same sky under independent noise: the model's scatter across
    # realizations is what background_error predicts.
    truth = make_light_pollution_sky((300, 450), seed=100, star_density=0,
                                     nebula_amplitude=0).background
    # A fixed number of control points: with 'auto' the choice may differ
    # between realizations, a scatter background_error does not describe.
    estimator = SplineOptBackground(progress=False, epochs=0, mask_extended=False, n_points=32)
    fits, predicted = [], []
    for seed in range(12):
        noise = np.random.default_rng(seed).normal(0, 0.002, truth.shape).astype(np.float32)
        result = estimator(truth + noise)
        fits.append(result.background)
        predicted.append(result.background_error)
    ratio = np.median(np.std(fits, axis=0, ddof=1)) / np.median(np.mean(predicted, axis=0))
    assert 0.75 < ratio < 1.33


def test_plot_meshes(fitted):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.imshow(fitted.background, origin='lower')
    assert fitted.plot_meshes(ax=ax, show_initial=True) is ax
    assert len(ax.collections) == 2
    plt.close(fig)


def test_units_and_nddata(sky):
    estimator = SplineOptBackground(progress=False, epochs=0)
    quantity = estimator(sky.image * u.electron)
    assert quantity.background.unit == u.electron
    assert quantity.background_rms.unit == u.electron
    assert quantity.background_median.unit == u.electron
    assert quantity.control_points['value'].unit == u.electron

    # A CCDData mask joins the fit: what lies under it cannot change the result.
    # The blob is faint (0.75 sigma), so an unmasked robust fit would absorb it.
    blob = np.zeros_like(sky.image)
    blob[100:250, 200:400] = 0.75 * sky.noise_sigma
    result = estimator(CCDData(sky.image + blob, unit='adu', mask=blob > 0))
    assert result.background.unit == u.adu
    reference = estimator(sky.image, mask=blob > 0)
    assert_allclose(result.background.value, reference.background, rtol=1e-6)
    unmasked = SplineOptBackground(progress=False, epochs=0, mask_extended=False)(
        CCDData(sky.image + blob, unit='adu'))
    pulled = unmasked.background.value - reference.background
    assert pulled[100:250, 200:400].mean() > 0.3 * sky.noise_sigma
    assert estimator(NDData(sky.image)).background.shape == sky.image.shape


def test_ds9_regions_exclude_like_a_mask(sky, tmp_path):
    region_file = tmp_path / 'blob.reg'
    region_file.write_text('# Region file format: DS9\nimage\ncircle(301,176,60.5)\n')
    y, x = np.mgrid[0:400, 0:600]
    inside = (x - 300) ** 2 + (y - 175) ** 2 <= 60.5 ** 2
    image = sky.image + np.where(inside, 0.5, 0.0).astype(np.float32)
    estimator = SplineOptBackground(progress=False, epochs=0)
    by_region = estimator(image, regions=region_file)
    by_mask = estimator(image, mask=inside)
    assert_allclose(by_region.background, by_mask.background, rtol=1e-6)


def test_dtypes(sky):
    estimator = SplineOptBackground(progress=False, epochs=0)
    counts = np.round(sky.image * 10000).astype(np.uint16)
    assert estimator(counts).background.dtype == np.float32
    assert estimator(sky.image.astype(np.float64)).background.dtype == np.float64


def test_nonfinite_coverage_and_soft_masks(sky):
    image = sky.image.copy()
    image[:, :40] = np.nan
    image[10, 300] = np.inf
    coverage = np.zeros(image.shape, dtype=bool)
    coverage[:, :40] = True
    soft = np.zeros(image.shape)
    soft[300:, :] = 0.5
    result = SplineOptBackground(progress=False)(image, mask=soft, coverage_mask=coverage,
                                                 fill_value=-1.0)
    assert np.all(result.background[:, :40] == -1.0)
    residual = offset_free(result.background[:, 40:] - sky.background[:, 40:])
    assert residual.std() < sky.noise_sigma
    assert np.all(np.isfinite(result.background_rms))


def test_colour_images_share_control_points(sky):
    rgb = np.stack([sky.image, 0.8 * sky.image, 1.2 * sky.image], axis=-1)
    result = SplineOptBackground(progress=False, epochs=20)(rgb, channel_axis=-1)
    assert result.background.shape == rgb.shape
    assert result.control_points['value'].shape == (len(result.initial_control_points), 3)
    first = result.background[..., 0]
    assert_allclose(result.background[..., 1], 0.8 * first, atol=sky.noise_sigma)


def test_seed_tool_mode_asymmetric_loss_with_stretch():
    # The seed tool's mode: delinearized data and the asymmetric loss. On a
    # frame without large nebulae it recovers the light-pollution shape.
    sky = make_light_pollution_sky((400, 600), nebula_amplitude=0.0, seed=8)
    result = SplineOptBackground(progress=False, loss='asymmetric', stretch='mtf',
                                 threshold_max=1.0, mask_extended=False)(sky.image)
    residual = offset_free(result.background - sky.background)
    flat = offset_free(sky.background)
    assert result.stretch is not None
    assert residual.std() < 0.3 * flat.std()


def test_asymmetric_loss_needs_the_nebula_masked(sky):
    # Like an L1 fit it follows a large nebula unless that is masked, as the
    # seed tool documents; the extended-object mask does that.
    options = dict(progress=False, loss='asymmetric', stretch='mtf', threshold_max=1.0)
    absorbed = SplineOptBackground(mask_extended=False, **options)(sky.image)
    masked = SplineOptBackground(**options)(sky.image)
    flat = offset_free(sky.background).std()
    assert offset_free(absorbed.background - sky.background).std() > 0.8 * flat
    assert offset_free(masked.background - sky.background).std() < 0.5 * flat


@pytest.mark.parametrize('call, error, match', [
    (lambda e, img: e(np.stack([img, img])), ValueError, '2-D'),
    (lambda e, img: e(np.full_like(img, np.nan)), ValueError, 'masked or non-finite'),
    (lambda e, img: e(img, mask=np.ones(img.shape, bool)), ValueError, 'masked'),
    (lambda e, img: e(img, mask=np.ones((3, 3), bool)), ValueError, 'shape'),
    (lambda e, img: e(img, mask=np.full(img.shape, 2.0)), ValueError, r'\[0, 1\]'),
    (lambda e, img: e(img, mask=np.full(img.shape, 'x')), TypeError, 'mask'),
    (lambda e, img: e(img[:30, :30]), ValueError, 'too small'),
    (lambda e, img: e(np.array([['a']])), TypeError, 'numeric'),
])
def test_bad_input(sky, call, error, match):
    with pytest.raises(error, match=match):
        call(SplineOptBackground(progress=False, downscale_factor=20), sky.image)


@pytest.mark.parametrize('options, error, match', [
    (dict(loss='huber'), ValueError, 'loss'),
    (dict(initializer='halton'), ValueError, 'initializer'),
    (dict(downscale_factor=0), ValueError, 'downscale_factor'),
    (dict(downscale_factor=2.5), TypeError, 'downscale_factor'),
    (dict(downscale_func='max'), ValueError, 'downscale_func'),
    (dict(stretch='asinh'), ValueError, 'stretch'),
])
def test_bad_options(options, error, match):
    with pytest.raises(error, match=match):
        SplineOptBackground(**options)


def test_crowded_real_frame_warns_instead_of_failing():
    # astropy's M13 test frame: a globular cluster fills the field, so the
    # extended-object masking would leave nothing to fit. It stops and says so.
    path = Path(astropy.__file__).parent / 'io/fits/hdu/compressed/tests/data/m13.fits'
    data = fits.getdata(path).astype(float)
    with pytest.warns(AstropyUserWarning, match='crowded field'):
        result = SplineOptBackground(progress=False)(data)
    sky_level = np.percentile(data, 25)
    assert abs(result.background_median - sky_level) < 0.1 * sky_level


def test_progress_bar(sky, capsys):
    # n_points fixed: with 'auto', the nebula of this sky gets no optimizer steps.
    SplineOptBackground(progress=True, n_points=32, epochs=5, patience=100)(sky.image)
    assert 'spline fit' in capsys.readouterr().err


def test_repr_names_every_constructor_argument():
    import inspect

    estimator = SplineOptBackground(n_points=20, threshold_min=0.1, threshold_max=0.9,
                                    mask_extended=False, delinearization_quantile=0.8,
                                    stretch='mtf', progress=False, seed=4)
    text = repr(estimator)
    for name in inspect.signature(SplineOptBackground).parameters:
        assert f'{name}=' in text
    for given in ('n_points=20', 'threshold_min=0.1', 'threshold_max=0.9', 'mask_extended=False',
                  'delinearization_quantile=0.8', "stretch='mtf'", 'progress=False', 'seed=4'):
        assert given in text
    # The repr rebuilds the estimator: it is the provenance of meta and FITS headers.
    rebuilt = eval(text, {'SplineOptBackground': SplineOptBackground})
    assert repr(rebuilt) == text


def test_call_is_the_stages(sky):
    estimator = SplineOptBackground(n_points=9, epochs=5, mask_extended=True, progress=False)
    called = estimator(sky.image)
    prepared = estimator.prepare(sky.image)
    samples = estimator.sample(prepared)
    staged = estimator.result(prepared, samples, estimator.fit(samples))
    assert_allclose(staged.background, called.background, rtol=0, atol=0)
    assert prepared.image.shape == sky.image.shape + (1,)
    assert prepared.usable_fraction.shape == sky.image.shape
    assert samples.blocks.factor == estimator.downscale_factor_for(sky.image.shape) == 5


def test_extra_samples_pull_the_fit_and_stand_alone():
    rng = np.random.default_rng(3)
    shape = (120, 160)
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    truth = 10 + 0.01 * x + 0.02 * y
    image = truth + rng.normal(0, 0.1, shape)
    estimator = SplineOptBackground(n_points=4, epochs=0, downscale_factor=10,
                                    mask_extended=False, progress=False)
    prepared = estimator.prepare(image)
    # Samples of the exact truth on a grid, alone: the plane is recovered exactly.
    gx, gy = np.meshgrid(np.linspace(5, 150, 6), np.linspace(5, 110, 5))
    points = np.stack([gx.ravel(), gy.ravel()], axis=1)
    values = 10 + 0.01 * points[:, 0] + 0.02 * points[:, 1]
    alone = estimator.sample(prepared, extra_samples=(points, values, np.ones(len(points))),
                             include_blocks=False)
    model = estimator.fit(alone)
    result = estimator.result(prepared, alone, model)
    assert_allclose(result.background, truth, atol=1e-3)
    # Joined to the blocks (noise 0.0125), samples 0.02 above the truth that
    # count 50 blocks each pull the fit most of the way to them.
    offset = estimator.sample(prepared, extra_samples=(points, values + 0.02, np.full(30, 50.0)))
    assert len(offset.arrays()[0]) == 30 + 12 * 16
    lifted = estimator.result(prepared, offset, estimator.fit(offset)).background
    assert 0.01 < np.mean(lifted - truth) < 0.02
    with pytest.raises(ValueError, match='nothing to fit'):
        estimator.sample(prepared, include_blocks=False)
    with pytest.raises(ValueError, match='extra_samples must be'):
        estimator.sample(prepared, extra_samples=(points, values[:3], np.ones(30)))


def test_stretch_applied_once_to_the_samples(sky):
    estimator = SplineOptBackground(stretch='mtf', progress=False)
    prepared = estimator.prepare(sky.image)
    samples = estimator.sample(prepared, extra_samples=([[10.0, 10.0]], [0.2], [1.0]))
    linear = estimator.sample(SplineOptBackground().prepare(sky.image))
    usable = samples.blocks.usable_fraction > 0
    assert_allclose(samples.blocks.values[usable],
                    prepared.stretch.forward(linear.blocks.values[usable]))
    assert_allclose(samples.extra.values, prepared.stretch.forward([[0.2]]))


def test_the_crowded_field_rms_spread_leaves_faint_stars_out_and_noise_alone(monkeypatch):
    # Gaussian stars (sigma 1.3 px) at 0.05 a pixel, peaks from 1 sigma of
    # the noise: they widen the residual's spread below its median to twice
    # the noise; without the pixels a 3 x 3 mean finds them in, it reads
    # 1.05 times the noise (median of 32-pixel boxes). On noise alone that
    # spread reads as the noise (0.998), and a frame that is not crowded
    # (weight 0) keeps the spread below the median, without the search.
    from astrobgopt import result
    from astrobgopt.result import rms_box_statistics

    rng = np.random.default_rng(5)
    sigma, size = 2.0, 512
    noise = rng.normal(0, sigma, (size, size, 1))
    yy, xx = np.mgrid[0:size, 0:size]
    stars = np.zeros((size, size))
    n_stars = int(0.05 * size * size)
    for x, y, peak in zip(rng.uniform(0, size, n_stars), rng.uniform(0, size, n_stars),
                          sigma * (1 - rng.random(n_stars)) ** -1.5):
        near = slice(max(int(y) - 6, 0), int(y) + 7), slice(max(int(x) - 6, 0), int(x) + 7)
        stars[near] += peak * np.exp(-((xx[near] - x) ** 2 + (yy[near] - y) ** 2) / 3.38)

    without_stars, _, _ = rms_box_statistics(noise, 32, np.array([1.0]))
    assert abs(np.median(without_stars) / sigma - 1) < 0.01
    crowded = noise + stars[..., None]
    without_stars, _, _ = rms_box_statistics(crowded, 32, np.array([1.0]))
    assert abs(np.median(without_stars) / sigma - 1) < 0.08

    def no_search(*args):
        raise AssertionError('searched for stars at weight 0')

    monkeypatch.setattr(result, '_star_pixels', no_search)
    below, _, _ = rms_box_statistics(crowded, 32, np.array([0.0]))
    assert np.median(below) / sigma > 1.8
