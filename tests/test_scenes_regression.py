"""
Regression tests of the default `SplineOptBackground` on small versions of
the scene suite (`astrobgopt.validation.SCENES`), against the known truth.

The tolerances come from ``benchmarks/bench_scenes.py`` and from these small
frames (figures in units of the pixel noise sigma, measured when the
defaults were set): each bound sits about 1.5 times above the measured
value, and where astrobgopt wins, below the best ``Background2D``
configuration's error on the same frame, so that losing the lead fails.
"""

import numpy as np
import pytest

from astrobgopt import SplineOptBackground
from astrobgopt.validation import (bias_under, equivariance_rms, error_rms, load_m13_scene,
                                   make_scene, rms_map_ratios, smooth_gradient)

# Small versions of the scenes: name -> size.
SMALL = {'light_pollution': (256, 384), 'strong_light_pollution': (256, 384),
         'edge_nebula': (256, 384), 'small_flat': 256, 'small_glow': 256,
         'saturated_star': 256, 'galaxy': 256, 'sinc_blemish': 256,
         'globular_cluster': 256, 'rgb_gradient': (128, 192),
         # Blocks of 9 x 9 pixels: enough to measure the crowding
         # (downsample.CROWDING_MIN_PIXELS).
         'milky_way': (720, 1080)}


def _scene(name):
    return make_scene(name, size=SMALL[name])


def _estimate(scene, **options):
    return SplineOptBackground(progress=False, **options)(scene.data,
                                                          channel_axis=scene.channel_axis)


# name -> (error bound, measured default error, best Background2D error of
# box 16/32 with filter 3 on the same frame).
ERROR_BOUNDS = {
    'light_pollution': (0.45, 0.27, 2.68),
    # 1.04 with 16 control points and the default smoothing beneath the
    # nebula (the rule for large objects before 32 points were allowed).
    'strong_light_pollution': (0.65, 0.43, 2.82),
    # 3.82 on this frame before the large-object fit was stiffened.
    'edge_nebula': (1.4, 0.95, 3.48),
    'small_flat': (0.05, 0.033, 0.038),
    'saturated_star': (0.075, 0.049, 0.152),
    'galaxy': (0.3, 0.21, 0.84),
    'sinc_blemish': (0.07, 0.042, 0.234),
    'rgb_gradient': (0.12, 0.064, None),
    # 1.85 before the blocks were lowered in crowded fields (0.49-0.52 over
    # seeds 0-2; Background2D 0.75-0.81).
    'milky_way': (0.7, 0.49, 0.76),
}


@pytest.mark.parametrize('name', sorted(ERROR_BOUNDS))
def test_default_error_within_benchmark_tolerance(name):
    scene = _scene(name)
    bound, _, best_peer = ERROR_BOUNDS[name]
    error = error_rms(_estimate(scene).background, scene.background) / scene.noise_sigma
    assert error < bound
    if best_peer is not None:
        assert error < best_peer


def test_bias_under_the_nebula_stays_small():
    # The light-pollution demo: the nebula (peak 15 sigma) must not leak into
    # the background (measured 0.08 sigma on this frame, -0.01 at full size;
    # 0.34 and 0.46 before the fit beneath large objects was stiffened, 0.96
    # and 0.69 before large objects got 16 control points).
    scene = _scene('light_pollution')
    bias = bias_under(_estimate(scene).background, scene.background, scene.objects)
    assert abs(bias) / scene.noise_sigma < 0.3


@pytest.mark.parametrize('size, seed', [(256, 2), (256, 3), (384, 3)])
def test_a_bright_star_inside_a_small_frames_glow_leaves_it_sky(size, seed):
    # The glow frame, smaller: a bright star's halo inside the glow
    # spans several blocks and set the region's peak, so the glow was taken
    # for an object (3.6 sigma; Background2D's best 0.40 and 0.22). Judged
    # with the stars' peaks cut, it is sky (0.13, 0.16 and 0.065).
    scene = make_scene('small_glow', size=size, seed=seed)
    error = error_rms(_estimate(scene).background, scene.background) / scene.noise_sigma
    assert error < 0.25


@pytest.mark.parametrize('seed', [1, 2])
def test_a_crowded_small_frame_masks_where_the_stars_are_brightest(seed):
    # 256 x 256, 3000 stars per million pixels, blocks of 3 pixels whose
    # medians the stars' wings lift by 0.22 sigma: the masking would take
    # nearly every block, and stops at the most significant three quarters
    # (measured 0.063 and 0.067 sigma; 0.18 and 0.19 when it masked
    # nothing; Background2D box 16: 0.15 and 0.14).
    scene = make_scene('small_256', seed=seed)
    with pytest.warns(UserWarning, match='most significant'):
        result = _estimate(scene)
    error = error_rms(result.background, scene.background) / scene.noise_sigma
    assert error < 0.1


def test_sky_structure_masked_with_few_points_is_judged_again_with_the_chosen_points():
    # The masking's 32 points cannot follow the sinc blemish's ripples and
    # take a lobe for an object (9 % of the blocks); the held-out trials
    # then choose 128 points, which follow it. Judged again with them,
    # nothing is masked: 0.080 sigma, against 0.29 when the first masking
    # was kept (Background2D's best: box 16, 0.167).
    scene = make_scene('sinc_blemish', seed=1)
    result = _estimate(scene)
    assert len(result.model.control_points) > 100
    assert error_rms(result.background, scene.background) / scene.noise_sigma < 0.12


def test_a_faint_masked_bump_of_the_sky_keeps_the_usual_control_points():
    # The sinc blemish's central lobe, sky that the extended-object masking
    # takes for an object (a fifth of this frame), is faint: the final fit
    # keeps the points it would have (measured 0.13 sigma) rather than the
    # 16 that a bright large object gets (0.93).
    scene = make_scene('sinc_blemish', size=512, seed=3)
    error = error_rms(_estimate(scene).background, scene.background) / scene.noise_sigma
    assert error < 0.2


@pytest.mark.parametrize('name', ['small_flat', 'saturated_star', 'galaxy', 'globular_cluster'])
def test_background_rms_is_the_sky_noise(name):
    # Median within 10 % of the true noise and at most 1.3 times it anywhere,
    # stars and the saturated star's halo included (measured 0.97-0.98
    # and 1.00-1.06 on these frames).
    scene = _scene(name)
    median, maximum = rms_map_ratios(_estimate(scene).background_rms, scene.noise)
    assert 0.9 < median < 1.1
    assert maximum < 1.3


@pytest.mark.parametrize('name, size', [('globular_cluster', 512), ('galaxy', 512),
                                        ('edge_nebula', (400, 600))])
def test_background_rms_leaves_out_the_extended_objects(name, size):
    # The cluster's unresolved light, the galaxy and the nebula add photon
    # noise and structure that are not the sky's: boxes on them take the
    # map's median (measured maxima 1.03-1.07; 1.31-1.45 when they counted).
    scene = make_scene(name, size=size)
    median, maximum = rms_map_ratios(_estimate(scene).background_rms, scene.noise)
    assert 0.95 < median < 1.05
    assert maximum < 1.15


def test_background_rms_of_a_dense_star_field_leaves_the_stars_out():
    # Faint unresolved stars in every pixel (crowding weight 1): without the
    # pixels a 3 x 3 mean finds them in, the residual's spread reads 1.01
    # times the sky's noise (median; maximum 1.21, in the dense band). With
    # them, the spread below the median read 1.59 (maximum 2.21), and the
    # lower tail alone 1.20 (1.64).
    scene = _scene('milky_way')
    result = _estimate(scene)
    median, maximum = rms_map_ratios(result.background_rms, scene.noise)
    assert 0.93 < median < 1.07
    assert maximum < 1.3


def test_a_gradient_on_the_crowded_real_frame_is_added_to_the_estimate():
    # M13 (real, crowded): the optimizer must not move the control points
    # differently once a 3-sigma gradient is added (measured 0.028 sigma
    # with the most significant three quarters masked, 0.021 when nothing
    # was; 0.08-0.19 while it chased improvements below 0.1 % of the loss).
    scene = load_m13_scene()
    gradient = smooth_gradient(scene.data.shape, 3 * scene.noise_sigma)
    rms = equivariance_rms(lambda data: SplineOptBackground()(data).background,
                           scene.data, gradient)
    assert rms / scene.noise_sigma < 0.05


@pytest.mark.parametrize('name', ['small_flat', 'saturated_star', 'sinc_blemish'])
def test_adding_a_gradient_adds_it_to_the_estimate(name):
    # est(d + g) - est(d) - g for a 3-sigma gradient (measured 0.004-0.017).
    scene = _scene(name)
    gradient = smooth_gradient(scene.data.shape, 3 * scene.noise_sigma)
    rms = equivariance_rms(lambda data: SplineOptBackground(progress=False)(data).background,
                           scene.data, gradient)
    assert rms / scene.noise_sigma < 0.05


def test_round_glow_near_a_corner_is_background_and_an_elongated_nebula_an_object():
    # The glow-or-object rule (docs/scenes.rst): a round compact glow near a
    # corner is kept in the background (measured 0.10 sigma, as with
    # mask_extended=False; Background2D box 16: 0.40; 3 sigma while it was
    # masked as a nebula), and the elongated two-lobed nebula running off two
    # edges stays masked (measured 2.8 sigma; 3.7 if it were kept, the best
    # Background2D 3.6).
    glow = _scene('small_glow')
    error = error_rms(_estimate(glow).background, glow.background) / glow.noise_sigma
    assert error < 0.2
    nebula = make_scene('edge_nebula', size=(400, 600))
    error = error_rms(_estimate(nebula).background, nebula.background) / nebula.noise_sigma
    assert error < 3.2


def _window(scene, top, left, shape):
    """The data, truth and object mask of a window of ``scene``."""
    rows, columns = slice(top, top + shape[0]), slice(left, left + shape[1])
    return scene.data[rows, columns], scene.background[rows, columns], scene.objects[rows, columns]


def test_a_bright_star_at_the_edge_is_not_fitted_as_a_glow():
    # A saturated star whose centre is on the frame's edge: round and
    # brightest at the edge, so kept as sky light; its core and halo, far
    # above 2 pixel sigmas, must still be rejected by the robust loss
    # (measured 0.17 sigma off the objects, as without the glow rule; 16 when
    # known sky light was fitted by least squares; Background2D box 32: 0.17).
    scene = make_scene('saturated_star', size=512)
    data, truth, objects = _window(scene, 80, 280, (300, 225))
    assert data[150, :3].max() == data.max()  # the saturated core on the edge
    error = SplineOptBackground()(data).background - truth
    assert np.sqrt(np.mean(error[~objects] ** 2)) < 0.3 * scene.noise_sigma


def test_a_cluster_in_a_corner_is_not_a_round_glow():
    # A globular cluster centred 15 pixels from a corner is round and
    # reaches the edge, but its light is concentrated, not a glow's (measured
    # 3.3 sigma, as without the masking's glow rule, 3.5 without masking;
    # 17 when taken for a glow).
    scene = make_scene('globular_cluster', size=512)
    centre = np.unravel_index(np.argmax(scene.object_image), scene.data.shape)
    data, truth, _ = _window(scene, centre[0] - 15, centre[1] - 15, (300, 300))
    error = SplineOptBackground()(data).background - truth
    assert np.sqrt(np.mean(error ** 2)) < 5 * scene.noise_sigma
