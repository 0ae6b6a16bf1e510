"""
Extended-object masking on the block grid: coherent positive structure
(nebulae, galaxies, star halos) found in the smoothed residual of a first fit
and left out of the final one.

**Glow or object.** Not every such structure is an object. Sky light (a
town's or the moon's glow, amplifier glow, scattered light) enters the field
from outside and is brightest at its edge, while an object a user
photographs is framed inside it. Each region found is therefore weighted as
an object by two ramps, and only that weight of its blocks is masked:

* **at the edge**: the ratio of the region's highest smoothed residual
  within two blocks of the frame's edge to its highest anywhere; up to 0.8
  it is an object, from 0.95 sky;
* **diffuse**: the residual with every block clipped at 3 pixel sigmas and
  smoothed over 32 pixels still reaches 1.4 (object) to 2 (sky) times the
  detection threshold; a group of bright stars at the edge does not.

A region is sky to the degree that it is both. Ramps rather than cuts, so
that adding a smooth gradient to the data moves the weights little.

Limits: the rule is about position, not physics. A glow centred inside the
field (``small_glow`` of the scene suite: a Gaussian of 0.14 of the width
peaking 0.12 of it from a corner) is masked like a nebula, and a nebula
brightest at the edge (one centred outside the field) is kept as background;
the ``edge_nebula`` scene, centred inside but running off two edges, stays
an object. Frames with such features need ``mask_extended=False`` or a mask
of the objects (see the scenes page of the docs).
"""

import dataclasses
import math
import warnings

import numpy as np
from astropy.utils.exceptions import AstropyUserWarning

from .downsample import BLOCK_NOISE_FACTOR

__all__ = ['mask_extended_objects']

# The residual is smoothed by a Gaussian of _EXTENDED_SMOOTH blocks; blocks
# where it exceeds both _EXTENDED_SIGNIFICANCE times its own noise and
# _EXTENDED_LEVEL times the pixel noise (a surface brightness, whatever the
# downscale factor) are masked, each connected region grown by _EXTENDED_GROW
# times its equivalent radius (at least one block) to take in the wings a fit
# absorbs, for at most _EXTENDED_ROUNDS rounds.
_EXTENDED_SMOOTH = 2.0
_EXTENDED_SIGNIFICANCE = 3.0
_EXTENDED_LEVEL = 0.5
_EXTENDED_GROW = 0.5
# ... but by at most this fraction of the block grid's shorter side: a large
# object's grown mask must not swallow a corner, which would then only be
# extrapolated.
_EXTENDED_MAX_GROW = 0.15
_EXTENDED_ROUNDS = 3
# Sky light (a town's or the moon's glow, amplifier glow, scattered light)
# enters from outside the field and is brightest at its edge; an object is
# framed inside it. A region whose smoothed residual within _EXTENDED_SMOOTH
# blocks of the edge reaches _BORDER_RATIO_SKY of its peak is sky, one that
# reaches at most _BORDER_RATIO_OBJECT of it an object, linearly between.
_BORDER_RATIO_OBJECT = 0.8
_BORDER_RATIO_SKY = 0.95
# ... and diffuse: still above the threshold with every block's residual
# clipped at this many pixel sigmas and smoothed over _SKY_SMOOTH_PIXELS
# (several star widths; or _EXTENDED_SMOOTH blocks if more): a group of
# bright stars is not.
_SKY_CLIP_LEVEL = 3.0
_SKY_SMOOTH_PIXELS = 32.0
_SKY_DIFFUSE = (1.4, 2.0)
# The masking never leaves fewer than this fraction of the usable blocks (nor
# fewer than 4 samples per control point): in a crowded field (a globular
# cluster filling the frame) everything looks extended, and the fit needs data.
_EXTENDED_MIN_KEPT = 0.25


def _object_weights(smoothed, clipped, flagged, band, threshold):
    """
    Each flagged region's weight as an object (1 masks it, 0 keeps it as
    sky light), and the region labels.

    A region is sky light to the degree that (1) its smoothed residual
    peaks at the frame's edge: the ratio of its highest value within
    ``band`` cells of the edge to its highest value anywhere ramps from
    `_BORDER_RATIO_OBJECT` (object) to `_BORDER_RATIO_SKY` (sky); and (2)
    it is diffuse: its residual with every block clipped at
    `_SKY_CLIP_LEVEL` pixel sigmas, then smoothed (``clipped``), still
    reaches 1.4 to 2 times the threshold (`_SKY_DIFFUSE`), which a group of
    bright stars at the edge does not. Ramps rather than cuts, so that a
    small change of the data moves the weight little.
    """
    from scipy import ndimage

    labels, n_regions = ndimage.label(flagged)
    index = np.arange(1, n_regions + 1)

    def region_max(image):
        found = ndimage.maximum(image, labels, index) if n_regions else []
        return np.asarray(found, dtype=float).reshape(-1)

    ny, nx = smoothed.shape
    yy, xx = np.ogrid[:ny, :nx]
    near_edge = np.minimum(np.minimum(yy, ny - 1 - yy), np.minimum(xx, nx - 1 - xx)) < band
    edge_peak = region_max(np.where(near_edge, smoothed, -np.inf))
    ratio = np.where(np.isfinite(edge_peak), edge_peak, 0) / np.maximum(region_max(smoothed),
                                                                        1e-300)
    at_edge = np.clip((ratio - _BORDER_RATIO_OBJECT) / (_BORDER_RATIO_SKY - _BORDER_RATIO_OBJECT),
                      0.0, 1.0)
    diffuse = np.clip((region_max(clipped) / threshold - _SKY_DIFFUSE[0])
                      / (_SKY_DIFFUSE[1] - _SKY_DIFFUSE[0]), 0.0, 1.0)
    return np.concatenate([[0.0], 1 - at_edge * diffuse]), labels


def _grow_regions(labels, factor, max_reach):
    """
    Grow each labelled region by ``factor`` times its equivalent radius, by
    at least one and at most ``max_reach`` cells: the label of every cell
    within reach of a region (0 elsewhere).
    """
    from scipy import ndimage

    if not labels.any():
        return labels
    areas = np.bincount(labels.ravel())
    reach = np.clip(factor * np.sqrt(areas / np.pi), 1.0, max(1.0, max_reach))
    distance, (iy, ix) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
    nearest = labels[iy, ix]
    return np.where(distance <= reach[nearest], nearest, 0)


def mask_extended_objects(blocks, shape, config, *, downscale_func):
    """
    The usable fraction of the blocks with extended objects removed.

    A spline fitted to every block absorbs part of any large bright object,
    but what it leaves stands out in the residual once that is smoothed over
    a few blocks. Those blocks are masked, grown, and the spline refitted
    (initialization only); a few rounds peel the object away.

    Parameters
    ----------
    blocks : `~astrobgopt.downsample.BlockSamples`
        The block samples, values in the fit's (stretched) units.
    shape : tuple of int
        Full-resolution image shape (H, W).
    config : `~astrobgopt.config.FitConfig`
        Options of the fit.
    downscale_func : {'median', 'clipped_mean', 'mean'}
        The block statistic (the median's blocks are noisier).

    Returns
    -------
    usable_fraction : `~numpy.ndarray`, shape (ny, nx)
        That of the blocks, 0 on the extended objects.
    control_values : `~numpy.ndarray`, shape (n, k)
        Control values of the last round: a warm start for the final fit.
    """
    from scipy import ndimage

    from .optimize import fit_spline, make_design

    init_only = dataclasses.replace(config, epochs=0)
    usable = blocks.usable_fraction > 0
    points, values, fraction = blocks.points()
    # Every round refits the same samples with more of them at fraction 0.
    design = make_design(points, shape, init_only)
    # Residuals below are in units of the full-block noise. Smoothing white
    # noise with a unit-sum Gaussian of width s blocks divides its scatter
    # by 2 s sqrt(pi); one block averages factor**2 pixels.
    smoothed_noise = 1 / (2 * _EXTENDED_SMOOTH * math.sqrt(math.pi))
    pixel_noise = blocks.factor / BLOCK_NOISE_FACTOR[downscale_func]
    threshold = max(_EXTENDED_SIGNIFICANCE * smoothed_noise, _EXTENDED_LEVEL * pixel_noise)
    sky_smooth = max(_EXTENDED_SMOOTH, _SKY_SMOOTH_PIXELS / blocks.factor)
    # Gaussian means over the usable blocks only: the filter's weight on them,
    # the same every round.
    usable_weight = {sigma: np.maximum(ndimage.gaussian_filter(usable.astype(float), sigma), 1e-12)
                     for sigma in (_EXTENDED_SMOOTH, sky_smooth)}

    def usable_mean(image, sigma):
        return ndimage.gaussian_filter(image, sigma) / usable_weight[sigma]

    # Weight of every block as part of an object: 1 masks it, 0 keeps it.
    excess = np.zeros(usable.shape)
    model = None
    n_usable = np.count_nonzero(usable)
    for _ in range(_EXTENDED_ROUNDS):
        model = fit_spline(points, values, fraction * (1 - excess[usable]), shape,
                           init_only, design=design, progress=False,
                           initial_values=None if model is None else model.control_values)
        z = np.zeros(usable.shape)
        z[usable] = ((values - model.sample_values) * np.sqrt(fraction)[:, None]
                     / model.noise_sigma).max(axis=-1)
        smoothed = usable_mean(z, _EXTENDED_SMOOTH)
        clipped = usable_mean(np.minimum(z, _SKY_CLIP_LEVEL * pixel_noise), sky_smooth)
        weight, labels = _object_weights(smoothed, clipped, usable & (smoothed > threshold),
                                         _EXTENDED_SMOOTH, threshold)
        grown = _grow_regions(labels, _EXTENDED_GROW, _EXTENDED_MAX_GROW * min(usable.shape))
        updated = np.maximum(excess, np.where(usable, weight[grown], 0.0))
        if np.allclose(updated, excess, rtol=0, atol=1e-3):
            break
        kept = n_usable - updated.sum()
        if kept < max(_EXTENDED_MIN_KEPT * n_usable, 4 * (config.n_points + 3)):
            warnings.warn(
                f'extended-object masking would leave only {kept:.0f} of '
                f'{n_usable} blocks (a crowded field?); it stopped after '
                f'masking {excess.sum():.0f}. Pass a mask of the objects, or '
                'mask_extended=False.', AstropyUserWarning)
            break
        excess = updated
    return blocks.usable_fraction * (1 - excess), model.control_values
