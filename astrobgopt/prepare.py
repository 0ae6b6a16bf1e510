"""
Input preparation, the first stage of the fit: data (array, Quantity or
NDData) to the float (H, W, k) image the fit works on, with the masks,
regions, non-finite pixels and thresholds combined into the usable fraction
of every pixel, and the fit's stretch chosen.
"""

from typing import NamedTuple

import numpy as np
from astropy.nddata import NDData
from astropy.units import Quantity

from .masks import regions_to_mask, threshold_mask, validate_mask
from .stretch import Stretch

__all__ = ['PreparedImage', 'prepare_image', 'working_dtype']


class PreparedImage(NamedTuple):
    """
    An image ready for sampling (what `~astrobgopt.SplineOptBackground.prepare` returns).

    Attributes
    ----------
    image : `~numpy.ndarray`, shape (H, W, k)
        The data as floats of ``dtype``, channels last, non-finite pixels
        set to 0.
    unit : `~astropy.units.UnitBase` or None
        Unit of the input, put back on the outputs.
    dtype : `~numpy.dtype`
        Floating type of the image and the outputs, in native byte order
        (see `working_dtype`).
    usable_fraction : `~numpy.ndarray`, shape (H, W)
        Usable fraction of each pixel in [0, 1]: 1 minus the masked fraction
        (0 where masked, outside the thresholds, non-finite or uncovered).
        Read-only; where nothing is masked, a broadcast 1 that takes no
        memory.
    stretch : `~astrobgopt.stretch.Stretch` or None
        The stretch the fit runs in.
    coverage : `~numpy.ndarray` of bool, shape (H, W), or None
        Pixels without coverage (set to the fill value in the outputs).
    channel_axis : int or None
        Axis of the channels in the input (None for a 2-D image).
    """

    image: np.ndarray
    unit: object
    dtype: np.dtype
    usable_fraction: np.ndarray
    stretch: Stretch | None
    coverage: np.ndarray | None
    channel_axis: int | None


def working_dtype(dtype):
    """
    The floating type a fit of data of ``dtype`` works and answers in.

    float64, and integers wider than 16 bits (which float32 cannot hold to
    the unit), give float64; float32, float16, booleans and integers of at
    most 16 bits give float32. Always in native byte order (FITS data are
    big-endian).
    """
    dtype = np.dtype(dtype)
    wide = dtype.itemsize > 4 if dtype.kind == 'f' else dtype.itemsize > 2
    return np.dtype(np.float64 if wide else np.float32)


def _split_input(data, wcs):
    """
    Return (array, unit, masks, wcs) from an ndarray, masked array, Quantity
    or NDData; ``masks`` are the masks the input carries (NDData's, a masked
    array's), each of the array's shape or (H, W).
    """
    unit = None
    masks = []
    if isinstance(data, NDData):
        if data.mask is not None:
            masks.append(('NDData mask', data.mask))
        if wcs is None:
            wcs = data.wcs
        unit = data.unit
        data = data.data
    if isinstance(data, Quantity):
        unit = data.unit
        data = data.value
    if isinstance(data, np.ma.MaskedArray):
        masks.append(('masked array mask', np.ma.getmaskarray(data)))
        data = np.ma.getdata(data)
    if not isinstance(data, np.ndarray):
        try:
            data = np.asarray(data)
        except (TypeError, ValueError) as exc:
            raise TypeError(f'data must be an array, Quantity or NDData; got {type(data)}') from exc
    if data.dtype.kind not in 'biuf':
        raise TypeError(f'data must be numeric; got dtype {data.dtype}')
    return data, unit, masks, wcs


def _channels_last(array, channel_axis):
    """The data as (H, W, k): a 2-D image gets one channel."""
    if channel_axis is None:
        if array.ndim != 2:
            raise ValueError(f'data must be a 2-D image; got shape {array.shape} '
                             '(for colour images pass channel_axis=)')
        return array[..., None]
    if array.ndim != 3:
        raise ValueError(f'with channel_axis, data must be 3-D; got shape {array.shape}')
    return np.moveaxis(array, channel_axis, -1)


def prepare_image(data, *, mask=None, coverage_mask=None, regions=None, wcs=None,
                  channel_axis=None, stretch=None, delinearization_quantile=0.95,
                  threshold_min=None, threshold_max=None):
    """
    The image of a fit and the usable fraction of each of its pixels.

    The masks, regions and non-finite pixels come first, the stretch (if
    any) is chosen from the pixels they leave, then the thresholds (in
    stretched units with a stretch) mask more.

    Parameters
    ----------
    data, mask, coverage_mask, regions, wcs, channel_axis
        As for `~astrobgopt.SplineOptBackground.__call__`.
    stretch : {None, 'mtf'}, optional
        Stretch of the fit.
    delinearization_quantile : float, optional
        Quantile the 'mtf' stretch maps to 1.
    threshold_min, threshold_max : float, optional
        Pixels below/above these levels are masked (stretched units with a
        stretch, else data units).

    Returns
    -------
    prepared : `PreparedImage`

    Raises
    ------
    TypeError, ValueError
        On data or masks of the wrong kind or shape, or when nothing is
        left to fit.
    """
    array, unit, data_masks, wcs = _split_input(data, wcs)
    dtype = working_dtype(array.dtype)
    # No copy for native float32/float64 data: the image is the caller's.
    image = _channels_last(np.asarray(array, dtype=dtype), channel_axis)
    shape = image.shape[:2]

    masked = np.zeros(shape, dtype=np.float32)
    for name, given in (('mask', mask), *data_masks):
        if given is not None:
            given = np.asarray(given)
            if given.ndim == 3 and given.shape == array.shape:  # per channel: any masks all
                given = _channels_last(given, channel_axis).any(axis=-1)
            masked = np.maximum(masked, validate_mask(given, shape, name=name, fractional=True))
    coverage = None
    if coverage_mask is not None:
        coverage = validate_mask(coverage_mask, shape, name='coverage_mask',
                                 fractional=True) > 0
        masked[coverage] = 1
    if regions is not None:
        masked[regions_to_mask(regions, shape, wcs=wcs)] = 1
    finite = np.all(np.isfinite(image), axis=-1)
    masked[~finite] = 1
    if not finite.all():
        image = np.where(finite[..., None], image, 0)

    fit_stretch = None
    if stretch == 'mtf':
        fit_stretch = Stretch.from_data(image[masked < 1], quantile=delinearization_quantile)
    # Thresholds are given in the fit's units: map them back to the data's.
    bounds = [level if level is None or fit_stretch is None else float(fit_stretch.inverse(level))
              for level in (threshold_min, threshold_max)]
    if bounds != [None, None]:
        outside = threshold_mask(image, minimum=bounds[0], maximum=bounds[1])
        masked[np.any(outside, axis=-1)] = 1
    # np.zeros' pages are only made when written: an unmasked image costs
    # no memory for its usable fraction, whose full-size copy would stay
    # with the result (a third of a fit's peak beyond its outputs).
    if not masked.any():
        usable_fraction = np.broadcast_to(np.float32(1), shape)
    else:
        usable_fraction = np.subtract(1, masked, out=masked)  # in place: an image less
        usable_fraction.flags.writeable = False
        if not np.any(usable_fraction > 0):
            raise ValueError('every pixel is masked or non-finite: nothing to fit')
    return PreparedImage(image=image, unit=unit, dtype=dtype, usable_fraction=usable_fraction,
                         stretch=fit_stretch, coverage=coverage, channel_axis=channel_axis)
