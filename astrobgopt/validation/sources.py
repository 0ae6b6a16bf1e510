"""
Simulated sources: elliptical Gaussians with random flux, size and angle.

The catalog follows the STScI notebook *Complex 2D Background*; the image is
made with `photutils.datasets.make_model_image` (``make_gaussian_sources_image``
is gone from photutils) and `astropy.modeling.models.Gaussian2D`.
"""

import numpy as np
from astropy.modeling.models import Gaussian2D
from astropy.table import Table
from photutils.datasets import make_model_image

from .._checks import check_count, check_non_negative, check_shape
from ._checks import as_image

__all__ = ['SOURCE_COLUMNS', 'make_source_table', 'make_source_image', 'add_sources']

#: Columns a source table must have (pixel positions, total flux, Gaussian
#: standard deviations in pixels and position angle in radians).
SOURCE_COLUMNS = ('x_mean', 'y_mean', 'flux', 'x_stddev', 'y_stddev', 'theta')


def make_source_table(shape, n_sources=1250, *, seed=None, max_flux=50.0, max_stddev=5.0,
                      min_stddev=0.1, edge=2.0):
    """
    Draw a catalog of elliptical Gaussian sources, as in the STScI notebook.

    Parameters
    ----------
    shape : int or tuple of int
        Image shape ``(ny, nx)`` the positions are drawn in.
    n_sources : int, optional
        Number of sources. The notebook uses 1250 for 1000x1000 pixels
        (5000 for 2000x2000).
    seed : int, `~numpy.random.Generator`, `~numpy.random.SeedSequence` or None, optional
        Seed for `numpy.random.default_rng`.
    max_flux : float, optional
        Fluxes are uniform in ``[0, max_flux)``.
    max_stddev : float, optional
        ``x_stddev`` and ``y_stddev`` are uniform in ``[0, max_stddev)`` pixels ...
    min_stddev : float, optional
        ... then raised to at least ``min_stddev`` pixels, so that no source is
        a delta function with an unbounded peak.
    edge : float, optional
        Positions are uniform in ``[edge, n - edge]`` along each axis.

    Returns
    -------
    sources : `~astropy.table.Table`
        Columns ``x_mean``, ``y_mean`` (pixels), ``flux`` (total, in image
        units times pixels), ``x_stddev``, ``y_stddev`` (pixels), ``theta``
        (radians, uniform in ``[0, pi)``) and ``re = sqrt(x_stddev * y_stddev)``,
        the geometric-mean radius the notebook plots residuals against.

    Raises
    ------
    ValueError
        If a range is negative, ``min_stddev > max_stddev`` or the frame is
        smaller than ``2 * edge``.

    Notes
    -----
    Draws are made in the column order above, each ``n_sources`` long.
    """
    ny, nx = check_shape(shape)
    n_sources = check_count(n_sources, 'n_sources')
    max_flux = check_non_negative(max_flux, 'max_flux')
    max_stddev = check_non_negative(max_stddev, 'max_stddev')
    min_stddev = check_non_negative(min_stddev, 'min_stddev')
    edge = check_non_negative(edge, 'edge')
    if min_stddev > max_stddev:
        raise ValueError(f'min_stddev ({min_stddev}) must not exceed max_stddev ({max_stddev})')
    if min(nx, ny) < 2 * edge:
        raise ValueError(f'shape {(ny, nx)} is too small for an edge of {edge} pixels')
    rng = np.random.default_rng(seed)

    sources = Table()
    sources['x_mean'] = edge + (nx - 2 * edge) * rng.random(n_sources)
    sources['y_mean'] = edge + (ny - 2 * edge) * rng.random(n_sources)
    sources['flux'] = max_flux * rng.random(n_sources)
    sources['x_stddev'] = np.maximum(max_stddev * rng.random(n_sources), min_stddev)
    sources['y_stddev'] = np.maximum(max_stddev * rng.random(n_sources), min_stddev)
    sources['theta'] = np.pi * rng.random(n_sources)
    sources['re'] = np.sqrt(sources['x_stddev'] * sources['y_stddev'])
    return sources


def make_source_image(shape, sources):
    """
    Render a source table as an image of elliptical Gaussians.

    Parameters
    ----------
    shape : int or tuple of int
        Output shape ``(ny, nx)``.
    sources : `~astropy.table.Table`
        Must have the columns in ``SOURCE_COLUMNS`` (as made by
        `make_source_table`); other columns are ignored.

    Returns
    -------
    image : `~numpy.ndarray`
        Float64 image of the sources, zero elsewhere.

    Raises
    ------
    ValueError
        If a column is missing or a standard deviation is not positive.

    Notes
    -----
    Each source is a `~astropy.modeling.models.Gaussian2D` with
    ``amplitude = flux / (2 pi x_stddev y_stddev)``, so that its integral is
    ``flux``, evaluated at pixel centres (``discretize_method='center'``, as
    the retired ``make_gaussian_sources_image`` did) within the model's
    bounding box (5.5 standard deviations). Sources much narrower than a
    pixel are therefore not flux-conserving; `make_source_table` keeps
    standard deviations at or above ``min_stddev`` for that reason.
    """
    shape = check_shape(shape)
    missing = [name for name in SOURCE_COLUMNS if name not in sources.colnames]
    if missing:
        raise ValueError(f'sources is missing the column(s) {missing}; '
                         f'it needs {list(SOURCE_COLUMNS)}')
    x_stddev = np.asarray(sources['x_stddev'], dtype=float)
    y_stddev = np.asarray(sources['y_stddev'], dtype=float)
    if np.any(x_stddev <= 0) or np.any(y_stddev <= 0):
        raise ValueError('source x_stddev and y_stddev must be > 0')
    if len(sources) == 0:
        return np.zeros(shape)
    # A fresh parameter table, so the caller's table is neither modified nor
    # misread (make_model_image matches columns to model parameter names).
    params = Table({name: np.asarray(sources[name], dtype=float)
                    for name in ('x_mean', 'y_mean', 'theta')})
    params['x_stddev'] = x_stddev
    params['y_stddev'] = y_stddev
    params['amplitude'] = np.asarray(sources['flux'], dtype=float) / (2 * np.pi * x_stddev
                                                                      * y_stddev)
    return make_model_image(shape, Gaussian2D(), params, x_name='x_mean', y_name='y_mean')


def add_sources(image, sources):
    """
    Return ``image`` plus the rendered ``sources`` (the input is not modified).

    Parameters
    ----------
    image : array_like
        2-D image, e.g. the ``sky`` of `make_sinc_blemish_sky`.
    sources : `~astropy.table.Table`
        Source table, see `make_source_image`.

    Returns
    -------
    scene : `~numpy.ndarray`
        ``image + make_source_image(image.shape, sources)``.
    """
    image = as_image(image, 'image')
    return image + make_source_image(image.shape, sources)
