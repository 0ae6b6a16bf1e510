"""
Block downscaling of an image under a mask.

The background fit runs on a low-resolution copy of the image: each block of
``factor x factor`` pixels becomes one sample, its value the median (or mean)
of the block's usable pixels and its weight the fraction of the block that is
usable. Blocks at the right and top edges may be partial; their sample sits at
the centre of the pixels they cover.
"""

import numpy as np

__all__ = ['BlockSamples', 'block_reduce_masked', 'DOWNSCALE_FUNCTIONS']

#: Block statistics understood by `block_reduce_masked`.
DOWNSCALE_FUNCTIONS = ('median', 'mean')


class BlockSamples:
    """
    Low-resolution samples of an image.

    Attributes
    ----------
    values : `~numpy.ndarray`, shape (ny, nx, n_channels)
        Block statistic per channel; NaN where a block has no usable pixel.
    weights : `~numpy.ndarray`, shape (ny, nx)
        Usable fraction of each block (0 to 1; soft pixel weights count
        fractionally).
    x, y : `~numpy.ndarray`
        Full-resolution pixel coordinates of the block centres (columns and
        rows).
    factor : int
        Block size in pixels.
    """

    def __init__(self, values, weights, x, y, factor):
        self.values = values
        self.weights = weights
        self.x = x
        self.y = y
        self.factor = factor

    @property
    def shape(self):
        """Shape (ny, nx) of the block grid."""
        return self.weights.shape

    def points(self, weights=None):
        """
        Return ``(points, values, weights)`` of the usable blocks, flattened.

        ``weights`` (shape (ny, nx)) replaces the block weights, e.g. to
        exclude more blocks.
        """
        weights = self.weights if weights is None else weights
        yy, xx = np.meshgrid(self.y, self.x, indexing='ij')
        good = weights > 0
        points = np.stack([xx[good], yy[good]], axis=1)
        return points, self.values[good], weights[good]


def _block_centres(length, factor):
    starts = np.arange(0, length, factor)
    stops = np.minimum(starts + factor, length)
    return (starts + stops - 1) / 2.0


def _blocks(array, factor, fill):
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


def block_reduce_masked(data, weights, factor, *, func='median'):
    """
    Downscale an image by blocks, ignoring masked pixels.

    Parameters
    ----------
    data : `~numpy.ndarray`, shape (H, W) or (H, W, n_channels)
        The image; non-finite values must already carry zero weight.
    weights : `~numpy.ndarray`, shape (H, W)
        Pixel weights in [0, 1]; 0 excludes a pixel (a mask), intermediate
        values down-weight it.
    factor : int
        Block size in pixels (>= 1).
    func : {'median', 'mean'}, optional
        Block statistic. The median ignores pixels of zero weight and rejects
        most stars; the mean is weighted by the pixel weights.

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
        values[weights <= 0] = np.nan
        block_weights = np.asarray(weights, dtype=np.float64)
    else:
        pixel_weights = _blocks(np.asarray(weights, dtype=np.float32), factor, 0.0)
        block_weights = pixel_weights.sum(axis=-1, dtype=np.float64) / factor**2
        pixel_values = _blocks(data, factor, 0.0)
        pixel_weights = pixel_weights[:, :, None, :]
        if func == 'median':
            values = _masked_median(pixel_values, pixel_weights > 0).astype(np.float64)
        else:
            total = pixel_weights.sum(axis=-1, dtype=np.float64)
            with np.errstate(invalid='ignore', divide='ignore'):
                weighted = np.where(pixel_weights > 0, pixel_values, 0) * pixel_weights
                values = weighted.sum(axis=-1, dtype=np.float64) / total
    return BlockSamples(values, block_weights,
                        _block_centres(width, factor), _block_centres(height, factor), factor)
