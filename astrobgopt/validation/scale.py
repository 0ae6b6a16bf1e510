"""
Residual RMS versus scale.

A good background subtraction leaves residuals that average down like noise:
the standard deviation of means over ``w x w`` blocks falls as ``1 / w``.
Structure the background model missed stops that fall. From the STScI
notebook's ``smoothsample_masked`` and ``calculate_stats``.
"""

import numpy as np
from astropy.nddata import block_reduce

from ._checks import as_image, as_mask, check_same_shape, check_widths

__all__ = ['residual_rms_vs_scale', 'rms_ratio_to_perfect']


def _unmasked_block_means(residual, mask, width):
    """Means of the ``width x width`` blocks that hold no masked or border pixel."""
    ny, nx = residual.shape
    half = width / 2
    row, col = np.ogrid[0:ny, 0:nx]
    # Exclude a border of width/2, as the notebook does.
    excluded = mask | (row < half) | (row > ny - half) | (col < half) | (col > nx - half)
    # block_reduce trims partial blocks at the top and right edges.
    n_excluded = block_reduce(excluded, width, func=np.sum)
    means = block_reduce(residual, width, func=np.mean)
    return means[n_excluded == 0]


def residual_rms_vs_scale(residual, mask, widths):
    """
    Standard deviation of block means of a residual, per block width.

    Parameters
    ----------
    residual : array_like
        2-D residual, e.g. ``scene - background``.
    mask : array_like of bool or None
        True on pixels to leave out (sources); blocks touching a masked pixel
        are not used, so every block mean averages the same number of pixels.
    widths : sequence of int
        Block widths in pixels (each >= 1).

    Returns
    -------
    rms : `~numpy.ndarray`
        One value per width: the standard deviation of the means of the
        usable blocks; NaN where fewer than two blocks are usable.

    Raises
    ------
    ValueError
        If a width is < 1 or the mask does not match the residual.

    Notes
    -----
    For white noise of standard deviation ``sigma`` the result is
    ``sigma / width``. Blocks are laid from the lower-left corner; a border
    of ``width / 2`` pixels is excluded, as in the notebook's
    ``smoothsample_masked``.
    """
    residual = as_image(residual, 'residual')
    mask = as_mask(mask, residual.shape)
    widths = check_widths(widths)
    rms = np.full(widths.size, np.nan)
    for index, width in enumerate(widths):
        means = _unmasked_block_means(residual, mask, int(width))
        if means.size >= 2:
            rms[index] = means.std()
    return rms


def rms_ratio_to_perfect(residual, mask, widths, *, noise_residual):
    """
    Residual RMS versus scale relative to a perfect background subtraction.

    Parameters
    ----------
    residual : array_like
        2-D residual of the estimate, e.g. ``scene - background``.
    mask : array_like of bool or None
        Source mask, see `residual_rms_vs_scale`.
    widths : sequence of int
        Block widths in pixels.
    noise_residual : array_like
        The residual of a perfect estimate, ``sky - noiseless_sky`` for a
        simulation: pure noise, measured on the same blocks.

    Returns
    -------
    ratio : `~numpy.ndarray`
        ``residual_rms_vs_scale(residual) / residual_rms_vs_scale(noise_residual)``
        per width; 1 is perfect, and a ratio growing with width shows
        large-scale structure left behind.
    """
    check_same_shape(residual, noise_residual, 'residual', 'noise_residual')
    return (residual_rms_vs_scale(residual, mask, widths)
            / residual_rms_vs_scale(noise_residual, mask, widths))
