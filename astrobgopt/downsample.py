"""
Block downscaling of an image under a mask.

The background fit runs on a low-resolution copy of the image: each block of
``factor x factor`` pixels becomes one sample, its value the median (or mean)
of the block's usable pixels, and its usable fraction that of the block's
pixels (fractionally masked pixels counting fractionally). Blocks at the right
and top edges may be partial; their sample sits at the centre of the pixels
they cover.
"""

import numpy as np

from ._choices import DOWNSCALE_FUNCTIONS

__all__ = ['BlockSamples', 'block_reduce_masked', 'pixel_blocks', 'DOWNSCALE_FUNCTIONS']


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
    """

    def __init__(self, values, usable_fraction, x, y, factor):
        self.values = values
        self.usable_fraction = usable_fraction
        self.x = x
        self.y = y
        self.factor = factor

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
        return block_map[np.arange(start, stop) // self.factor][:, np.arange(width) // self.factor]

    def with_values(self, values):
        """The same blocks with other ``values`` (e.g. stretched), shape (ny, nx, k)."""
        return BlockSamples(values, self.usable_fraction, self.x, self.y, self.factor)


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


def _masked_median(blocks, usable):
    """Median over the last axis of the entries flagged usable (NaN if none)."""
    usable = np.broadcast_to(usable, blocks.shape)
    if usable.all():
        return np.median(blocks, axis=-1)
    # Unusable entries sort to the end as NaN; the median of the k usable ones
    # is then the mean of sorted positions (k - 1) // 2 and k // 2.
    ordered = np.sort(np.where(usable, blocks, np.nan), axis=-1)
    count = usable.sum(axis=-1)
    low = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0)[..., None], -1)[..., 0]
    high = np.take_along_axis(ordered, np.maximum(count // 2, 0)[..., None], -1)[..., 0]
    median = 0.5 * (low + high)
    median[count == 0] = np.nan
    return median


def _reduce_strip(data, usable_fraction, factor, func):
    """(values, usable fraction) of the blocks of a strip of whole block rows."""
    pixel_fraction = pixel_blocks(np.asarray(usable_fraction, dtype=np.float32), factor, 0.0)
    block_fraction = pixel_fraction.sum(axis=-1, dtype=np.float64) / factor**2
    pixel_values = pixel_blocks(data, factor, 0.0)
    pixel_fraction = pixel_fraction[:, :, None, :]
    if func == 'median':
        return _masked_median(pixel_values, pixel_fraction > 0).astype(np.float64), block_fraction
    total = pixel_fraction.sum(axis=-1, dtype=np.float64)
    with np.errstate(invalid='ignore', divide='ignore'):
        weighted = np.where(pixel_fraction > 0, pixel_values, 0) * pixel_fraction
        return weighted.sum(axis=-1, dtype=np.float64) / total, block_fraction


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
    func : {'median', 'mean'}, optional
        Block statistic. The median ignores pixels whose usable fraction is
        0 and rejects most stars; the mean is weighted by the usable
        fractions.

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
    return BlockSamples(values, block_fraction,
                        _block_centres(width, factor), _block_centres(height, factor), factor)
