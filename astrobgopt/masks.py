"""
Pixel masks for the background fit: ds9/CRTF regions, value thresholds,
their combination, the one mask validator and mask files.

Every mask here is a boolean array of the image's shape in which True means
*masked*: the pixel is left out of the background fit; `validate_mask` also
accepts the estimator's fractional masks (the masked fraction of a pixel).
"""

import os
import warnings

import numpy as np
from astropy.nddata import NDData
from astropy.units import Quantity
from astropy.utils.exceptions import AstropyUserWarning

__all__ = ['regions_to_mask', 'read_regions', 'threshold_mask', 'combine_masks', 'validate_mask']

# Region file formats by file-name ending (lower case).
_REGION_FORMATS = {'.reg': 'ds9', '.crtf': 'crtf'}
# Messages of the ds9 reader's warnings about display properties only (colour,
# width, duplicated keys): the region itself is read, so these stay warnings.
# Every other reader warning means a line was skipped, which would silently
# leave an object in the fit, so it is an error.
_HARMLESS_READER_WARNINGS = ('DS9 "', 'Found duplicate metadata')
# How messages name sky coordinates.
_COORDINATE_LABELS = {'ra': 'RA', 'dec': 'Dec'}


def regions_to_mask(regions, shape, *, wcs=None, format=None):
    """
    Rasterize regions into a boolean mask (True = masked).

    Regions are applied in order, with ds9's include/exclude semantics:
    an include region (the default) masks the pixels it covers, an exclude
    region (a leading ``-`` in a ds9 file, ``meta['include']`` false)
    unmasks them again. A ``-circle`` after a ``box`` thus cuts a hole in
    the box; an exclude region before any include region has no effect.

    A pixel belongs to a region when its centre lies inside it (the
    region's ``contains``, as ``to_mask(mode='center')``); only the part
    of a region on the image is rasterized, so a region of any size costs
    at most the image's memory. Regions without an area (points, lines,
    text labels, which ds9 files often carry as annotations) are skipped
    with an `~astropy.utils.exceptions.AstropyUserWarning`.

    Parameters
    ----------
    regions : str, path-like, `regions.Regions`, `regions.Region` or list of `regions.Region`
        A ds9 (``.reg``) or CASA (``.crtf``) region file, or region objects
        in pixel or sky coordinates. ds9 pixel coordinates are 1-based;
        the `regions` reader converts them to 0-based pixel indices.
    shape : tuple of int
        The (ny, nx) shape of the image.
    wcs : `~astropy.wcs.WCS`, optional
        WCS of the image, required for sky regions; of a WCS with more
        axes (a cube's), the celestial part is used.
    format : {'ds9', 'crtf'}, optional
        Region file format; inferred from the extension when omitted.

    Returns
    -------
    mask : `~numpy.ndarray` of bool
        The mask, True inside the (net) regions.

    Raises
    ------
    ValueError
        If a region file cannot be read or parsed (the message names the
        file and the failure), if a sky region is given without a
        celestial WCS, if a region's position or size is not finite, or
        if ``shape`` is not two-dimensional. Messages about one region
        give its number in the list (and file) and its position.
    TypeError
        If ``regions`` holds something that is not a region.
    """
    shape = _validate_shape(shape)
    mask = np.zeros(shape, dtype=bool)
    source = (f' of {os.fspath(regions)!r}' if isinstance(regions, (str, os.PathLike))
              else '')
    for number, region in enumerate(_as_region_list(regions, format=format), start=1):
        include = bool(region.meta.get('include', True))
        _rasterize(region, shape, wcs, mask, include=include,
                   location=f'region #{number}{source}')
    return mask


def _validate_shape(shape):
    try:
        shape = tuple(int(n) for n in shape)
    except TypeError as exc:
        raise ValueError(f'shape must be a (ny, nx) tuple; got {shape!r}') from exc
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f'shape must be a (ny, nx) tuple of positive sizes; got {shape}')
    return shape


def _as_region_list(regions, *, format):
    """Region objects from a file path, a `Regions`, one region or a list."""
    from regions import Region, Regions

    if isinstance(regions, (str, os.PathLike)):
        return list(read_regions(regions, format=format))
    if isinstance(regions, Region):
        return [regions]
    if isinstance(regions, (Regions, list, tuple)):
        region_list = list(regions)
        for item in region_list:
            if not isinstance(item, Region):
                raise TypeError(f'regions must hold region objects; got {type(item).__name__} '
                                f'({item!r})')
        return region_list
    raise TypeError('regions must be a region file path, a regions.Regions, a region or a '
                    f'list of regions; got {type(regions).__name__}')


def read_regions(path, *, format=None):
    """
    Read a ds9 or CRTF region file, failing on anything it cannot parse.

    The `regions` readers skip lines they cannot parse with a warning; a
    skipped exclusion region would silently leave an object in the
    background fit, so here every such warning is turned into an error.

    Parameters
    ----------
    path : str or path-like
        The region file.
    format : {'ds9', 'crtf'}, optional
        File format; inferred from the extension (``.reg``, ``.crtf``)
        when omitted.

    Returns
    -------
    regions : `regions.Regions`

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the format cannot be inferred or the file cannot be parsed.
    """
    from regions import Regions

    path = os.fspath(path)
    if format is None:
        format = _REGION_FORMATS.get(os.path.splitext(path)[1].lower())
        if format is None:
            raise ValueError(f'cannot tell the format of region file {path!r} from its '
                             f'extension (known: {", ".join(_REGION_FORMATS)}); pass '
                             "format='ds9' or format='crtf'")
    if not os.path.isfile(path):
        raise FileNotFoundError(f'region file {path!r} does not exist')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            regions = Regions.read(path, format=format)
        except Exception as exc:
            # The readers raise assorted exception types (TypeError for a
            # missing parameter, ValueError for a bad number, parser errors).
            raise ValueError(f'could not parse {format} region file {path!r}: {exc}') from exc
    skipped = []
    for warning in caught:
        message = str(warning.message)
        if message.startswith(_HARMLESS_READER_WARNINGS):
            warnings.warn(f'{path}: {message}', AstropyUserWarning, stacklevel=2)
        else:
            skipped.append(message)
    if skipped:
        raise ValueError(f'could not parse {format} region file {path!r}: '
                         + '; '.join(skipped))
    return regions


def _rasterize(region, shape, wcs, mask, *, include, location):
    """
    Mask (include) or unmask the pixels whose centres lie in ``region``, in place.

    Only the region's bounding box clipped to the image is evaluated:
    ``to_mask`` would allocate the whole box, petabytes for a circle of
    radius 1e7.
    """
    from regions import LinePixelRegion, PixelRegion, PixCoord, PointPixelRegion, RegionMeta

    name = _describe(region)
    on_sky = not isinstance(region, PixelRegion)
    celestial = _celestial_wcs(wcs, name, location) if on_sky else None
    # Depending on the regions version, a region the WCS cannot place fails
    # in to_pixel or later in bounding_box: both get the same message.
    try:
        pixel_region = region.to_pixel(celestial) if on_sky else region
        if isinstance(pixel_region, (PointPixelRegion, LinePixelRegion)):
            warnings.warn(f'skipping {name} ({location}): points, lines and text labels have '
                          'no area to mask', AstropyUserWarning, stacklevel=3)
            return
        box = pixel_region.bounding_box
    except (ValueError, OverflowError) as exc:
        cause = ('has no finite pixel position or size in the image WCS' if on_sky
                 else 'has a position or size that is not finite')
        raise ValueError(f'{name} {cause} ({exc}): correct or remove {location}') from exc
    first_row, end_row = max(box.iymin, 0), min(box.iymax, shape[0])
    first_column, end_column = max(box.ixmin, 0), min(box.ixmax, shape[1])
    if first_row >= end_row or first_column >= end_column:
        return   # entirely off the image
    # Older regions versions invert contains() for exclude regions: test
    # the shape alone, the include flag is applied here.
    shape_only = pixel_region.copy(meta=RegionMeta())
    # Rows in strips of about a million pixels bound the coordinate arrays.
    strip = max(1, 2 ** 20 // (end_column - first_column))
    for start in range(first_row, end_row, strip):
        stop = min(start + strip, end_row)
        y, x = np.mgrid[start:stop, first_column:end_column]
        inside = shape_only.contains(PixCoord(x, y))
        window = mask[start:stop, first_column:end_column]
        if include:
            window |= inside
        else:
            window &= ~inside


def _celestial_wcs(wcs, name, location):
    """The celestial part of ``wcs`` for placing a sky region, or a clear error."""
    if wcs is None:
        raise ValueError(f'{name} needs a WCS; the image has none (wcs=None): use pixel regions '
                         f'or an image with a celestial WCS ({location})')
    if not wcs.has_celestial:
        raise ValueError(f'{name} needs a celestial WCS; the image WCS has axes '
                         f'{list(wcs.wcs.ctype)}: use pixel regions ({location})')
    return wcs.celestial if wcs.naxis > 2 else wcs


def _describe(region):
    """A region's shape and position in a few words, for messages."""
    from astropy.coordinates import SkyCoord

    from regions import PixelRegion

    frame = 'pixel' if isinstance(region, PixelRegion) else 'sky'
    kind = type(region).__name__.removesuffix('PixelRegion').removesuffix('SkyRegion').lower()
    position = getattr(region, 'center', None)
    if isinstance(position, SkyCoord):
        # In the region's own frame (RA/Dec, l/b), as the file gives it.
        lon, lat = list(position.frame.representation_component_names)[:2]
        spherical = position.spherical
        kind += (f' at {_COORDINATE_LABELS.get(lon, lon)} {spherical.lon.deg:.5f}, '
                 f'{_COORDINATE_LABELS.get(lat, lat)} {spherical.lat.deg:.5f} deg')
    elif position is not None:
        kind += f' at x={position.x:g}, y={position.y:g}'
    return f'{frame} region {kind}'


def threshold_mask(data, *, minimum=None, maximum=None):
    """
    Mask pixels outside the range [minimum, maximum].

    Parameters
    ----------
    data : array-like, `~astropy.units.Quantity` or `~astropy.nddata.NDData`
        The image.
    minimum, maximum : float or `~astropy.units.Quantity`, optional
        Pixels below ``minimum`` or above ``maximum`` are masked; a bound
        that is None is not applied. With a unit-bearing ``data`` a
        Quantity bound is converted to the data unit, and a plain number is
        taken in the data unit.

    Returns
    -------
    mask : `~numpy.ndarray` of bool
        True where the pixel is outside the range. Non-finite pixels are
        not flagged here (the background estimator masks them itself).

    Raises
    ------
    ValueError
        If ``minimum`` is greater than ``maximum``.
    """
    unit = None
    if isinstance(data, NDData):
        unit = data.unit
        data = data.data
    if isinstance(data, Quantity):
        unit = data.unit
        data = data.value
    data = np.asarray(data)
    low = _bound_value(minimum, unit, 'minimum')
    high = _bound_value(maximum, unit, 'maximum')
    if low is not None and high is not None and low > high:
        raise ValueError(f'minimum ({minimum}) must not exceed maximum ({maximum})')
    mask = np.zeros(data.shape, dtype=bool)
    with np.errstate(invalid='ignore'):
        if low is not None:
            mask |= data < low
        if high is not None:
            mask |= data > high
    return mask


def _bound_value(bound, unit, name):
    """A threshold as a plain number in the data unit."""
    if bound is None:
        return None
    if isinstance(bound, Quantity):
        if unit is None:
            raise ValueError(f'{name} has a unit ({bound.unit}) but the data have none')
        return bound.to_value(unit)
    return float(bound)


def combine_masks(*masks, shape):
    """
    Combine masks with a logical OR, ignoring those that are None.

    Parameters
    ----------
    *masks : array-like or None
        Boolean masks (True = masked) or numeric masks of zeros and ones,
        each of the image's shape.
    shape : tuple of int
        The image shape every mask must have.

    Returns
    -------
    mask : `~numpy.ndarray` of bool
        True where any mask is set (all False when every mask is None).

    Raises
    ------
    TypeError
        If a mask is neither boolean nor numeric.
    ValueError
        If a mask has another shape, or numeric values other than 0 and 1.
    """
    shape = tuple(shape)
    combined = np.zeros(shape, dtype=bool)
    for index, mask in enumerate(masks):
        if mask is not None:
            combined |= validate_mask(mask, shape, name=f'mask #{index + 1}')
    return combined


def validate_mask(mask, shape, *, name='mask', fractional=False):
    """
    Check a mask against an image shape; the one mask validator of the package.

    Parameters
    ----------
    mask : array-like
        Boolean (True = masked) or numeric: 0/1, or with ``fractional`` any
        value in [0, 1] (1 = fully masked, fractions down-weight a pixel,
        as the seed tool's soft masks).
    shape : tuple of int
        The image shape the mask must have.
    name : str, optional
        What the mask is called in error messages.
    fractional : bool, optional
        Accept fractions and return the masked fraction of each pixel.

    Returns
    -------
    mask : `~numpy.ndarray`
        Boolean (True = masked), or with ``fractional`` the masked fraction
        as float32 in [0, 1].

    Raises
    ------
    TypeError
        If the mask is neither boolean nor numeric.
    ValueError
        If its shape is not ``shape``, or a value is not allowed.
    """
    mask = np.asarray(mask)
    shape = tuple(shape)
    if mask.shape != shape:
        raise ValueError(f'{name} has shape {mask.shape}, but the image has shape {shape}')
    allowed = 'numeric in [0, 1]' if fractional else 'numeric 0/1'
    if mask.dtype == bool:
        return mask.astype(np.float32) if fractional else mask
    if mask.dtype.kind not in 'iuf':
        raise TypeError(f'{name} must be boolean (True = masked) or {allowed}; got dtype '
                        f'{mask.dtype}')
    if not fractional:
        if not np.all((mask == 0) | (mask == 1)):
            raise ValueError(f'{name} has values other than 0 and 1; pass a boolean mask '
                             '(e.g. mask > 0) or, for fractional masks, give it to the '
                             'estimator directly')
        return mask.astype(bool)
    mask = mask.astype(np.float32)
    if not (np.all(np.isfinite(mask)) and mask.min() >= 0 and mask.max() <= 1):
        raise ValueError(f'{name} values must lie in [0, 1] (1 = fully masked, fractions '
                         'down-weight a pixel)')
    return mask


def _read_mask(path, shape):
    """
    A mask file (any supported image format) as the masked fraction of each
    pixel, float32 (H, W): integer or boolean values mask where nonzero,
    floating values are fractions in [0, 1]; a colour mask masks a pixel as
    much as its most masked channel.
    """
    from .io import channels_last, read_image

    mask_image = read_image(path)
    mask = channels_last(mask_image)
    if mask.dtype.kind in 'biu':
        mask = np.any(mask != 0, axis=-1)
    else:
        mask = mask.max(axis=-1)
    return validate_mask(mask, shape, name=f'mask {os.fspath(path)!r}', fractional=True)
