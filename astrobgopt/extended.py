"""
Extended-object masking on the block grid: coherent positive structure
(nebulae, galaxies, star halos) found in the smoothed residual of a first fit
and left out of the final one.
"""

import dataclasses
import math
import warnings

import numpy as np
from astropy.utils.exceptions import AstropyUserWarning

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
# The masking never leaves fewer than this fraction of the usable blocks (nor
# fewer than 4 samples per control point): in a crowded field (a globular
# cluster filling the frame) everything looks extended, and the fit needs data.
_EXTENDED_MIN_KEPT = 0.25
# Efficiency of the median relative to the mean for Gaussian noise: the
# median of n pixels scatters sqrt(pi / 2) times more than their mean.
_MEDIAN_NOISE_FACTOR = math.sqrt(math.pi / 2)


def _grow_regions(flagged, factor, max_reach):
    """
    Grow each connected region by ``factor`` times its equivalent radius, by
    at least one and at most ``max_reach`` cells.
    """
    from scipy import ndimage

    if not flagged.any():
        return flagged
    labels, n_regions = ndimage.label(flagged)
    areas = np.bincount(labels.ravel(), minlength=n_regions + 1)
    reach = np.clip(factor * np.sqrt(areas / np.pi), 1.0, max(1.0, max_reach))
    distance, (iy, ix) = ndimage.distance_transform_edt(~flagged, return_indices=True)
    return distance <= reach[labels[iy, ix]]


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
    downscale_func : {'median', 'mean'}
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
    pixel_noise = blocks.factor / (_MEDIAN_NOISE_FACTOR if downscale_func == 'median' else 1.0)
    threshold = max(_EXTENDED_SIGNIFICANCE * smoothed_noise, _EXTENDED_LEVEL * pixel_noise)
    excess = np.zeros(usable.shape, dtype=bool)
    model = None
    for _ in range(_EXTENDED_ROUNDS):
        model = fit_spline(points, values, np.where(excess[usable], 0, fraction), shape,
                           init_only, design=design, progress=False,
                           initial_values=None if model is None else model.control_values)
        z = np.zeros(usable.shape)
        z[usable] = ((values - model.sample_values) * np.sqrt(fraction)[:, None]
                     / model.noise_sigma).max(axis=-1)
        norm = ndimage.gaussian_filter(usable.astype(float), _EXTENDED_SMOOTH)
        smoothed = ndimage.gaussian_filter(z, _EXTENDED_SMOOTH) / np.maximum(norm, 1e-12)
        flagged = _grow_regions(usable & (smoothed > threshold), _EXTENDED_GROW,
                                _EXTENDED_MAX_GROW * min(usable.shape)) & usable
        if np.array_equal(flagged | excess, excess):
            break
        kept = np.count_nonzero(usable & ~(excess | flagged))
        if kept < max(_EXTENDED_MIN_KEPT * np.count_nonzero(usable), 4 * (config.n_points + 3)):
            warnings.warn(
                f'extended-object masking would leave only {kept} of '
                f'{np.count_nonzero(usable)} blocks (a crowded field?); it stopped after '
                f'masking {np.count_nonzero(excess)}. Pass a mask of the objects, or '
                'mask_extended=False.', AstropyUserWarning)
            break
        excess |= flagged
    return np.where(excess, 0, blocks.usable_fraction), model.control_values
