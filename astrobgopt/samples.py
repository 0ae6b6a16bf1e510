"""
The samples a spline fit runs on: the image's block samples and, optionally,
extra samples (user sample points), values in the fit's (stretched) units.
"""

import dataclasses
from typing import NamedTuple

import numpy as np

from .downsample import BlockSamples

__all__ = ['ExtraSamples', 'FitSamples']


class ExtraSamples(NamedTuple):
    """
    Samples beside the blocks (e.g. user sample points).

    Attributes
    ----------
    points : `~numpy.ndarray`, shape (m, 2)
        (x, y) positions in full-resolution pixels.
    values : `~numpy.ndarray`, shape (m, k)
        Values per channel.
    usable_fraction : `~numpy.ndarray`, shape (m,)
        Each sample's usable fraction relative to a full block: a sample
        that averages as many pixels as a block has 1; it may exceed 1.
    """

    points: np.ndarray
    values: np.ndarray
    usable_fraction: np.ndarray

    @classmethod
    def from_arrays(cls, points, values, usable_fraction, n_channels):
        """Check and convert user arrays (values of shape (m,) or (m, k))."""
        points = np.asarray(points, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        usable_fraction = np.asarray(usable_fraction, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]
        count = len(points)
        if (points.shape != (count, 2) or values.shape != (count, n_channels)
                or usable_fraction.shape != (count,)):
            raise ValueError(f'extra_samples must be (points (m, 2), values (m, {n_channels}), '
                             f'usable_fraction (m,)); got shapes {points.shape}, '
                             f'{values.shape}, {usable_fraction.shape}')
        if not (np.all(np.isfinite(values)) and np.all(np.isfinite(usable_fraction))
                and np.all(usable_fraction >= 0)):
            raise ValueError('extra_samples must have finite values and usable fractions >= 0')
        return cls(points, values, usable_fraction)


@dataclasses.dataclass
class FitSamples:
    """
    The samples of one fit (what `~astrobgopt.SplineOptBackground.sample` returns).

    Attributes
    ----------
    blocks : `~astrobgopt.downsample.BlockSamples`
        The image's block samples (values in the fit's units). Always
        present: the result's RMS and error maps are made on their grid.
    extra : `ExtraSamples` or None
        Further samples (values in the fit's units).
    include_blocks : bool
        Whether the fit uses the blocks, or only ``extra``.
    shape : tuple of int
        Full-resolution image shape (H, W).
    timings : dict
        Seconds spent on each stage so far.
    fitted_fraction : `~numpy.ndarray`, shape (ny, nx), or None
        The blocks' usable fraction as the fit used it (0 on the extended
        objects it left out), set by `~astrobgopt.SplineOptBackground.fit`;
        None before the fit, or when it used the blocks as they are.
    """

    blocks: BlockSamples
    extra: ExtraSamples | None
    include_blocks: bool
    shape: tuple
    timings: dict = dataclasses.field(default_factory=dict)
    fitted_fraction: np.ndarray | None = None

    def fitted_pixels(self, start, stop):
        """
        Whether each pixel of rows ``start:stop`` lies in a block the fit
        used (not on an extended object it left out), shape (rows, W).
        """
        fraction = self.blocks.usable_fraction if self.fitted_fraction is None \
            else self.fitted_fraction
        return self.blocks.pixel_rows(fraction > 0, start, stop, self.shape[1])

    def arrays(self, block_fraction=None):
        """
        ``(points, values, usable_fraction)`` of every sample the fit uses:
        the extra samples first, then the usable blocks.

        ``block_fraction`` (shape (ny, nx)) replaces the blocks' usable
        fraction (e.g. with extended objects removed).
        """
        parts = [] if self.extra is None else [tuple(self.extra)]
        if self.include_blocks:
            parts.append(self.blocks.points(block_fraction))
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate(arrays) for arrays in zip(*parts))

    def per_sample(self, block_map, block_fraction=None, *, extra_value=0.0):
        """
        A map of the blocks (ny, nx) as one value per sample of
        ``arrays(block_fraction)``, in the same order: ``extra_value`` for
        the extra samples.
        """
        parts = [] if self.extra is None else [np.full(len(self.extra[0]), extra_value)]
        if self.include_blocks:
            fraction = self.blocks.usable_fraction if block_fraction is None else block_fraction
            parts.append(block_map[fraction > 0])
        return np.concatenate(parts)
