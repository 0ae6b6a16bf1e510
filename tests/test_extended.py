"""
Extended-object masking (`astrobgopt.extended`): objects framed inside the
field are masked, sky light entering it from outside is kept as background;
and the automatic number of control points.
"""

import numpy as np
import pytest

from astrobgopt import SplineOptBackground
from astrobgopt.extended import _object_weights, mask_extended_objects

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


def _kept_fraction(image):
    """The blocks' usable fraction after the masking and the block grid's (y, x)."""
    estimator = SplineOptBackground()
    samples = estimator.sample(estimator.prepare(image))
    fraction, _ = mask_extended_objects(samples.blocks, samples.shape, estimator.config,
                                        downscale_func=estimator.downscale_func)
    return fraction, samples.blocks


def test_glow_at_the_frames_edge_is_background():
    background, glow, noise = _frame(_corner_glow)
    fraction, blocks = _kept_fraction(background + glow + noise)
    # Every block of the glow is kept (where it is above 3 sigma).
    bright = glow[np.ix_(blocks.y.astype(int), blocks.x.astype(int))] > 3 * NOISE
    assert bright.sum() > 50
    assert fraction[bright].min() == 1.0
    # ... so the fit follows it (measured 0.12 sigma with 64 points, 0.24
    # with 32; the full-size vignetting_amp_glow scene, where it was masked
    # as an object before, went from 1.08 to 0.33 sigma).
    fitted = SplineOptBackground()(background + glow + noise).background
    assert np.sqrt(np.mean((fitted - background - glow) ** 2)) < 0.25 * NOISE


def test_nebula_inside_the_frame_is_masked():
    background, nebula, noise = _frame(_interior_nebula)
    fraction, blocks = _kept_fraction(background + nebula + noise)
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
    weight, labels = _object_weights(smoothed, smoothed, smoothed > 1.0, 2.0, 1.0)
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
    weight, _ = _object_weights(smoothed, np.full(smoothed.shape, 1.2), smoothed > 1.0, 2.0, 1.0)
    assert weight[1] == 1.0


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
    simple = SplineOptBackground()(background + noise)
    assert simple.meta['n_control_points'] <= 32


def test_n_points_auto_is_recorded_and_checked():
    assert "n_points='auto'" in repr(SplineOptBackground())
    assert 'n_points=16' in repr(SplineOptBackground(n_points=16))
    with pytest.raises(ValueError, match="n_points must be an integer or 'auto'"):
        SplineOptBackground(n_points='many')
