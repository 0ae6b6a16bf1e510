"""
Scores of a background estimate against a scene's truth.

The figures of the scene benchmark (``benchmarks/bench_scenes.py``) and of
the regression tests: the error RMS against the true background, the bias
under the objects, the equivariance error (does adding a smooth gradient to
the data add exactly that gradient to the estimate?) and the ratio of a
``background_rms`` map to the true noise. They work on 2-D frames and on
colour frames alike (any shape, as long as the arrays agree).
"""

import numpy as np

from ._checks import check_same_shape

__all__ = ['error_rms', 'bias_under', 'smooth_gradient', 'equivariance_rms', 'rms_map_ratios',
           'estimate_pixel_noise']

_MAD_TO_SIGMA = 1.482602218505602


def _difference(estimate, truth):
    estimate = np.asarray(estimate, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    check_same_shape(truth, estimate, 'truth', 'estimate')
    return estimate - truth


def error_rms(estimate, truth):
    """
    Root-mean-square of ``estimate - truth`` over every pixel.

    A constant offset counts: the background is subtracted as it is.

    Parameters
    ----------
    estimate, truth : array_like
        The estimated and the true background, of the same shape.

    Returns
    -------
    rms : float
    """
    return float(np.sqrt(np.mean(_difference(estimate, truth) ** 2)))


def bias_under(estimate, truth, region):
    """
    Mean of ``estimate - truth`` over a region (e.g. under the objects).

    Parameters
    ----------
    estimate, truth : array_like
        The estimated and the true background, of the same shape: ``(ny, nx)``
        or ``(ny, nx, k)``.
    region : array_like of bool
        ``(ny, nx)``: the pixels to average over (all channels of them).

    Returns
    -------
    bias : float
        NaN when the region is empty.

    Raises
    ------
    ValueError
        If ``region`` does not match the first two axes of the images.
    """
    difference = _difference(estimate, truth)
    region = np.asarray(region, dtype=bool)
    if region.shape != difference.shape[:2]:
        raise ValueError(f'region has shape {region.shape} but the images have '
                         f'{difference.shape[:2]} pixels')
    if not region.any():
        return float('nan')
    return float(np.mean(difference[region]))


def smooth_gradient(shape, amplitude):
    """
    A smooth gradient to add to data: a tilted plane plus a gentle quadratic.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)``, or ``(ny, nx, k)`` for the same gradient in each of ``k``
        channels.
    amplitude : float
        Peak-to-peak range of the gradient (e.g. a few noise sigmas).

    Returns
    -------
    gradient : `~numpy.ndarray`
        Float64, from 0 to ``amplitude``; two thirds of its range are the plane
        and one third the quadratic bowl, off-centre so neither axis is a
        symmetry.
    """
    ny, nx = shape[:2]
    v, u = np.mgrid[0:ny, 0:nx] / np.array([max(ny - 1, 1), max(nx - 1, 1)])[:, None, None]
    plane = 0.6 * u + 0.4 * v
    bowl = ((u - 0.35) ** 2 + (v - 0.6) ** 2) / (0.65 ** 2 + 0.6 ** 2)
    gradient = 2 * plane + bowl
    gradient = amplitude * (gradient - gradient.min()) / np.ptp(gradient)
    if len(shape) == 3:
        gradient = np.repeat(gradient[:, :, None], shape[2], axis=2)
    return gradient


def equivariance_rms(estimate, data, gradient, *, background=None):
    """
    RMS of ``estimate(data + gradient) - estimate(data) - gradient``.

    A background estimator should carry a smooth gradient added to the data
    straight into its estimate: masking decisions that flip because a
    gradient was added, or a model too stiff to follow it, show up here. The
    metric needs no truth, so it serves real data too.

    Parameters
    ----------
    estimate : callable
        ``estimate(data) -> background``, an array shaped like ``data``.
    data : array_like
        The frame.
    gradient : array_like
        The smooth gradient to add (see `smooth_gradient`), shaped like ``data``.
    background : array_like, optional
        ``estimate(data)`` when already computed (saves one estimate).

    Returns
    -------
    rms : float
        In data units; divide by the pixel noise to compare scenes.
    """
    data = np.asarray(data, dtype=np.float64)
    gradient = np.asarray(gradient, dtype=np.float64)
    check_same_shape(data, gradient, 'data', 'gradient')
    if background is None:
        background = estimate(data)
    shifted = np.asarray(estimate(data + gradient), dtype=np.float64)
    return error_rms(shifted - gradient, background)


def rms_map_ratios(background_rms, noise):
    """
    Median and maximum of ``background_rms / noise``.

    Parameters
    ----------
    background_rms : array_like
        An estimator's noise map (e.g. ``Background2D.background_rms``).
    noise : array_like
        The true noise sigma, of the same shape (or a scalar).

    Returns
    -------
    median, maximum : float
        1 and 1 for a perfect noise map.
    """
    background_rms = np.asarray(background_rms, dtype=np.float64)
    ratio = background_rms / np.broadcast_to(np.asarray(noise, dtype=np.float64),
                                             background_rms.shape)
    return float(np.median(ratio)), float(np.max(ratio))


def estimate_pixel_noise(data):
    """
    A robust estimate of the pixel-to-pixel noise sigma of a 2-D frame.

    The median absolute deviation of the differences between horizontally
    adjacent pixels, divided by sqrt(2): smooth structure cancels in the
    differences and stars touch too few of them to move the median.

    Parameters
    ----------
    data : array_like
        2-D frame.

    Returns
    -------
    sigma : float
    """
    differences = np.diff(np.asarray(data, dtype=np.float64), axis=1).ravel()
    mad = np.median(np.abs(differences - np.median(differences)))
    return float(_MAD_TO_SIGMA * mad / np.sqrt(2))
