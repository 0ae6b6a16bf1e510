"""
User sample points, rmgradient style.

A points file lists background samples, one ``x y`` pair per line (0-based
pixel column and row; ``#`` starts a comment). Each sample's value is the
Gaussian-weighted mean (``points_sigma`` pixels, window of three sigmas,
masked pixels left out) of the image around it. A pair written with negative
coordinates is a point of an isoline: it lies at ``(|x|, |y|)`` and takes the
value measured at the last sample written with positive coordinates, so a
series of such points extends one sample's level along a contour of the
background (also into areas, such as a nebula or an image border, where
nothing can be measured). The samples join the block samples of the image as
extra constraints, each with a usable fraction of the number of pixels it
averages relative to a block, or replace them (``points_only=True``).
"""

import math
import os
from pathlib import Path

import numpy as np

from ._choices import DEFAULT_POINTS_SIGMA

__all__ = ['read_points', 'sample_points', 'point_samples']

# The Gaussian sampling window reaches this many sigmas (as rmgradient's kernel).
_POINTS_WINDOW_SIGMAS = 3.0


def read_points(path):
    """
    Read background sample points, rmgradient style.

    Parameters
    ----------
    path : str or path-like
        Text file of ``x y`` pairs (0-based pixel column and row), one per
        line, separated by blanks or a comma; ``#`` starts a comment. A pair
        with both coordinates negative is an isoline point at ``(|x|, |y|)``
        that shares the value of the last positive pair before it.

    Returns
    -------
    points : `~numpy.ndarray`, shape (m, 2)
        (x, y) positions.
    source : `~numpy.ndarray` of int, shape (m,)
        For each point, the index of the point whose measured value it takes:
        itself for a sample, its anchor for an isoline point.

    Raises
    ------
    ValueError
        On a line that is not a pair of numbers, a pair with one negative
        coordinate, an isoline point with no sample before it, or a file
        without points.
    """
    points, source = [], []
    anchor = None
    text = Path(path).read_text()
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split('#', 1)[0].replace(',', ' ').split()
        if not fields:
            continue
        where = f'{os.fspath(path)}, line {number}'
        try:
            x, y = (float(field) for field in fields)
        except ValueError:
            raise ValueError(f'{where}: expected two numbers "x y"; got {line.strip()!r}') \
                from None
        # The sign is read from the text so that "-0" marks an isoline too.
        negative = [field.startswith('-') for field in fields]
        if negative[0] != negative[1]:
            raise ValueError(f'{where}: give both coordinates negative (an isoline point) or '
                             f'neither; got {line.strip()!r}')
        if negative[0]:
            if anchor is None:
                raise ValueError(f'{where}: an isoline point (negative coordinates) needs a '
                                 'sample point with positive coordinates before it')
            source.append(anchor)
        else:
            anchor = len(points)
            source.append(anchor)
        points.append((abs(x), abs(y)))
    if not points:
        raise ValueError(f'{os.fspath(path)} holds no points')
    return np.array(points, dtype=np.float64), np.array(source, dtype=int)


def sample_points(image, usable_fraction, points, *, sigma=DEFAULT_POINTS_SIGMA):
    """
    Gaussian-weighted image values around points.

    Parameters
    ----------
    image : `~numpy.ndarray`, shape (H, W, k)
        The image, channels last.
    usable_fraction : `~numpy.ndarray`, shape (H, W)
        Usable fraction of each pixel in [0, 1] (0 = masked, left out).
    points : `~numpy.ndarray`, shape (m, 2)
        (x, y) positions inside the image.
    sigma : float, optional
        Gaussian sigma in pixels; the window reaches three sigmas.

    Returns
    -------
    values : `~numpy.ndarray`, shape (m, k)
        Weighted means.
    n_effective : `~numpy.ndarray`, shape (m,)
        Effective number of pixels averaged, ``(sum w)**2 / sum w**2`` of
        the Gaussian weights times the usable fractions.

    Raises
    ------
    ValueError
        If a point lies outside the image or only on masked pixels.
    """
    height, width = image.shape[:2]
    radius = int(math.ceil(_POINTS_WINDOW_SIGMAS * sigma))
    values = np.empty((len(points), image.shape[2]))
    n_effective = np.empty(len(points))
    for index, (x, y) in enumerate(points):
        if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
            raise ValueError(f'sample point ({x:g}, {y:g}) lies outside the image '
                             f'({width} x {height} pixels; x is the column, y the row, from 0)')
        cx, cy = int(round(x)), int(round(y))
        rows = slice(max(0, cy - radius), min(height, cy + radius + 1))
        cols = slice(max(0, cx - radius), min(width, cx + radius + 1))
        yy, xx = np.mgrid[rows, cols]
        kernel = (np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / sigma ** 2)
                  * usable_fraction[rows, cols])
        total = kernel.sum()
        if total <= 0:
            raise ValueError(f'sample point ({x:g}, {y:g}) has only masked pixels around it')
        window = np.where(kernel[..., None] > 0, image[rows, cols], 0.0)
        values[index] = np.tensordot(kernel, window, axes=2) / total
        n_effective[index] = total ** 2 / np.sum(kernel ** 2)
    return values, n_effective


def point_samples(points, source, image, usable_fraction, *, factor,
                  sigma=DEFAULT_POINTS_SIGMA):
    """
    The samples of user points, as `~astrobgopt.SplineOptBackground.sample` takes them.

    Parameters
    ----------
    points, source : `~numpy.ndarray`
        Positions and value sources, as `read_points` returns them.
    image : `~numpy.ndarray`, shape (H, W, k)
        The prepared image (channels last).
    usable_fraction : `~numpy.ndarray`, shape (H, W)
        Usable fraction of each pixel.
    factor : int
        Block size of the fit: a sample that averages ``factor**2`` pixels
        counts as one block.
    sigma : float, optional
        Gaussian sigma of the sampling, in pixels.

    Returns
    -------
    extra_samples : tuple
        ``(points, values, usable_fraction)``: (m, 2) positions, (m, k)
        values and the (m,) usable fractions relative to a block. Isoline
        points repeat their anchor's value and usable fraction.
    """
    is_sample = source == np.arange(len(source))
    values, n_effective = sample_points(image, usable_fraction, points[is_sample], sigma=sigma)
    anchor_row = np.cumsum(is_sample) - 1
    return points, values[anchor_row], n_effective[anchor_row] / factor ** 2
