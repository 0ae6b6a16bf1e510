"""
Block downscaling of an image under a mask.

The background fit runs on a low-resolution copy of the image: each block of
``factor x factor`` pixels becomes one sample, its value a statistic of the
block's usable pixels (a clipped mean, the median or the mean), and its usable
fraction that of the block's pixels (fractionally masked pixels counting
fractionally). Blocks at the right
and top edges may be partial; their sample sits at the centre of the pixels
they cover.

In a crowded star field every block holds the light of faint stars, which
lifts its median above the sky; `BlockSamples.crowding_corrected` lowers the
blocks by that bias, measured from how much wider each block's distribution
is above its median than below.
"""

import math

import numpy as np

from ._choices import DOWNSCALE_FUNCTIONS

__all__ = ['BlockSamples', 'block_reduce_masked', 'lower_width', 'nan_percentiles',
           'pixel_blocks', 'BLOCK_NOISE_FACTOR', 'CROWDING_FULL', 'CROWDING_MIN_PIXELS',
           'CROWDING_ONSET', 'DOWNSCALE_FUNCTIONS']


class BlockSamples:
    """
    Low-resolution samples of an image.

    Attributes
    ----------
    values : `~numpy.ndarray`, shape (ny, nx, n_channels)
        Block statistic per channel; NaN where a block has no usable pixel.
    usable_fraction : `~numpy.ndarray`, shape (ny, nx)
        Usable fraction of each block (0 to 1; fractionally masked pixels
        count fractionally).
    x, y : `~numpy.ndarray`
        Full-resolution pixel coordinates of the block centres (columns and
        rows).
    factor : int
        Block size in pixels.
    widths : tuple of `~numpy.ndarray` or None
        ``(lower, upper)``, each of shape (ny, nx, n_channels): the spread
        of each block's pixels below its median (median minus 15.87th
        percentile) and above it (84.13th percentile minus median), both
        the Gaussian sigma for pure noise; None for the 'mean' statistic
        and for blocks of one pixel.
    """

    def __init__(self, values, usable_fraction, x, y, factor, widths=None):
        self.values = values
        self.usable_fraction = usable_fraction
        self.x = x
        self.y = y
        self.factor = factor
        self.widths = widths

    @property
    def shape(self):
        """Shape (ny, nx) of the block grid."""
        return self.usable_fraction.shape

    def points(self, usable_fraction=None):
        """
        Return ``(points, values, usable_fraction)`` of the usable blocks,
        flattened.

        ``usable_fraction`` (shape (ny, nx)) replaces that of the blocks,
        e.g. to exclude more blocks.
        """
        usable_fraction = self.usable_fraction if usable_fraction is None else usable_fraction
        yy, xx = np.meshgrid(self.y, self.x, indexing='ij')
        good = usable_fraction > 0
        points = np.stack([xx[good], yy[good]], axis=1)
        return points, self.values[good], usable_fraction[good]

    def pixel_rows(self, block_map, start, stop, width):
        """
        A block map (ny, nx) at full resolution for pixel rows
        ``start:stop`` of a ``width``-pixel-wide image: each pixel takes its
        block's value.
        """
        first = start // self.factor
        # Whole block rows repeated, then cut: a fancy index on both axes
        # costs seven times more at 6 megapixels.
        rows = block_map[first:(stop - 1) // self.factor + 1][:, np.arange(width) // self.factor]
        offset = start - first * self.factor
        return np.repeat(rows, self.factor, axis=0)[offset:offset + stop - start]

    def with_values(self, values):
        """The same blocks with other ``values`` (e.g. stretched), shape (ny, nx, k)."""
        return BlockSamples(values, self.usable_fraction, self.x, self.y, self.factor,
                            self.widths)

    @property
    def crowding(self):
        """
        How crowded the image is, per channel: the median over the usable
        blocks of the excess of their upper width over their lower width
        (see ``widths``), in units of the lower width. About 0 for noise
        and a few stars, 0.1 for a globular cluster's field, 1 for a dense
        Milky Way field; NaN without ``widths`` and for blocks of fewer than
        `CROWDING_MIN_PIXELS` pixels, whose few order statistics cannot
        tell a skew from noise and ties.
        """
        n_channels = self.values.shape[2]
        if (self.widths is None or self.factor ** 2 < CROWDING_MIN_PIXELS
                or not np.any(self.usable_fraction > 0)):
            return np.full(n_channels, np.nan)
        lower, upper = (width[self.usable_fraction > 0] for width in self.widths)
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.nanmedian(np.where(lower > 0, (upper - lower) / lower, np.nan), axis=0)

    @property
    def crowding_weight(self):
        """
        Per channel, how fully corrections for a crowded field apply: 0 up
        to a `crowding` of `CROWDING_ONSET` (and where it is not measured),
        rising linearly to 1 at `CROWDING_FULL`, so that frames of few
        stars, where the excess is mostly noise, are left as they are and
        no choice flips between similar frames. It lowers the blocks
        (`crowding_corrected`) and moves the result's ``background_rms``
        towards the residual's spread without the stars' pixels.
        """
        weight = np.clip((self.crowding - CROWDING_ONSET) / (CROWDING_FULL - CROWDING_ONSET),
                         0, 1)
        return np.nan_to_num(weight, nan=0.0)

    def crowding_corrected(self):
        """
        The blocks, each lowered by the light of the faint stars it holds in
        a crowded field.

        Faint stars only add light: the block's distribution stretches
        upward and its median rises above the sky, by about the excess of
        its upper width over its lower width (``widths``). Each block is
        lowered by that excess times the `crowding_weight`. On the
        milky_way scene (crowding 1.06) the error fell from 1.86 to 0.19
        sigma; the lowering of 1 was the best of 0.75, 1, 1.25 and 1.5
        there and at 0.003 to 0.1 stars per pixel (see the scenes page of
        the docs).
        """
        weight = self.crowding_weight
        if not weight.any():
            return self
        lower, upper = self.widths
        return self.with_values(self.values - weight * (upper - lower))


# Pixels per strip of `block_reduce_masked` (about 4 million: 16 MB of float32).
_STRIP_PIXELS = 4_000_000


def _block_centres(length, factor):
    starts = np.arange(0, length, factor)
    stops = np.minimum(starts + factor, length)
    return (starts + stops - 1) / 2.0


def pixel_blocks(array, factor, fill):
    """View ``array`` (H, W, ...) as (ny, nx, ..., factor**2), padding with ``fill``."""
    height, width = array.shape[:2]
    pad_y = -height % factor
    pad_x = -width % factor
    if pad_y or pad_x:
        pad = [(0, pad_y), (0, pad_x)] + [(0, 0)] * (array.ndim - 2)
        array = np.pad(array, pad, constant_values=fill)
    ny, nx = array.shape[0] // factor, array.shape[1] // factor
    trailing = array.shape[2:]
    blocks = array.reshape((ny, factor, nx, factor) + trailing)
    blocks = np.moveaxis(blocks, (1, 3), (-2, -1))
    return blocks.reshape((ny, nx) + trailing + (factor * factor,))


# Percentiles one Gaussian sigma below and above the median.
GAUSSIAN_LOWER_PERCENTILE = 15.865525393145708
GAUSSIAN_UPPER_PERCENTILE = 100 - GAUSSIAN_LOWER_PERCENTILE
#: `BlockSamples.crowding_corrected` starts lowering the blocks at this
#: crowding and lowers them fully from CROWDING_FULL. Over the scene suite,
#: frames other than milky_way's (1.06) are at most 0.11 (globular_cluster).
CROWDING_ONSET = 0.1
CROWDING_FULL = 0.4
#: Blocks of fewer pixels do not measure the crowding: on the 300 x 300
#: frame of M13 (blocks of 9 integer-valued pixels, many tied) it read 0.35,
#: and 0.53 once a smooth gradient broke the ties.
CROWDING_MIN_PIXELS = 64
# The 'clipped_mean' block statistic keeps the pixels within this many
# lower-side widths (`lower_width`) of the block's median.
_CLIP_WIDTHS = 3.0
#: How many times the noise of the mean of n Gaussian pixels each block
#: statistic scatters: the median sqrt(pi / 2), a 3-sigma clipped mean about
#: the median nearly the mean's (measured: 1.07 for blocks of 25 pixels, 1.02 for 144 to 2000
#: pixels).
BLOCK_NOISE_FACTOR = {'median': math.sqrt(math.pi / 2), 'mean': 1.0, 'clipped_mean': 1.03}


# NumPy's vectorized sort beats numpy.partition on rows of up to about this
# many values, even for the two entries of a median (float32, ns per value:
# 8.7 against 11.8 at 2025 values, 11.3 and 11.1 at 4096), and loses beyond
# (13.9 against 11.0 at 8192, 25 against 11 at 133,225, a mosaic's blocks).
_PARTITION_LENGTH = 4096


def nan_percentiles(values, percentiles):
    """
    Percentiles over the last axis ignoring NaN, as `numpy.nanpercentile`'s
    linear method computes them (NaN where a row has no value).

    From one sort, NaN last (`numpy.nanpercentile` loops over the rows in
    Python when any value is NaN, a hundred times slower on a map of
    blocks); or, for rows longer than `_PARTITION_LENGTH` without NaN,
    from one partition at the entries needed.
    """
    finite = np.isfinite(values)
    count = np.count_nonzero(finite, axis=-1)
    last = np.maximum(count - 1, 0)[..., None]
    positions = [last * (percentile / 100) for percentile in percentiles]
    if values.shape[-1] > _PARTITION_LENGTH and finite.all() and values.size:
        # Every row has the same count: partition at the entries needed.
        last_index = values.shape[-1] - 1
        floors = {math.floor(last_index * percentile / 100) for percentile in percentiles}
        kth = sorted(floors | {min(index + 1, last_index) for index in floors})
        ordered = np.partition(values, kth, axis=-1)
    else:
        ordered = np.sort(values, axis=-1)  # NaN sort last
    results = []
    for position in positions:
        below = np.floor(position).astype(np.intp)
        lower = np.take_along_axis(ordered, below, axis=-1)
        upper = np.take_along_axis(ordered, np.minimum(below + 1, last), axis=-1)
        result = (lower + (upper - lower) * (position - below))[..., 0]
        results.append(np.where(count > 0, result, np.nan))
    return results


def lower_width(values):
    """
    ``(median, width)`` over the last axis, ignoring NaN: the width is the
    median minus the 15.87th percentile, the sigma of Gaussian noise from the
    side of the distribution that stars (positive only) disturb least.
    """
    low, median = nan_percentiles(values, (GAUSSIAN_LOWER_PERCENTILE, 50))
    return median, median - low


def _clipped_mean(values, weight, median, width):
    """
    Weighted mean over the last axis of the entries (NaN where unusable)
    within `_CLIP_WIDTHS` lower-side widths ``width`` of their ``median``:
    nearly as precise as the mean on pure noise, as robust as the median
    to stars. One clipping step, for the cost of one partition
    (`astropy.stats.sigma_clip` iterates, and removes more of a crowded
    field's faint stars).
    """
    with np.errstate(invalid='ignore'):
        kept = np.abs(values - median[..., None]) <= _CLIP_WIDTHS * width[..., None]
    weight = np.where(kept, weight, 0)
    with np.errstate(invalid='ignore', divide='ignore'):
        return (np.where(kept, values, 0) * weight).sum(axis=-1, dtype=np.float64) \
            / weight.sum(axis=-1, dtype=np.float64)


def _reduce_strip(data, usable_fraction, factor, func):
    """
    (values, usable fraction, widths) of the blocks of a strip of whole
    block rows (see `BlockSamples`).
    """
    pixel_fraction = pixel_blocks(np.asarray(usable_fraction, dtype=np.float32), factor, 0.0)
    block_fraction = pixel_fraction.sum(axis=-1, dtype=np.float64) / factor**2
    pixel_values = pixel_blocks(data, factor, 0.0)
    pixel_fraction = pixel_fraction[:, :, None, :]
    if func != 'mean':
        usable = pixel_fraction > 0
        if not usable.all():
            pixel_values = np.where(usable, pixel_values, np.nan)
        low, median, high = (percentile.astype(np.float64) for percentile in nan_percentiles(
            pixel_values, (GAUSSIAN_LOWER_PERCENTILE, 50, GAUSSIAN_UPPER_PERCENTILE)))
        widths = (median - low, high - median)
        if func == 'median':
            return median, block_fraction, widths
        return (_clipped_mean(pixel_values, pixel_fraction, median, widths[0]), block_fraction,
                widths)
    total = pixel_fraction.sum(axis=-1, dtype=np.float64)
    with np.errstate(invalid='ignore', divide='ignore'):
        weighted = np.where(pixel_fraction > 0, pixel_values, 0) * pixel_fraction
        return weighted.sum(axis=-1, dtype=np.float64) / total, block_fraction, None


def block_reduce_masked(data, usable_fraction, factor, *, func='median'):
    """
    Downscale an image by blocks, ignoring masked pixels.

    Parameters
    ----------
    data : `~numpy.ndarray`, shape (H, W) or (H, W, n_channels)
        The image; non-finite values must already have a usable fraction
        of 0.
    usable_fraction : `~numpy.ndarray`, shape (H, W)
        Usable fraction of each pixel in [0, 1]; 0 excludes a pixel (a
        mask), intermediate values down-weight it.
    factor : int
        Block size in pixels (>= 1).
    func : {'median', 'clipped_mean', 'mean'}, optional
        Block statistic, of the pixels whose usable fraction is above 0,
        weighted by it for the means. The median rejects most stars;
        'clipped_mean' averages the pixels within 3 sigma of the block's
        median (sigma from the side below the median, which stars do not
        reach), as robust to bright stars and with 1.2 times less noise; the
        mean rejects nothing.

    Returns
    -------
    samples : `BlockSamples`
    """
    if func not in DOWNSCALE_FUNCTIONS:
        raise ValueError(f'downscale function must be one of {DOWNSCALE_FUNCTIONS}; '
                         f'got {func!r}')
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[..., None]
    height, width = data.shape[:2]
    widths = None
    if factor == 1:
        values = data.astype(np.float64, copy=True)
        values[usable_fraction <= 0] = np.nan
        block_fraction = np.asarray(usable_fraction, dtype=np.float64)
    else:
        # A strip of block rows at a time: the blocks are copies of the
        # pixels, and a whole large frame of them would cost several images.
        rows = factor * max(1, _STRIP_PIXELS // (factor * factor * width))
        strips = [_reduce_strip(data[start:start + rows], usable_fraction[start:start + rows],
                                factor, func) for start in range(0, height, rows)]
        values = np.concatenate([strip[0] for strip in strips])
        block_fraction = np.concatenate([strip[1] for strip in strips])
        if strips[0][2] is not None:
            widths = tuple(np.concatenate([strip[2][side] for strip in strips])
                           for side in range(2))
    return BlockSamples(values, block_fraction,
                        _block_centres(width, factor), _block_centres(height, factor), factor,
                        widths)
