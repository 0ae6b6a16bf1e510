"""
Read and write images as FITS, XISF or TIFF, keeping headers, WCS and
metadata, and recording provenance.

Writes are atomic: the image goes to a temporary file beside the target,
which replaces the target only once it is complete, so an interrupted or
failing write never leaves a truncated file and never touches the target.
"""

import dataclasses
import datetime
import os
import re
import secrets
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.units import Quantity
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS, FITSFixedWarning

__all__ = ['ImageData', 'read_image', 'read_ccddata', 'write_image', 'cast_like',
           'image_format']

# File-name endings (lower case) of each format; compressed FITS included.
_FORMAT_SUFFIXES = {
    'fits': ('.fits', '.fit', '.fts', '.fits.gz', '.fit.gz', '.fts.gz', '.fits.fz', '.fz'),
    'xisf': ('.xisf',),
    'tiff': ('.tif', '.tiff'),
}
# Header cards that describe one file's layout or checksum: they are
# regenerated on writing and must not be copied from another file.
_STRUCTURAL_KEYWORDS = ('SIMPLE', 'XTENSION', 'BITPIX', 'NAXIS', 'EXTEND', 'PCOUNT', 'GCOUNT',
                        'BSCALE', 'BZERO', 'BLANK', 'CHECKSUM', 'DATASUM')
_XISF_DTYPES = tuple(np.dtype(name) for name in
                     ('uint8', 'uint16', 'uint32', 'float32', 'float64'))


@dataclasses.dataclass
class ImageData:
    """
    An image read from a file, with what is needed to write a result like it.

    Attributes
    ----------
    data : `~numpy.ndarray`
        Pixel values: FITS (ny, nx) or (channels, ny, nx); XISF and TIFF
        (ny, nx) or (ny, nx, channels), planar TIFF colour included.
    header : `~astropy.io.fits.Header` or None
        The FITS header of the HDU read; for XISF, a header built from the
        file's FITS keywords; None for TIFF.
    wcs : `~astropy.wcs.WCS` or None
        The celestial WCS from ``header``, if it has one.
    unit : `~astropy.units.UnitBase` or None
        The data unit (FITS ``BUNIT``).
    meta : dict
        Format-specific metadata: for XISF ``{'image': ..., 'file': ...}``
        as returned by `xisf.XISF`; for TIFF the scalar tags of the first
        page; empty for FITS.
    format : {'fits', 'xisf', 'tiff'}
        The file format.
    path : `~pathlib.Path`
        The file read.
    hdu : int or None
        Index of the FITS HDU read (None for other formats).
    """

    data: np.ndarray
    header: fits.Header | None
    wcs: WCS | None
    unit: u.UnitBase | None
    meta: dict[str, Any]
    format: str
    path: Path
    hdu: int | None = None


def image_format(path):
    """
    The image format of a file name: ``'fits'``, ``'xisf'`` or ``'tiff'``.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    format : str or None
        None when the extension is not one of a known format.
    """
    name = os.fspath(path).lower()
    for format_name, suffixes in _FORMAT_SUFFIXES.items():
        if name.endswith(suffixes):
            return format_name
    return None


def _known_suffixes():
    return ', '.join(suffix for suffixes in _FORMAT_SUFFIXES.values() for suffix in suffixes)


def read_image(path, *, hdu=None):
    """
    Read an image from a FITS, XISF or TIFF file.

    Parameters
    ----------
    path : str or path-like
        The file; its extension gives the format.
    hdu : int or str, optional
        FITS only: the HDU index or EXTNAME. Default: the first HDU that
        holds image data (a tile-compressed image included).

    Returns
    -------
    image : `~astrobgopt.io.ImageData`

    Raises
    ------
    ValueError
        If the extension is unknown, the file cannot be parsed, or the
        requested HDU does not exist or holds no image.
    FileNotFoundError
        If the file does not exist.
    """
    path = Path(path)
    format_name = image_format(path)
    if format_name is None:
        raise ValueError(f'cannot tell the image format of {str(path)!r} from its extension; '
                         f'known extensions: {_known_suffixes()}')
    if not path.is_file():
        raise FileNotFoundError(f'image file {str(path)!r} does not exist')
    if hdu is not None and format_name != 'fits':
        raise ValueError(f'hdu= applies to FITS files only; {str(path)!r} is {format_name}')
    reader = {'fits': _read_fits, 'xisf': _read_xisf, 'tiff': _read_tiff}[format_name]
    try:
        return reader(path, hdu)
    except MemoryError:
        raise
    except Exception as exc:
        # The format libraries raise assorted exception types for corrupt
        # files (OSError, struct/XML/zlib errors); report them uniformly,
        # with the file's name.
        raise ValueError(f'could not read {format_name} file {str(path)!r}: {exc}') from exc


def _read_fits(path, hdu):
    with fits.open(path, memmap=False) as hdul:
        index = _select_hdu(hdul, hdu)
        selected = hdul[index]
        # FITS stores big-endian numbers; native order keeps the dtype's kind
        # and size and spares every consumer (TensorFlow included) a copy.
        data = np.asarray(selected.data, dtype=selected.data.dtype.newbyteorder('='))
        header = selected.header.copy()
    if data.ndim not in (2, 3):
        raise ValueError(f'HDU {index} holds {data.ndim}-D data; an image must be 2-D or 3-D '
                         '(channels first)')
    return ImageData(data=data, header=header, wcs=_celestial_wcs(header, path),
                     unit=_header_unit(header, path), meta={}, format='fits', path=path,
                     hdu=index)


def _select_hdu(hdul, hdu):
    """Index of the requested HDU, or of the first one with image data."""
    def has_image(item):
        return item.is_image and item.header.get('NAXIS', 0) > 0

    listing = ', '.join(f'{i}: {item.name or "(no name)"} ({type(item).__name__})'
                        for i, item in enumerate(hdul))
    if hdu is None:
        for index, item in enumerate(hdul):
            if has_image(item):
                return index
        raise ValueError(f'no HDU holds an image (HDUs: {listing})')
    try:
        index = hdul.index_of(hdu)
    except (KeyError, IndexError) as exc:
        raise ValueError(f'there is no HDU {hdu!r} (HDUs: {listing})') from exc
    if not has_image(hdul[index]):
        raise ValueError(f'HDU {hdu!r} holds no image data (HDUs: {listing})')
    return index


def _celestial_wcs(header, path):
    """The celestial WCS a header describes, or None."""
    with warnings.catch_warnings():
        # Informational notes about fixed-up non-standard keywords.
        warnings.simplefilter('ignore', FITSFixedWarning)
        try:
            wcs = WCS(header)
        except Exception as exc:
            # A broken WCS must not stop the pixels from being read.
            warnings.warn(f'{path}: ignoring a WCS that cannot be parsed ({exc})',
                          AstropyUserWarning)
            return None
    return wcs.celestial if wcs.has_celestial else None


def _header_unit(header, path):
    """The unit named by BUNIT, or None."""
    name = header.get('BUNIT')
    if not isinstance(name, str) or not name.strip():
        return None
    try:
        return u.Unit(name.strip())
    except ValueError:
        warnings.warn(f'{path}: ignoring BUNIT {name!r}, which is not a unit astropy knows',
                      AstropyUserWarning)
        return None


def _read_xisf(path, hdu):
    from xisf import XISF

    xisf_file = XISF(os.fspath(path))
    image_meta = xisf_file.get_images_metadata()[0]
    data = xisf_file.read_image(0)
    if data.shape[2] == 1:
        data = data[..., 0]
    header = _header_from_xisf_keywords(image_meta.get('FITSKeywords', {}))
    return ImageData(data=data, header=header,
                     wcs=_celestial_wcs(header, path) if header is not None else None,
                     unit=_header_unit(header, path) if header is not None else None,
                     meta={'image': image_meta, 'file': xisf_file.get_file_metadata()},
                     format='xisf', path=path)


def _header_from_xisf_keywords(keywords):
    """
    A FITS header from XISF FITSKeywords, or None when there are none.

    XISF stores each value as FITS value text with string quotes removed,
    so numbers and logicals are recognized by their text.
    """
    if not keywords:
        return None
    header = fits.Header()
    for name, entries in keywords.items():
        for entry in entries:
            value, comment = entry['value'], entry.get('comment', '')
            if name in ('HISTORY', 'COMMENT'):
                # PixInsight keeps the text of these in the comment.
                header.append((name, value or comment))
                continue
            with warnings.catch_warnings():
                # Long names become HIERARCH cards, as in the source file.
                warnings.simplefilter('ignore', fits.verify.VerifyWarning)
                try:
                    header.append((name, _parse_fits_value(value), comment))
                except ValueError as exc:
                    warnings.warn(f'skipping XISF FITS keyword {name!r}: {exc}',
                                  AstropyUserWarning)
    return header


def _parse_fits_value(text):
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return {'T': True, 'F': False}.get(text, text)


def _read_tiff(path, hdu):
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        series = tiff.series[0]
        data = series.asarray()
        axes = series.axes
        tags = {tag.name: tag.value for tag in tiff.pages[0].tags
                if isinstance(tag.value, (str, int, float))}
    # Drop length-1 axes other than rows, columns and samples (a stack of
    # one image), then store channels last whatever the planar configuration.
    kept = [index for index, axis in enumerate(axes) if axis in 'YXS' or data.shape[index] > 1]
    data = data.reshape([data.shape[index] for index in kept])
    axes = ''.join(axes[index] for index in kept)
    if axes == 'SYX':
        data = np.ascontiguousarray(np.moveaxis(data, 0, -1))
    elif axes not in ('YX', 'YXS'):
        raise ValueError(f'it holds an array of shape {data.shape} with axes {axes!r} '
                         "(tifffile's names); astrobgopt reads one grey or colour image "
                         'per file: save each frame of a stack as its own file')
    return ImageData(data=data, header=None, wcs=None, unit=None, meta=tags, format='tiff',
                     path=path)


def read_ccddata(path, *, hdu=None, unit=None):
    """
    Read a FITS file as a `~astropy.nddata.CCDData`.

    Parameters
    ----------
    path : str or path-like
        The FITS file.
    hdu : int or str, optional
        HDU index or EXTNAME; default: the first HDU with image data.
    unit : `~astropy.units.Unit` or str, optional
        Data unit. Default: the header's ``BUNIT``, else ``adu`` (with a
        warning, since the file does not say).

    Returns
    -------
    ccd : `~astropy.nddata.CCDData`
    """
    from astropy.nddata import CCDData

    path = Path(path)
    with fits.open(path, memmap=False) as hdul:
        try:
            index = _select_hdu(hdul, hdu)
        except ValueError as exc:
            raise ValueError(f'{str(path)!r}: {exc}') from exc
        has_bunit = 'BUNIT' in hdul[index].header
    if unit is None and not has_bunit:
        warnings.warn(f'{path} has no BUNIT; assuming adu (pass unit= to set it)',
                      AstropyUserWarning)
        unit = u.adu
    return CCDData.read(path, hdu=index, unit=unit)


def cast_like(data, dtype):
    """
    Cast data to an output dtype, rounding and clipping for integers.

    Parameters
    ----------
    data : array-like
        Values to cast.
    dtype : dtype-like
        Target type: an integer type (values are rounded to the nearest
        integer, clipped to the type's range, and non-finite values become
        0, the range's ends for infinities) or a floating type.

    Returns
    -------
    array : `~numpy.ndarray`

    Raises
    ------
    TypeError
        If ``dtype`` is neither integer nor floating point.
    """
    dtype = np.dtype(dtype)
    data = np.asarray(data)
    if dtype.kind in 'iu':
        info = np.iinfo(dtype)
        # Casting out-of-range or NaN floats to integers is undefined in
        # NumPy (wraps or gives garbage), hence the explicit clip.
        values = np.nan_to_num(np.rint(data.astype(np.float64)), nan=0.0,
                               posinf=info.max, neginf=info.min)
        return np.clip(values, info.min, info.max).astype(dtype)
    if dtype.kind == 'f':
        return data.astype(dtype, copy=False)
    raise TypeError(f'cannot write images of dtype {dtype}; use an integer or float dtype')


def write_image(path, data, *, like=None, overwrite=False, provenance=None, history=None,
                extra_hdus=None, compress=False, dtype=None):
    """
    Write an image as FITS, XISF or TIFF, atomically.

    Parameters
    ----------
    path : str or path-like
        Output file. Its extension gives the format; an unknown extension
        falls back to ``like.format``.
    data : `~numpy.ndarray` or `~astropy.units.Quantity`
        Pixels in the layout of the output format (FITS channels first,
        XISF/TIFF channels last). A Quantity's unit is written as BUNIT.
    like : `~astrobgopt.io.ImageData`, optional
        The image this one derives from: its header (FITS; for XISF output,
        as FITS keywords) and WCS are kept, and its XISF properties are
        copied to XISF output.
    overwrite : bool, optional
        Replace an existing file. Without it an existing target raises
        `FileExistsError` and is left as it is.
    provenance : dict, optional
        Parameter names and values summarizing how the image was made;
        written with the package version and the UTC date (FITS and XISF
        keywords ``BGOPTVER``, ``BGOPTDAT``, ``BGOPTPAR``; TIFF description
        metadata).
    history : str or list of str, optional
        HISTORY lines to add.
    extra_hdus : dict, optional
        FITS only: further image extensions, ``{EXTNAME: array or
        Quantity}`` (e.g. ``'BACKGROUND'``, ``'BKGRMS'``), written with the
        image's WCS.
    compress : bool, optional
        Compress losslessly: FITS tile compression (Rice for integers,
        GZIP_2 without quantization for floats), XISF lz4hc with byte
        shuffling, TIFF zlib.
    dtype : dtype-like, optional
        Cast the data with `~astrobgopt.io.cast_like` before writing.

    Returns
    -------
    path : `~pathlib.Path`
        The file written.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    ValueError
        If the format cannot be told, or the data do not suit it.
    """
    path = Path(path)
    format_name = image_format(path) or (like.format if like is not None else None)
    if format_name is None:
        raise ValueError(f'cannot tell the image format of {str(path)!r} from its extension; '
                         f'use one of {_known_suffixes()}')
    if extra_hdus and format_name != 'fits':
        raise ValueError(f'extra_hdus can only be written to FITS; {str(path)!r} is '
                         f'{format_name}: write them as separate files')
    if path.exists() and not overwrite:
        raise FileExistsError(f'{str(path)!r} already exists; pass overwrite=True to replace it')

    unit = None
    if isinstance(data, Quantity):
        unit, data = data.unit, data.value
    if dtype is not None:
        data = cast_like(data, dtype)
    data = np.asarray(data)
    if data.ndim not in (2, 3):
        raise ValueError(f'data must be a 2-D or 3-D image; got shape {data.shape}')

    header = _output_header(like)
    if unit is not None:
        header['BUNIT'] = unit.to_string()
    if provenance is not None:
        _add_provenance(header, provenance)
    for line in [history] if isinstance(history, str) else (history or []):
        header.add_history(line)

    def write(target):
        if format_name == 'fits':
            _write_fits(target, data, header, extra_hdus or {}, compress)
        elif format_name == 'xisf':
            _write_xisf(target, data, header, like, compress)
        else:
            _write_tiff(target, data, header, compress)

    _replace_atomically(path, write)
    return path


def _output_header(like):
    """A copy of ``like``'s header without the cards that describe its layout."""
    header = fits.Header() if like is None or like.header is None else like.header.copy()
    for keyword in set(header):
        if keyword in _STRUCTURAL_KEYWORDS or re.fullmatch(r'NAXIS\d+', keyword):
            header.remove(keyword, remove_all=True)
    return header


def _add_provenance(header, provenance):
    """Version, UTC date and parameter summary keywords."""
    from . import __version__

    header['BGOPTVER'] = (__version__, 'astrobgopt version')
    header['BGOPTDAT'] = (datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%S'),
                          'UTC date of the astrobgopt run')
    # A long summary is split over CONTINUE cards by astropy.
    header['BGOPTPAR'] = (', '.join(f'{key}={value}' for key, value in provenance.items()),
                          'astrobgopt parameters')


def _write_fits(target, data, header, extra_hdus, compress):
    def image_hdu(array, image_header, name=None):
        if compress:
            lossless = ({'compression_type': 'RICE_1'} if array.dtype.kind in 'iu' else
                        {'compression_type': 'GZIP_2', 'quantize_level': 0.0})
            return fits.CompImageHDU(array, image_header, name=name, **lossless)
        return fits.ImageHDU(array, image_header, name=name)

    if compress:
        # The primary HDU cannot be tile-compressed: it stays empty and the
        # image goes to the first extension.
        hdus = [fits.PrimaryHDU(), image_hdu(data, header)]
    else:
        hdus = [fits.PrimaryHDU(data, header)]
    wcs = _celestial_wcs(header, target) if extra_hdus else None
    for name, extra in extra_hdus.items():
        extra_header = wcs.to_header() if wcs is not None else fits.Header()
        if isinstance(extra, Quantity):
            extra_header['BUNIT'] = extra.unit.to_string()
            extra = extra.value
        hdus.append(image_hdu(np.asarray(extra), extra_header, name=name))
    # Headers copied from other software may carry non-standard cards;
    # fix what can be fixed rather than refusing to write.
    fits.HDUList(hdus).writeto(target, output_verify='silentfix+warn')


def _write_xisf(target, data, header, like, compress):
    from xisf import XISF

    from . import __version__

    if data.dtype not in _XISF_DTYPES:
        raise ValueError(f'XISF cannot store {data.dtype} pixels; use one of '
                         f'{", ".join(str(d) for d in _XISF_DTYPES)} (see cast_like)')
    if data.ndim == 2:
        data = data[..., None]
    properties = {}
    if like is not None and like.format == 'xisf':
        properties = like.meta.get('image', {}).get('XISFProperties', {})
    XISF.write(os.fspath(target), data, creator_app=f'astrobgopt {__version__}',
               image_metadata={'FITSKeywords': _xisf_keywords_from_header(header),
                               'XISFProperties': properties},
               codec='lz4hc' if compress else None, shuffle=compress)


def _xisf_keywords_from_header(header):
    """XISF FITSKeywords (value text, FITS quoting for strings) from a header."""
    keywords = {}
    for card in header.cards:
        if card.keyword in ('HISTORY', 'COMMENT'):
            # PixInsight's convention: the text in the comment.
            entry = {'value': '', 'comment': str(card.value)}
        elif isinstance(card.value, bool):
            entry = {'value': 'T' if card.value else 'F', 'comment': card.comment}
        elif isinstance(card.value, str):
            entry = {'value': "'" + card.value.replace("'", "''") + "'",
                     'comment': card.comment}
        else:
            entry = {'value': str(card.value), 'comment': card.comment}
        keywords.setdefault(card.keyword, []).append(entry)
    return keywords


def _write_tiff(target, data, header, compress):
    import tifffile

    from . import __version__

    colour = data.ndim == 3 and data.shape[-1] in (3, 4)
    # TIFF has no FITS header: the provenance cards go into the JSON
    # description tifffile writes.
    description = {key: header[key] for key in ('BGOPTVER', 'BGOPTDAT', 'BGOPTPAR')
                   if key in header}
    if 'HISTORY' in header:
        description['HISTORY'] = [str(line) for line in header['HISTORY']]
    tifffile.imwrite(target, data, photometric='rgb' if colour else 'minisblack',
                     compression='zlib' if compress else None,
                     software=f'astrobgopt {__version__}', metadata=description)


def _replace_atomically(path, write):
    """Call ``write(temporary_path)`` and move the result onto ``path``."""
    # The temporary name ends with the target's name, so writers that look
    # at the extension (e.g. astropy gzipping '.fits.gz') behave the same.
    temporary = path.with_name(f'.tmp-{secrets.token_hex(4)}-{path.name}')
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
