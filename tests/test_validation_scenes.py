"""Tests of the scene suite and the scene metrics of astrobgopt.validation."""

import re

import numpy as np
import pytest
from scipy import ndimage

from astrobgopt.validation import (OBJECT_LEVEL, SCENES, bias_under, equivariance_rms, error_rms,
                                   estimate_pixel_noise, load_m13_scene, make_scene,
                                   rms_map_ratios, smooth_gradient)

SIZE = 128


@pytest.fixture(scope='module', params=list(SCENES))
def scene(request):
    return make_scene(request.param, size=SIZE, seed=1)


def _every_channel(mask, data):
    """A (ny, nx) mask repeated over the channels of a colour frame."""
    return mask if data.ndim == 2 else np.repeat(mask[..., None], data.shape[-1], axis=-1)


def test_scene_shapes_and_names(scene):
    colour = scene.name == 'rgb_gradient'
    shape = (SIZE, SIZE, 3) if colour else (SIZE, SIZE)
    assert scene.data.shape == scene.background.shape == scene.noise.shape == shape
    assert scene.object_image.shape == shape
    assert scene.objects.shape == (SIZE, SIZE) and scene.objects.dtype == bool
    assert scene.channel_axis == (-1 if colour else None)
    assert scene.data.dtype == np.float64 and np.isfinite(scene.data).all()
    assert re.match(r'\([a-l]\) [A-Z]', scene.description)  # its family, then a sentence
    assert make_scene(scene.name, seed=1).data.shape[:2] != (SIZE, SIZE)  # own size by default


def test_scenes_are_deterministic(scene):
    again = make_scene(scene.name, size=SIZE, seed=1)
    np.testing.assert_array_equal(again.data, scene.data)
    np.testing.assert_array_equal(again.background, scene.background)
    other = make_scene(scene.name, size=SIZE, seed=2)
    assert not np.array_equal(other.data, scene.data)


def test_data_is_truth_plus_objects_plus_noise(scene):
    # Off the objects (saturated pixels are on them), the data less the truth
    # is the sky's noise; an object's own photons add noise where it is.
    sky = _every_channel(~scene.objects, scene.data)
    normalized = (scene.data - scene.background - scene.object_image)[sky] / scene.noise[sky]
    assert np.std(normalized) == pytest.approx(1.0, abs=0.05)
    assert abs(np.mean(normalized)) < 0.05


def test_truth_has_no_stars_and_the_objects_have(scene):
    # The background has no structure on the scale of a star: smoothing it by
    # one pixel changes it by far less than the noise, while the objects (all
    # scenes have stars or sharp sources) change by many sigmas.
    def high_pass(image):
        sigma = (1, 1, 0) if image.ndim == 3 else 1
        return np.abs(image - ndimage.gaussian_filter(image, sigma))[6:-6, 6:-6]

    noise = scene.noise[6:-6, 6:-6]
    assert np.max(high_pass(scene.background) / noise) < 0.05
    assert np.max(high_pass(scene.object_image) / noise) > 10


def test_object_mask_covers_the_objects(scene):
    above = scene.object_image > OBJECT_LEVEL * scene.noise
    above = above.any(axis=-1) if above.ndim == 3 else above
    assert np.all(scene.objects[above])
    # Pixels outside the mask hold little object light.
    outside = _every_channel(~scene.objects, scene.data)
    assert np.all(scene.object_image[outside] <= OBJECT_LEVEL * scene.noise[outside])


def test_small_frames_share_stars_and_differ_in_background():
    glow = make_scene('small_glow', seed=3)
    flat = make_scene('small_flat', seed=3)
    assert glow.data.shape == (512, 512)
    np.testing.assert_array_equal(glow.object_image, flat.object_image)
    assert np.all(flat.background == 100) and np.all(flat.noise == 10)
    extra = glow.background - 100
    # ramp 0-80 + bowl 0-50 + glow 150 near the lower-left corner
    bowl = 50 * (0.5 ** 2 + (256 / 511 - 0.5) ** 2) / 0.5
    glow = 150 * np.exp(-0.5 * (61.44 ** 2 + (256 - 61.44) ** 2) / 71.68 ** 2)
    assert extra[256, 0] == pytest.approx(bowl + glow, rel=1e-9)
    assert extra[256, 511] == pytest.approx(80 + bowl, rel=1e-2)
    assert extra[60, 60] > 150 and extra[60, 60] > extra[450, 60]
    assert np.ptp(extra[256, :]) > 70


def test_galaxy_covers_a_third_and_nebula_touches_two_edges():
    galaxy = make_scene('galaxy', size=256)
    assert 0.3 < galaxy.objects.mean() < 0.42
    nebula = make_scene('edge_nebula', size=(200, 300))
    # Top row (highest y) and right column are largely nebula; the others only stars.
    assert nebula.objects[-1].mean() > 0.3 and nebula.objects[:, -1].mean() > 0.3
    assert nebula.objects[0].mean() < 0.1 and nebula.objects[:, 0].mean() < 0.1


def test_saturated_star_is_clipped_and_masked():
    scene = make_scene('saturated_star', size=256)
    saturated = scene.data == scene.data.max()
    assert scene.data.max() == 60000 and saturated.sum() > 10
    assert np.all(scene.objects[saturated])


def test_colour_channels_have_different_gradients():
    scene = make_scene('rgb_gradient', size=(60, 90))
    red, green, blue = (scene.background[..., c] for c in range(3))
    assert np.ptp(red[:, 0]) == 0 and np.ptp(red[0]) == pytest.approx(150)
    assert np.ptp(green[0]) == 0 and np.ptp(green[:, 0]) == pytest.approx(100)
    assert not np.allclose(blue - blue.mean(), red - red.mean())


def test_noise_ranges_from_read_noise_to_sky_dominated():
    # Read-noise dominated: the noise barely follows the sky; sky dominated:
    # it grows as the square root of the sky.
    galaxy = make_scene('galaxy', size=64)
    cluster = make_scene('globular_cluster', size=64)
    assert galaxy.noise_sigma ** 2 < 2 * 12 ** 2
    assert cluster.noise_sigma ** 2 > 20 * 5 ** 2


def test_make_scene_rejects_an_unknown_name():
    with pytest.raises(ValueError, match='unknown scene'):
        make_scene('andromeda')


def test_light_pollution_scales_the_sky_light_only():
    from astrobgopt.datasets import make_light_pollution_sky

    base = make_light_pollution_sky((60, 90), seed=1).background
    strong = make_light_pollution_sky((60, 90), seed=1, light_pollution=3).background
    none = make_light_pollution_sky((60, 90), seed=1, light_pollution=0).background
    # Background = (pedestal + scale * light) * vignetting: the light triples.
    np.testing.assert_allclose(strong - none, 3 * (base - none), rtol=1e-5, atol=1e-7)
    assert np.ptp(strong - none) > 0


@pytest.mark.parametrize('options, error, message', [
    ({'light_pollution': np.nan}, ValueError, 'light_pollution must be a finite number >= 0'),
    ({'noise_sigma': -0.1}, ValueError, 'noise_sigma must be a finite number >= 0'),
    ({'star_density': '5e-4'}, TypeError, 'star_density must be a number'),
    ({'star_fwhm': 0}, ValueError, 'star_fwhm must be > 0'),
    ({'shape': (2.5, 40)}, TypeError, 'shape must be a pair of ints'),
    ({'shape': (1, 40), 'star_density': 0}, ValueError, 'at least 2 pixels a side$'),
    ({'shape': (13, 40), 'star_density': 0.01}, ValueError, 'at least 14 pixels a side'),
])
def test_light_pollution_sky_refuses_bad_arguments(options, error, message):
    from astrobgopt.datasets import make_light_pollution_sky

    with pytest.raises(error, match=message):
        make_light_pollution_sky(**options)


@pytest.mark.parametrize('shape, star_density', [((2, 3), 0), ((8, 8), 5e-4), ((14, 40), 0.01)])
def test_light_pollution_sky_smallest_frames(shape, star_density):
    from astrobgopt.datasets import make_light_pollution_sky

    sky = make_light_pollution_sky(shape, star_density=star_density)
    assert sky.image.shape == shape and np.all(np.isfinite(sky.image))
    assert (sky.stars.max() > 0) == (star_density * shape[0] * shape[1] >= 1)


def test_m13_is_real_data_without_truth():
    scene = load_m13_scene()
    assert scene.data.shape == (300, 300) and scene.data.dtype == np.float64
    assert scene.data.dtype.isnative and scene.data.flags['C_CONTIGUOUS']
    assert scene.background is None and scene.objects is None
    assert 1.8 < scene.noise_sigma < 2.4


def test_error_rms_and_bias_have_known_answers():
    truth = np.arange(20.0).reshape(4, 5)
    assert error_rms(truth + 3, truth) == pytest.approx(3)
    alternating = np.where(np.indices(truth.shape).sum(axis=0) % 2, 2.0, -2.0)
    assert error_rms(truth + alternating, truth) == pytest.approx(2)
    region = np.zeros(truth.shape, dtype=bool)
    region[1, 1:3] = True  # one +2 and one -2 pixel
    assert bias_under(truth + alternating, truth, region) == pytest.approx(0)
    assert bias_under(truth + 1.5, truth, region) == pytest.approx(1.5)
    assert np.isnan(bias_under(truth, truth, np.zeros(truth.shape, dtype=bool)))
    colour = np.stack([truth, truth + 1], axis=-1)
    assert bias_under(colour + [1.0, 3.0], colour, region) == pytest.approx(2)
    with pytest.raises(ValueError, match='region'):
        bias_under(truth, truth, region.T)
    with pytest.raises(ValueError, match='shape'):
        error_rms(truth, truth.T)


def test_smooth_gradient_range_and_channels():
    gradient = smooth_gradient((40, 60), 6.0)
    assert gradient.min() == pytest.approx(0) and gradient.max() == pytest.approx(6)
    # Smooth: the second differences are tiny against the range.
    assert np.abs(np.diff(gradient, 2, axis=1)).max() < 1e-2
    colour = smooth_gradient((40, 60, 3), 6.0)
    np.testing.assert_array_equal(colour[..., 2], gradient)


def test_equivariance_of_known_estimators():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(30, 40))
    gradient = smooth_gradient(data.shape, 5.0)
    # The data themselves: exactly equivariant.
    assert equivariance_rms(lambda d: d, data, gradient) == pytest.approx(0, abs=1e-12)
    # A constant zero: misses all of the gradient.
    assert equivariance_rms(np.zeros_like, data, gradient) == pytest.approx(
        np.sqrt(np.mean(gradient ** 2)))
    # The mean everywhere: misses the gradient less its mean; a given
    # background gives the same answer.

    def mean(d):
        return np.full(d.shape, d.mean())

    expected = np.std(gradient)
    assert equivariance_rms(mean, data, gradient) == pytest.approx(expected)
    assert equivariance_rms(mean, data, gradient, background=mean(data)) == pytest.approx(
        expected)


def test_rms_map_ratios():
    noise = np.full((10, 10), 4.0)
    rms = 2 * noise
    rms[3, 3] = 20.0
    median, maximum = rms_map_ratios(rms, noise)
    assert median == pytest.approx(2) and maximum == pytest.approx(5)
    assert rms_map_ratios(np.full((3, 3), 6.0), 3.0) == pytest.approx((2, 2))


def test_pixel_noise_estimate_ignores_gradient_and_stars():
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:200, 0:200]
    data = 100 + 0.5 * x + 0.2 * y + rng.normal(scale=3.0, size=(200, 200))
    data[rng.integers(0, 200, 100), rng.integers(0, 200, 100)] += 1000
    assert estimate_pixel_noise(data) == pytest.approx(3.0, rel=0.03)
