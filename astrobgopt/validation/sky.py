"""
Simulated sky with a gradient and sinc-function blemishes.

This is the "somewhat pathological" background of the STScI notebook
*Complex 2D Background*: a linear gradient plus a few broad ``sinc`` ripples of
random position, wavelength and amplitude, comparable in level to the
pixel-to-pixel noise, so that removing them needs a fair amount of smoothing
and a low-order polynomial or bicubic spline surface does poorly.
"""

from typing import NamedTuple

import numpy as np
from astropy.table import Table

from .._checks import check_count, check_non_negative, check_shape

__all__ = ['SincBlemishSky', 'make_sinc_blemish_sky']


class SincBlemishSky(NamedTuple):
    """
    A simulated sky and the truth it was made from.

    Attributes
    ----------
    sky : `~numpy.ndarray`
        Noisy sky, ``noiseless`` plus Gaussian noise (float64).
    noiseless : `~numpy.ndarray`
        Gradient plus blemishes, without noise (float64): the true background.
    blemishes : `~astropy.table.Table`
        One row per blemish: centre ``x`` (column) and ``y`` (row) in pixels,
        ``width`` (the sinc ripple length scale, pixels) and ``amplitude``.
    """

    sky: np.ndarray
    noiseless: np.ndarray
    blemishes: Table


def make_sinc_blemish_sky(shape=(1000, 1000), *, n_blemishes=8, gradient=(1.0, 0.25),
                          noise=0.1, seed=None):
    """
    Make the STScI notebook's sky: a gradient plus sinc blemishes plus noise.

    Parameters
    ----------
    shape : int or tuple of int, optional
        Image shape ``(ny, nx)``; an int makes a square image.
    n_blemishes : int, optional
        Number of sinc blemishes. The notebook uses 8 for 1000x1000
        (16 for 2000x2000).
    gradient : tuple of float, optional
        ``(g_row, g_col)``: the gradient adds ``g_row * row / ny + g_col * col / nx``,
        i.e. it rises by ``g_row`` from bottom to top and by ``g_col`` from
        left to right.
    noise : float, optional
        Standard deviation of the Gaussian pixel noise added to make ``sky``.
    seed : int, `~numpy.random.Generator`, `~numpy.random.SeedSequence` or None, optional
        Seed for `numpy.random.default_rng`; the same seed gives the same sky.

    Returns
    -------
    result : `SincBlemishSky`
        ``sky`` (noisy), ``noiseless`` and the ``blemishes`` table.

    Raises
    ------
    ValueError
        If ``shape`` is not positive, ``noise`` / ``n_blemishes`` is negative
        or ``gradient`` is not a pair.
    TypeError
        If ``shape`` or ``n_blemishes`` is not made of ints.

    Notes
    -----
    Following the notebook, each blemish centre is uniform over the frame,
    its width is ``30 + 100 * U`` pixels and its amplitude ``U`` (``U``
    uniform in [0, 1)), and its profile at distance ``r`` is
    ``amplitude * np.sinc(r / (width * pi))``, i.e.
    ``amplitude * sin(r / width) / (r / width)``. The draws are made in
    the order x, y, width, amplitude (each ``n_blemishes`` long), then the
    noise. Outputs are float64 (the notebook mixes float32 and float64).
    """
    ny, nx = check_shape(shape)
    n_blemishes = check_count(n_blemishes, 'n_blemishes')
    noise = check_non_negative(noise, 'noise')
    if np.shape(gradient) != (2,):
        raise ValueError(f'gradient must be a pair (g_row, g_col), got {gradient!r}')
    g_row, g_col = (float(g) for g in gradient)
    rng = np.random.default_rng(seed)

    blemishes = Table(
        {
            'x': nx * rng.random(n_blemishes),
            'y': ny * rng.random(n_blemishes),
            'width': 30.0 + 100.0 * rng.random(n_blemishes),
            'amplitude': rng.random(n_blemishes),
        }
    )
    row, col = np.ogrid[0:ny, 0:nx]
    noiseless = g_row * row / ny + g_col * col / nx + np.zeros((ny, nx))
    for blemish in blemishes:
        radius = np.hypot(row - blemish['y'], col - blemish['x'])
        noiseless += blemish['amplitude'] * np.sinc(radius / (blemish['width'] * np.pi))
    sky = noiseless + rng.normal(scale=noise, size=(ny, nx))
    return SincBlemishSky(sky=sky, noiseless=noiseless, blemishes=blemishes)
