"""
Extended-object masking (`astrobgopt.extended`): objects framed inside the
field are masked, sky light entering it from outside is kept as background;
and the automatic number of control points.
"""

import numpy as np
import pytest

from astrobgopt import SplineOptBackground
from astrobgopt.extended import (_most_significant, _object_weights, _roundness,
                                 mask_extended_objects)
from astrobgopt.validation import make_scene

SHAPE = (256, 384)
NOISE = 5.0


def _frame(feature, seed=0):
    """A 100-count sky with a gentle ramp, noise 5 and ``feature`` (y, x) -> counts."""
    y, x = np.mgrid[0:SHAPE[0], 0:SHAPE[1]].astype(float)
    background = 100.0 + 10.0 * x / SHAPE[1]
    rng = np.random.default_rng(seed)
    return background, feature(y, x), rng.normal(0.0, NOISE, SHAPE)


def _corner_glow(y, x):
    # Amplifier glow: 30 sigma at the lower-right corner, decaying over a
    # tenth of the width.
    return 30 * NOISE * np.exp(-np.hypot(x - (SHAPE[1] - 1), y) / (0.1 * SHAPE[1]))


def _interior_nebula(y, x):
    # The same light as a Gaussian nebula of 15 sigma framed in the middle.
    return 15 * NOISE * np.exp(-0.5 * ((x - 0.45 * SHAPE[1]) ** 2 + (y - 0.5 * SHAPE[0]) ** 2)
                               / (0.12 * SHAPE[1]) ** 2)


def _masking(image):
    """The blocks' usable fraction and sky light after the masking, and the blocks."""
    estimator = SplineOptBackground()
    samples = estimator.sample(estimator.prepare(image))
    mask = mask_extended_objects(samples.blocks, samples.shape, estimator.config,
                                 downscale_func=estimator.downscale_func)
    return mask.usable_fraction, mask.sky_light, samples.blocks


def test_glow_at_the_frames_edge_is_background():
    background, glow, noise = _frame(_corner_glow)
    fraction, sky_light, blocks = _masking(background + glow + noise)
    glow_blocks = glow[np.ix_(blocks.y.astype(int), blocks.x.astype(int))]
    # Every block of the glow is kept (where it is above 3 sigma).
    bright = glow_blocks > 3 * NOISE
    assert bright.sum() > 50
    assert fraction[bright].min() == 1.0
    # Where the first fits could not follow it (its steep corner), it is
    # known sky light, which the robust loss rejects later; nowhere else.
    assert np.all(sky_light[glow_blocks > 20 * NOISE] == 1.0)
    assert np.all(glow_blocks[sky_light > 0] > 3 * NOISE)
    # ... so the fit follows it (measured 0.108 sigma; 0.12 while its corner
    # was rejected as an outlier, 0.24 with 32 points; the full-size
    # vignetting_amp_glow scene went from 1.08 sigma, masked as an object,
    # to 0.35 kept, and to 0.044 known as sky light).
    fitted = SplineOptBackground()(background + glow + noise).background
    assert np.sqrt(np.mean((fitted - background - glow) ** 2)) < 0.15 * NOISE


def test_nebula_inside_the_frame_is_masked():
    background, nebula, noise = _frame(_interior_nebula)
    fraction, _, blocks = _masking(background + nebula + noise)
    core = nebula[np.ix_(blocks.y.astype(int), blocks.x.astype(int))] > 0.5 * nebula.max()
    assert fraction[core].max() == 0.0
    # The nebula stays out of the background (measured 0.02 sigma under it;
    # 10.8 sigma with mask_extended=False).
    fitted = SplineOptBackground()(background + nebula + noise).background
    assert abs(np.mean((fitted - background)[nebula > 0.5 * nebula.max()])) < 0.3 * NOISE


def _blob_weight(centre, *, sigma=6.0, shape=(60, 80), level=10.0):
    """The object weight of one Gaussian region centred at ``centre`` (y, x) in cells."""
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    smoothed = level * np.exp(-0.5 * ((y - centre[0]) ** 2 + (x - centre[1]) ** 2) / sigma ** 2)
    weight, _, labels = _object_weights(smoothed, smoothed, smoothed > 1.0, 2.0, 1.0)
    assert labels.max() == 1
    return weight[1]


def test_object_weight_ramps_from_edge_to_interior():
    # Peak on the edge: sky; well inside: an object; a weight that grows
    # steadily between, without a jump.
    weights = [_blob_weight((30, x)) for x in np.arange(0.0, 12.0, 0.5)]
    assert weights[0] == 0.0 and weights[-1] == 1.0
    assert np.all(np.diff(weights) >= 0)
    assert np.max(np.diff(weights)) < 0.5


def test_compact_light_at_the_edge_stays_an_object():
    # Brightest at the edge but not diffuse once clipped (a group of stars):
    # masked as before.
    y, x = np.mgrid[0:60, 0:80]
    smoothed = 10.0 * np.exp(-0.5 * (y - 30) ** 2 / 36 - 0.5 * x ** 2 / 36)
    weight, _, _ = _object_weights(smoothed, np.full(smoothed.shape, 1.2), smoothed > 1.0, 2.0,
                                   1.0)
    assert weight[1] == 1.0


def _gaussian_cells(centre, sigmas, angle=0.0, shape=(60, 80)):
    y, x = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    c, s = np.cos(angle), np.sin(angle)
    a = (c * (x - centre[1]) + s * (y - centre[0])) / sigmas[1]
    b = (-s * (x - centre[1]) + c * (y - centre[0])) / sigmas[0]
    return 10.0 * np.exp(-0.5 * (a ** 2 + b ** 2))


@pytest.mark.parametrize('centre', [(30, 40), (8, 10), (-10, -15), (30, 90)])
def test_a_round_glow_is_round_wherever_its_centre(centre):
    # Inside the frame, near a corner, or outside it (a town's glow): a
    # radial profile about the centre found explains nearly all of it.
    glow = _gaussian_cells(centre, (12, 12))
    assert _roundness(glow, glow > 1.0) > 0.97


def test_an_elongated_or_two_lobed_region_is_not_round():
    nebula = _gaussian_cells((45, 65), (8, 16), angle=0.6)
    assert _roundness(nebula, nebula > 1.0) < 0.85
    lobes = nebula + 0.8 * _gaussian_cells((55, 40), (5, 8), angle=-0.4)
    assert _roundness(lobes, lobes > 1.0) < 0.85


def test_only_a_round_glow_near_the_edge_is_kept_as_sky_by_its_roundness():
    def weight(image):
        w, round_glow, labels = _object_weights(image, image, image > 1.0, 2.0, 1.0,
                                                round_glows=True)
        assert labels.max() == 1
        assert round_glow[1] == 1 - w[1]
        return w[1]
    # Both peak inside, a sixth of the frame from a corner, and reach the
    # edge at more than half their peak; only the round one is sky.
    assert weight(_gaussian_cells((10, 12), (12, 12))) == 0.0
    assert weight(_gaussian_cells((10, 12), (8, 16), angle=0.6)) == 1.0
    # A trail entering from the edge is kept as sky light by the edge rule,
    # but it is no round glow.
    y, x = np.mgrid[0:60, 0:80]
    trail = 10.0 * np.exp(-0.5 * ((y - 20 - 0.3 * x) / 2.0) ** 2)
    kept, known, _ = _object_weights(trail, trail, trail > 1.0, 2.0, 1.0, round_glows=True)
    assert kept[1] == 0.0 and known[1] == 0.0
    # A round but concentrated region near the corner (a galaxy's light,
    # exponential, peaking 5 cells in: roundness 0.98, peak over mean 7.5
    # against 2.1 for the glow) is no glow; its edge and roundness alone
    # would make it one.
    y, x = np.mgrid[0:60, 0:80]
    galaxy = 100.0 * np.exp(-np.hypot(y - 5, x - 6) / 6.0)
    assert _roundness(galaxy, galaxy > 1.0) > 0.95
    assert weight(galaxy) == 1.0
    # A round object well inside (a galaxy, a cluster) stays an object.
    assert weight(_gaussian_cells((30, 40), (8, 8))) == 1.0
    # Without round_glows, the round glow is judged by its edge ratio alone.
    glow = _gaussian_cells((10, 12), (12, 12))
    weight, round_glow, _ = _object_weights(glow, glow, glow > 1.0, 2.0, 1.0)
    assert weight[1] == 1.0 and round_glow[1] == 0.0


def _ripples(y, x):
    # Fine structure of the sky (like the STScI scene's sinc blemishes):
    # 6 sigma ripples with periods of a third of the width and of the height.
    return 6 * NOISE * np.sin(2 * np.pi * x / (0.33 * SHAPE[1])) * np.cos(2 * np.pi * y / 120.0)


def test_auto_points_follow_fine_structure_and_keep_a_simple_sky():
    background, ripples, noise = _frame(_ripples)
    truth = background + ripples
    auto = SplineOptBackground(mask_extended=False)(truth + noise)
    fixed = SplineOptBackground(mask_extended=False, n_points=32)(truth + noise)
    # Measured: 256 points, 0.08 sigma; 32 points: 1.8 sigma.
    assert auto.meta['n_control_points'] > 100
    error = np.sqrt(np.mean((auto.background - truth) ** 2))
    assert error < 0.2 * NOISE
    assert error < 0.2 * np.sqrt(np.mean((fixed.background - truth) ** 2))
    # A ramp keeps the fewest points (16, 15 on this grid): the least noise.
    simple = SplineOptBackground()(background + noise)
    assert simple.meta['n_control_points'] <= 16


def test_n_points_auto_is_recorded_and_checked():
    assert "n_points='auto'" in repr(SplineOptBackground())
    assert 'n_points=16' in repr(SplineOptBackground(n_points=16))
    with pytest.raises(ValueError, match="n_points must be an integer or 'auto'"):
        SplineOptBackground(n_points='many')


def test_sky_light_cutoff_is_two_pixel_sigmas_where_that_is_more():
    from astrobgopt.downsample import BLOCK_NOISE_FACTOR
    from astrobgopt.extended import sky_light_cutoff

    # A block of 12 x 12 pixels has 12 / 1.25 times less noise than a pixel
    # (its median): 2 pixel sigmas are about 19 block sigmas.
    cutoff = sky_light_cutoff(np.array([0.0, 0.5, 1.0]), 12, 'median')
    expected = 2 * 12 / BLOCK_NOISE_FACTOR['median']
    np.testing.assert_allclose(cutoff, [4.0, 2.0 + expected / 2, expected])
    # Single-pixel blocks keep the biweight's 4 sigmas.
    np.testing.assert_allclose(sky_light_cutoff(np.ones(2), 1, 'mean'), 4.0)


@pytest.mark.parametrize('name, size, seed, bright', [('galaxy', 256, 0, True),
                                                      ('sinc_blemish', 512, 3, False)])
def test_largest_object_counts_only_bright_objects(name, size, seed, bright):
    # A galaxy (its smoothed residual peaks at ~200 times the detection
    # threshold) masked over 44 % of the blocks is a large bright object;
    # the sinc blemish's central lobe, masked over a fifth of the frame,
    # peaks at 2-5 times it and is not one.
    scene = make_scene(name, size=size, seed=seed)
    estimator = SplineOptBackground()
    samples = estimator.sample(estimator.prepare(scene.data))
    mask = mask_extended_objects(samples.blocks, samples.shape, estimator.config,
                                 downscale_func=estimator.downscale_func)
    masked = 1 - mask.usable_fraction.sum() / samples.blocks.usable_fraction.sum()
    assert masked > 0.15
    assert (mask.largest_object > 0.3) if bright else (mask.largest_object == 0)


def test_a_simple_sky_is_fitted_by_the_robust_initialization_alone():
    # n_points='auto' keeps 16 points on a flat star field, and a fit of 16
    # points takes no optimizer steps (they changed nothing measurable on
    # such skies and cost a compile on the first call in a process).
    scene = make_scene('small_flat', size=256)
    result = SplineOptBackground()(scene.data)
    assert len(result.initial_control_points) == 16
    assert result.loss_history.shape[0] == 1
    # ... while an explicit n_points is optimized as asked.
    result = SplineOptBackground(n_points=16, epochs=3, patience=10)(scene.data)
    assert result.loss_history.shape[0] == 4


def test_a_crowded_round_masks_the_most_significant_blocks_up_to_the_limit():
    # Already masked: one block at 0.5. The round would mask every block
    # fully; room for 3 blocks in all leaves 2.5 to add, most significant
    # first, whole blocks only.
    excess = np.zeros((2, 3))
    excess[1, 2] = 0.5
    significance = np.array([[5.0, 1.0, 4.0], [2.0, 3.0, 9.0]])
    masked = _most_significant(excess, np.ones((2, 3)), significance, 3)
    np.testing.assert_array_equal(masked, [[1, 0, 1], [0, 0, 1]])
    assert masked.sum() <= 3
    # No room: nothing is added.
    np.testing.assert_array_equal(_most_significant(excess, np.ones((2, 3)), significance, 0.5),
                                  excess)
