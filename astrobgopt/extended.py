"""
Extended-object masking on the block grid: coherent positive structure
(nebulae, galaxies, star halos) found in the smoothed residual of a first fit
and left out of the final one.

**Glow or object.** Not every such structure is an object. Sky light (a
town's or the moon's glow, amplifier glow, scattered light, a reflection)
enters the field from outside or spreads from a source, while an object a
user photographs is framed inside it and has a shape of its own. Each
region found is therefore weighted as an object by ramps, and only that
weight of its blocks is masked. A region is sky light to the degree that it
is diffuse (the residual with every block clipped at 3 pixel sigmas and
smoothed over 32 pixels still reaches 1.4 (object) to 2 (sky) times the
detection threshold; a group of bright stars is not) and

* **brightest at the edge**: the ratio of its highest smoothed residual
  within two blocks of the frame's edge to its highest anywhere is 0.8
  (object) to 0.95 (sky); or
* **a round glow near the edge**: that ratio is 0.3 to 0.5, and a radial
  profile about some centre (in the frame or outside it) explains 0.86
  (object) to 0.92 (sky) of its variance. Glows fall off alike in every
  direction from their source; nebulae, galaxies seen at an angle and
  trails do not. Roundness is judged once the masking rounds have masked
  the region whole, since before that the fit has absorbed part of it.

A region peaking inside must also be **broad**: the peak of its smoothed
residual over the mean within it is 3.5 (sky) to 5 (object), since a
galaxy's, a cluster's or a star's light is concentrated towards its
centre (7 to 30 measured) and a glow's is not (2.2 to 2.6). These shape
tests see the residual with every block cut at 10 pixel sigmas, so that
a bright star inside a glow does not set its peak.

Sky light is *known* background to the degree that it is round: the final
fit's robust loss, which rejects blocks beyond 4 block-noise sigmas (a few
tenths of the pixel noise with large blocks), rejects theirs only beyond 2
pixel sigmas, so that the spline follows a glow's steep part (an amplifier
glow's corner) instead of leaving it out, while a bright star at the edge
(round, and kept as sky) is still left out.

Ramps rather than cuts, so that adding a smooth gradient to the data moves
the weights little.

Limits: the rule is about position and shape, not physics. A round,
broad object peaking near the edge (a diffuse galaxy without a bright core
in a corner) is kept as background, as is any object brightest at the edge
(a galaxy or nebula centred on or beyond it); a glow that is not round and
peaks inside the frame is masked like a nebula. Frames with such features
need ``mask_extended=False`` or a mask of the objects (see the scenes page
of the docs).
"""

import dataclasses
import math
import warnings
from typing import NamedTuple

import numpy as np
from astropy.utils.exceptions import AstropyUserWarning

from ._choices import BIWEIGHT_CUTOFF
from .downsample import BLOCK_NOISE_FACTOR

__all__ = ['ExtendedMask', 'mask_extended_objects', 'sky_light_cutoff']

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
# A region's shape (its peak at the edge, roundness and concentration below)
# is judged on the residual with every block clipped at this many pixel
# sigmas before smoothing: a bright star inside a glow would otherwise set
# its peak and spoil its profile. On small frames, where a star's halo
# spans several blocks, that made the compact glow of small_glow an object
# on 3 of 6 seeds at 256 x 256 and 1 of 6 at 384 x 384 (3.4-3.6 sigma
# errors, 0.09-0.16 with the clip); the suite's galaxies, clusters, nebulae
# and star halos are judged as before. A cut at 20 still lost one of those
# seeds (3.0 sigma); one at 6 or 8 also fixed them and took more of the
# 512 x 512 glow as known sky light, where n_points='auto' then chose 128
# points on seed 0 (0.032 sigma against 0.050, but 1.5 times slower).
_SHAPE_CLIP_LEVEL = 10.0
# ... or round about some centre, in or outside the frame, and reaching the
# edge at _BORDER_RATIO_ROUND of its peak: a glow's light falls off alike in
# every direction from its source, a nebula's does not. Roundness is the
# fraction of the region's variance that a radial profile (rings of
# _ROUND_RING times its equivalent radius) about the best centre explains.
# The ramp _ROUND was set on the scene suite's compact glow and edge nebula
# over seeds and sizes: glows measured 0.88-0.99 (most above 0.91) once
# masked whole, nebulae 0.74-0.86.
_BORDER_RATIO_ROUND = (0.3, 0.5)
_ROUND = (0.86, 0.92)
_ROUND_RING = 0.125
# ... and broad, where it peaks inside the frame: a galaxy's, a cluster's or
# a star's light is concentrated towards its centre (the peak of the
# smoothed residual over its mean within the region: 7 to 30 measured, 2.2
# to 2.6 for the compact glows, 3.2 for a Gaussian), a glow's is not. The
# peak over the mean from _CONCENTRATED[0] (broad) to [1] (concentrated).
_CONCENTRATED = (3.5, 5.0)
# Known sky light (a round glow) is fitted with the robust loss's cut-off
# raised to this many pixel sigmas (from 4 block sigmas, a few tenths of a
# pixel sigma with large blocks): the spline follows the glow's steep part
# instead of leaving it out, while anything brighter (the halo of a star at
# the edge, round and brightest there) is still left out. Least squares
# there (no cut-off) followed such a star's core: 16 sigma errors; 5 pixel
# sigmas cost 0.03 sigma on it, 2 nothing, and vignetting_amp_glow fell
# from 0.35 to 0.057 (least squares), 0.052 (5) and 0.044 (2).
_SKY_LIGHT_CUTOFF = 2.0
# A masked object is bright where its smoothed residual reaches this many
# times the detection threshold: the scene suite's nebulae, galaxies,
# clusters and star halos reach 10-500, while the sinc blemish's central
# lobe, sky that the masking takes for an object, reaches 2-5.
_BRIGHT_OBJECT = 8.0
# The masking never leaves fewer than this fraction of the usable blocks (nor
# fewer than 4 samples per control point): in a crowded field (a globular
# cluster filling the frame) everything looks extended, and the fit needs data.
_EXTENDED_MIN_KEPT = 0.25


def _ramp(value, low, high):
    """0 at or below ``low``, 1 at or above ``high``, linear between."""
    return np.clip((np.asarray(value, dtype=float) - low) / (high - low), 0.0, 1.0)


def _region_max(image, labels, n_regions):
    """
    The highest value of ``image`` in each of the ``n_regions`` regions
    labelled 1 to ``n_regions`` in ``labels`` (-inf where a region has no
    finite value): `numpy.maximum.at` is ten times faster than
    `scipy.ndimage.maximum`, which sorts the labels.
    """
    found = np.full(n_regions + 1, -np.inf)
    inside = labels > 0
    np.maximum.at(found, labels[inside], image[inside])
    return found[1:]


def _roundness(image, region):
    """
    The fraction of ``image``'s variance over ``region`` that a radial
    profile explains, about the centre (searched coarse to fine, in or up to
    half the frame outside it) that explains most.
    """
    yy, xx = np.nonzero(region)
    values = image[yy, xx]
    total = np.sum((values - values.mean()) ** 2)
    if values.size < 16 or total <= 0:
        return 0.0
    ring = max(1.0, _ROUND_RING * math.sqrt(values.size / math.pi))

    def explained(cy, cx):
        rings = (np.hypot(yy - cy, xx - cx) / ring).astype(np.intp)
        profile = np.bincount(rings, values) / np.maximum(np.bincount(rings), 1)
        return 1 - np.sum((values - profile[rings]) ** 2) / total

    ny, nx = image.shape
    centre, step = np.array([(ny - 1) / 2, (nx - 1) / 2]), np.array([ny, nx]) / 4.0
    best = -np.inf
    for _ in range(4):
        candidates = [centre + step * (i, j) for i in range(-4, 5) for j in range(-4, 5)]
        scores = [explained(*c) for c in candidates]
        if max(scores) > best:
            best, centre = max(scores), candidates[int(np.argmax(scores))]
        step = step / 4
    return best


def _concentration(image, region):
    """The peak of ``image`` over ``region`` divided by its mean there."""
    values = image[region]
    return float(values.max() / max(values.mean(), 1e-300))


def _object_weights(smoothed, clipped, flagged, band, threshold, *, round_glows=False):
    """
    Each flagged region's weight as an object (1 masks it, 0 keeps it as
    sky light) and as a round glow (0 without ``round_glows``), index 0
    for no region, and the region labels. ``smoothed`` is the smoothed
    residual whose shape is judged (`mask_extended_objects` clips its
    blocks at `_SHAPE_CLIP_LEVEL` pixel sigmas first).

    A region is sky light to the degree that (1) its smoothed residual
    peaks at the frame's edge: the ratio of its highest value within
    ``band`` cells of the edge to its highest value anywhere ramps from
    `_BORDER_RATIO_OBJECT` (object) to `_BORDER_RATIO_SKY` (sky); and (2)
    it is diffuse: its residual with every block clipped at
    `_SKY_CLIP_LEVEL` pixel sigmas, then smoothed (``clipped``), still
    reaches 1.4 to 2 times the threshold (`_SKY_DIFFUSE`), which a group of
    bright stars at the edge does not. With ``round_glows``, a diffuse
    region is also sky to the degree that it reaches the edge at
    `_BORDER_RATIO_ROUND` of its peak, is round (`_roundness`, ramp
    `_ROUND`) and broad (`_concentration`, ramp `_CONCENTRATED`); and sky
    light is a round glow to the degree that it is round. Ramps rather
    than cuts, so that a small change of the data moves the weight little.
    """
    from scipy import ndimage

    labels, n_regions = ndimage.label(flagged)

    def region_max(image):
        return _region_max(image, labels, n_regions)

    ny, nx = smoothed.shape
    yy, xx = np.ogrid[:ny, :nx]
    edge_band = np.minimum(np.minimum(yy, ny - 1 - yy), np.minimum(xx, nx - 1 - xx)) < band
    edge_peak = region_max(np.where(edge_band, smoothed, -np.inf))
    ratio = np.where(np.isfinite(edge_peak), edge_peak, 0) / np.maximum(region_max(smoothed),
                                                                        1e-300)
    diffuse = _ramp(region_max(clipped) / threshold, *_SKY_DIFFUSE)
    sky = diffuse * _ramp(ratio, _BORDER_RATIO_OBJECT, _BORDER_RATIO_SKY)
    round_glow = np.zeros_like(sky)
    near_edge = diffuse * _ramp(ratio, *_BORDER_RATIO_ROUND) if round_glows else round_glow
    for k in np.flatnonzero(near_edge):
        region = labels == k + 1
        roundness = _ramp(_roundness(smoothed, region), *_ROUND)
        broad = 1 - _ramp(_concentration(smoothed, region), *_CONCENTRATED)
        sky[k] = max(sky[k], near_edge[k] * roundness * broad)
        round_glow[k] = sky[k] * roundness
    return (np.concatenate([[0.0], 1 - sky]), np.concatenate([[0.0], round_glow]), labels)


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


class ExtendedMask(NamedTuple):
    """The outcome of `mask_extended_objects`."""

    #: The blocks' usable fraction, shape (ny, nx), 0 on the extended objects.
    usable_fraction: np.ndarray
    #: Control values of the last round, shape (n, k): a warm start for the
    #: final fit.
    control_values: np.ndarray
    #: The degree, in [0, 1], to which each block (ny, nx) lies on a round
    #: glow judged sky light: `sky_light_cutoff` raises the robust loss's
    #: cut-off there, so that the final fit follows a steep glow instead of
    #: rejecting it as outliers. 0 everywhere when the masking stopped in a
    #: crowded field.
    sky_light: np.ndarray
    #: Whether the masking stopped early because it would have left too few
    #: blocks (a crowded field; a warning says so), with only the most
    #: significant blocks masked, down to the fewest it may leave.
    crowded: bool
    #: The fraction of the usable blocks that the largest bright masked
    #: object covers: connected blocks at least half masked, where the
    #: smoothed residual reaches 8 times the detection threshold.
    largest_object: float


def _most_significant(excess, updated, significance, most):
    """
    ``excess`` (the masking so far) raised toward ``updated`` block by block,
    the most ``significance`` first, while the total stays within ``most``
    blocks.

    In a crowded field a round would mask nearly everything: what is
    masked is then where the objects' light is strongest. On 256 x 256
    frames of 3000 stars per million pixels (blocks of 3 pixels, whose
    medians the stars' wings lift by 0.22 sigma) masking nothing left
    errors of 0.16-0.21 sigma on five seeds of six; masking the most
    significant three quarters, with the stiff fit of a large object,
    0.04-0.08 (`Background2D` 16: 0.14-0.16).
    """
    added = (updated - excess).ravel()
    order = np.argsort(-significance.ravel(), kind='stable')
    taken = np.cumsum(added[order]) <= most - excess.sum()
    raised = excess.ravel().copy()
    raised[order[taken]] += added[order[taken]]
    return raised.reshape(excess.shape)


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
    mask : `ExtendedMask`
        The blocks' usable fraction with the objects removed, and what the
        masking found.
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
    crowded = False
    for _ in range(_EXTENDED_ROUNDS):
        model = fit_spline(points, values, fraction * (1 - excess[usable]), shape,
                           init_only, design=design, progress=False,
                           initial_values=None if model is None else model.control_values)
        z = np.zeros(usable.shape)
        z[usable] = ((values - model.sample_values) * np.sqrt(fraction)[:, None]
                     / model.noise_sigma).max(axis=-1)
        smoothed = usable_mean(z, _EXTENDED_SMOOTH)
        # The shape of what is found is judged without bright stars' peaks.
        stars_cut = usable_mean(np.minimum(z, _SHAPE_CLIP_LEVEL * pixel_noise), _EXTENDED_SMOOTH)
        clipped = usable_mean(np.minimum(z, _SKY_CLIP_LEVEL * pixel_noise), sky_smooth)
        weight, _, labels = _object_weights(stars_cut, clipped, usable & (smoothed > threshold),
                                            _EXTENDED_SMOOTH, threshold)
        grown = _grow_regions(labels, _EXTENDED_GROW, _EXTENDED_MAX_GROW * min(usable.shape))
        updated = np.maximum(excess, np.where(usable, weight[grown], 0.0))
        if np.allclose(updated, excess, rtol=0, atol=1e-3):
            break
        kept = n_usable - updated.sum()
        fewest = max(_EXTENDED_MIN_KEPT * n_usable, 4 * (config.n_points + 3))
        if kept < fewest:
            excess = _most_significant(excess, updated, smoothed, n_usable - fewest)
            # mask_extended=False is no remedy here: on the scene suite's
            # 256 x 256 star field it fitted the stars' wings (0.18-0.19
            # sigma against 0.05-0.07), where a source mask from photutils'
            # detect_sources gave 0.055-0.065 without this warning.
            warnings.warn(
                f'extended-object masking would leave only {kept:.0f} of '
                f'{n_usable} blocks (a crowded field, or stars whose wings fill '
                f'small blocks); it stopped after masking the {excess.sum():.0f} most '
                'significant. A mask of the sources (mask=) avoids this.', AstropyUserWarning)
            crowded = True
            break
        excess = updated
    sky_light = np.zeros(usable.shape)
    if not crowded:
        # The last round's regions judged once more, round glows included: a
        # region is judged round once masked whole (until then the fit
        # absorbs part of it and what is left is its core, whatever its
        # shape). What is sky light is kept; a round glow is also known to
        # be background (a trail entering from the edge is kept, not known:
        # where the spline cannot follow it, the robust loss leaves it out).
        weight, round_glow, labels = _object_weights(
            stars_cut, clipped, usable & (smoothed > threshold), _EXTENDED_SMOOTH, threshold,
            round_glows=True)
        grown = _grow_regions(labels, _EXTENDED_GROW, _EXTENDED_MAX_GROW * min(usable.shape))
        excess = np.where(grown > 0, np.minimum(excess, weight[grown]), excess)
        sky_light = np.where(usable, round_glow[grown], 0.0)
    objects, n_objects = ndimage.label(excess >= 0.5)
    bright = _region_max(smoothed, objects, n_objects) >= _BRIGHT_OBJECT * threshold
    bright_sizes = np.bincount(objects.ravel(), minlength=n_objects + 1)[1:][bright]
    largest = bright_sizes.max() / n_usable if bright_sizes.size else 0.0
    return ExtendedMask(blocks.usable_fraction * (1 - excess), model.control_values, sky_light,
                        crowded, float(largest))


def sky_light_cutoff(sky_light, factor, downscale_func):
    """
    The robust loss's cut-off (`~astrobgopt.optimize.fit_spline`'s
    ``outlier_cutoff``) for blocks known to be sky light to the degree
    ``sky_light``: from 4 block-noise sigmas up to 2 pixel sigmas
    (`_SKY_LIGHT_CUTOFF`), where that is more.

    Parameters
    ----------
    sky_light : `~numpy.ndarray`
        As `mask_extended_objects` returns it (per block or per sample).
    factor : int
        The block size in pixels.
    downscale_func : {'median', 'clipped_mean', 'mean'}
        The block statistic.

    Returns
    -------
    cutoff : `~numpy.ndarray`
        Shaped like ``sky_light``, in units of the blocks' noise.
    """
    pixel_noise = factor / BLOCK_NOISE_FACTOR[downscale_func]
    return BIWEIGHT_CUTOFF + sky_light * max(_SKY_LIGHT_CUTOFF * pixel_noise - BIWEIGHT_CUTOFF,
                                             0.0)
