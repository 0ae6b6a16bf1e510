"""
Background subtraction as a ccdproc reduction step.
"""

import os

import ccdproc
import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData, NDData, StdDevUncertainty
from astropy.units import Quantity

from .masks import combine_masks, regions_to_mask

__all__ = ['subtract_background']

# The metadata key of this step, and the 8-character FITS keyword that holds
# its (long) value when ``meta`` is a FITS header, as ccdproc does for its
# own steps with long names.
_LOG_KEY = 'subtract_background'
_LOG_SHORT_KEY = 'bgoptsub'


def subtract_background(ccd, *, estimator=None, regions=None, mask=None, add_keyword=True,
                        **estimator_kwargs):
    """
    Subtract a fitted sky background from a CCD image.

    Like the steps in `ccdproc`, this returns a new
    `~astropy.nddata.CCDData` and leaves the input untouched; the output
    keeps the unit, WCS, mask and metadata of the input and records the
    call in its ``meta``.

    Parameters
    ----------
    ccd : `~astropy.nddata.CCDData`
        The image, 2-D.
    estimator : callable, optional
        Background estimator called as ``estimator(ccd, mask=...)`` and
        returning an object with a ``background`` attribute (an array or
        Quantity of the image's shape), such as
        `~astrobgopt.SplineOptBackground` (the default) or an object that
        behaves like it. If the result also has a ``background_error``
        attribute (the standard error of the model itself), it is added in
        quadrature to the output uncertainty. Note that ``background_rms``
        is not used for that: it is the scatter of the pixels about the
        model, which the input uncertainty already describes.
    regions : str, path-like, `regions.Regions` or list of regions, optional
        Regions left out of the fit (a ds9 or CRTF file, or region objects;
        sky regions are placed with ``ccd.wcs``). See
        `~astrobgopt.regions_to_mask`.
    mask : array-like of bool, optional
        Further pixels left out of the fit (True = masked). The fit also
        leaves out pixels masked in ``ccd.mask``. Neither ``mask`` nor
        ``regions`` changes the output's mask, which is the input's.
    add_keyword : str, `~ccdproc.Keyword`, dict, bool or None, optional
        What to record in the output's ``meta``, as in ccdproc: True (the
        default) records the function's arguments under
        ``'subtract_background'``, unless ``ccdproc.conf.auto_logging`` is
        off; a string, `~ccdproc.Keyword` or dict records those instead;
        False or None records nothing. In a FITS-header ``meta`` the
        arguments are stored under the short keyword ``BGOPTSUB``, with
        ``HIERARCH SUBTRACT_BACKGROUND`` naming it, as ccdproc does for its
        own long step names.
    **estimator_kwargs
        Options of the default `~astrobgopt.SplineOptBackground` (e.g.
        ``n_points=64``); not allowed together with ``estimator``.

    Returns
    -------
    result : `~astropy.nddata.CCDData`
        The image minus the background, in the unit of ``ccd``.

    Raises
    ------
    TypeError
        If ``ccd`` is not a CCDData, or ``estimator`` and estimator options
        are both given.
    ValueError
        If the image is not 2-D, a mask has the wrong shape, or sky
        regions are given for an image without a WCS.

    Examples
    --------
    In a reduction script, after overscan subtraction and trimming::

        import ccdproc
        from astropy.nddata import CCDData
        from astrobgopt import subtract_background

        raw = CCDData.read('raw.fits', unit='adu')
        ccd = ccdproc.subtract_overscan(raw, fits_section='[520:536, :]')
        ccd = ccdproc.trim_image(ccd, fits_section='[1:512, :]')
        sky_subtracted = subtract_background(ccd, regions='galaxy.reg', n_points=16)
    """
    if not isinstance(ccd, CCDData):
        raise TypeError(f'ccd must be a CCDData; got {type(ccd).__name__} (wrap an array as '
                        "CCDData(data, unit='adu'))")
    if ccd.ndim != 2:
        raise ValueError(f'ccd must be a 2-D image; got shape {ccd.shape}')
    if estimator is None:
        from .background import SplineOptBackground

        estimator = SplineOptBackground(**estimator_kwargs)
    elif estimator_kwargs:
        raise TypeError(f'options {sorted(estimator_kwargs)} configure the default estimator; '
                        'give them to your estimator instead')

    region_mask = None if regions is None else regions_to_mask(regions, ccd.shape,
                                                               wcs=ccd.wcs)
    fit_mask = combine_masks(ccd.mask, mask, region_mask, shape=ccd.shape)
    result = estimator(ccd, mask=fit_mask)
    background = _values_in_unit(result.background, ccd.unit, 'background')
    if background.shape != ccd.shape:
        raise ValueError(f'the estimator returned a background of shape {background.shape} '
                         f'for an image of shape {ccd.shape}')

    output = ccd.copy()
    output.data = np.subtract(ccd.data, background,
                              dtype=np.result_type(ccd.data, background, np.float32))
    model_error = getattr(result, 'background_error', None)
    if model_error is not None and ccd.uncertainty is not None:
        output.uncertainty = _add_in_quadrature(
            ccd.uncertainty, _values_in_unit(model_error, ccd.unit, 'background_error'))

    log = _log_entries(add_keyword, ccd=ccd, estimator=estimator, regions=regions, mask=mask,
                       estimator_kwargs=estimator_kwargs)
    for key, value in log.items():
        _insert_log_entry(output.meta, key, value)
    return output


def _values_in_unit(values, unit, name):
    """Plain values of an estimator output, converted to the image unit."""
    if isinstance(values, Quantity):
        if unit is None:
            raise ValueError(f'the estimator returned {name} with unit {values.unit} for an '
                             'image without one')
        return values.to_value(unit)
    return np.asarray(values)


def _add_in_quadrature(uncertainty, model_error):
    """The input uncertainty with an independent model error added, in its own class."""
    deviation = uncertainty.represent_as(StdDevUncertainty)
    combined = StdDevUncertainty(np.hypot(deviation.array, model_error), unit=deviation.unit)
    return combined.represent_as(type(uncertainty))


def _log_entries(add_keyword, *, ccd, estimator, regions, mask, estimator_kwargs):
    """The ``meta`` entries to add, following ccdproc's ``log_to_metadata``."""
    if add_keyword is None or add_keyword is False:
        return {}
    if isinstance(add_keyword, str):
        return {add_keyword: None}
    if isinstance(add_keyword, ccdproc.Keyword):
        return {add_keyword.name: add_keyword.value}
    if add_keyword is not True:
        return dict(add_keyword)
    if not ccdproc.conf.auto_logging:
        return {}
    if regions is not None and not isinstance(regions, (str, os.PathLike)):
        regions = f'<{type(regions).__name__}>'
    arguments = {'ccd': ccd, 'estimator': estimator, 'regions': regions, 'mask': mask,
                 **estimator_kwargs}
    # ccdproc's format: 'name=value' pairs, arrays shown by their type only.
    text = ', '.join(f'{name}={_placeholder(value)}' for name, value in arguments.items()
                     if value is not None)
    return {_LOG_KEY: text.replace('\n', '')}


def _placeholder(value):
    """An argument as ccdproc logs it: arrays and data containers by their type."""
    if isinstance(value, (NDData, np.ndarray, Quantity)) and np.size(
            getattr(value, 'data', value)) > 1:
        return f'<{type(value).__name__}>'
    return value


def _insert_log_entry(meta, key, value):
    """Add one entry, keeping a FITS-header ``meta`` writable as it is."""
    if key == _LOG_KEY:
        # The key is longer than 8 characters and its value may be long;
        # FITS cannot have both in one card, so the value goes under a
        # short keyword and a HIERARCH card names it.
        comment = 'Shortened name for ccdproc command'
        if isinstance(meta, fits.Header):
            meta[f'HIERARCH {key.upper()}'] = (_LOG_SHORT_KEY, comment)
        else:
            meta[key] = (_LOG_SHORT_KEY, comment)
        meta[_LOG_SHORT_KEY] = value
    else:
        meta[key] = value
