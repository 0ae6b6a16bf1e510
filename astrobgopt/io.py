"""
Read and write images as FITS, XISF or TIFF, keeping headers, WCS and
metadata, and recording provenance.

Writes are atomic: the image goes to a temporary file beside the target,
which replaces the target only once it is complete, so an interrupted or
failing write never leaves a truncated file and never touches the target.
A temporary stranded by a killed process is removed by the next write of
the same target.

This module is longer than most (about 800 lines) on purpose: the three
formats share one contract (the layout of channels, alpha, headers and WCS,
provenance, the pixel types each can store, atomic writes), and keeping
their readers and writers beside that contract is what keeps them in step.
"""

import dataclasses
import datetime
import os
import re
import secrets
import socket
import warnings
import zlib
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
# Pixel types not every format stores, and the type all write them as.
_STORED_AS = {np.dtype(bool): np.dtype(np.uint8), np.dtype(np.float16): np.dtype(np.float32)}
# TIFF ExtraSamples values that mark an alpha channel (associated, unassociated).
_TIFF_ALPHA_SAMPLES = (1, 2)
# Start of the names of temporary files written beside a target.
_TEMPORARY_PREFIX = '.tmp-astrobgopt'
# Most channels a colour image has; a FITS cube axis this short is taken
# for the channel axis.
_MAX_COLOUR_CHANNELS = 4


@dataclasses.dataclass
class ImageData:
    """
    An image read from a file, with what is needed to write a result like it.

    Attributes
    ----------
    data : `~numpy.ndarray`
        Pixel values, in the file's layout: (ny, nx), or three axes with
        the channels on ``channel_axis``. FITS colour is normally
        (channels, ny, nx) but may be stored channels last; XISF and TIFF
        are (ny, nx, channels), planar TIFF colour included. A TIFF alpha
        channel is not part of ``data``: see ``alpha``.
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
    channel_axis : {0, -1} or None
        The axis of ``data`` that holds the channels: 0 (FITS channels
        first), -1 (channels last), None for a 2-D image.
    alpha : `~numpy.ndarray` or None
        TIFF only: the alpha channel (samples the file marks as alpha),
        (ny, nx), or (ny, nx, n) for several; None when there is none.
        It is kept apart so that it is not fitted as image data;
        `write_image` writes it back unchanged with TIFF output ``like``
        this image.
    """

    data: np.ndarray
    header: fits.Header | None
    wcs: WCS | None
    unit: u.UnitBase | None
    meta: dict[str, Any]
    format: str
    path: Path
    hdu: int | None = None
    channel_axis: int | None = None
    alpha: np.ndarray | None = None


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


def read_image(path, *, hdu=None, channel_axis=None):
    """
    Read an image from a FITS, XISF or TIFF file.

    Parameters
    ----------
    path : str or path-like
        The file; its extension gives the format.
    hdu : int or str, optional
        FITS only: the HDU index or EXTNAME. Default: the first HDU that
        holds image data (a tile-compressed image included).
    channel_axis : {0, -1}, optional
        FITS only: the axis of a 3-D image that holds the channels (0:
        channels first, the FITS convention; -1 or 2: channels last).
        Default: told from the shape. A first axis of at most 4 is the
        channel axis, else a last axis of 3 or 4 (an RGB or RGBA cube
        stored channels last), else the first axis (a cube of frames); a
        shape where both the first axis is at most 4 and the last is 3 or
        4, such as (3, 500, 3), is refused as ambiguous. XISF and TIFF
        record their layout and are always read channels last.

    Returns
    -------
    image : `~astrobgopt.io.ImageData`
        With ``channel_axis`` set to the layout read, and, for a TIFF with
        an alpha channel, the alpha kept apart in ``alpha``.

    Raises
    ------
    ValueError
        If the extension is unknown, ``path`` is a directory, the file
        cannot be parsed, the requested HDU does not exist or holds no
        image, or the channel axis of a FITS cube is ambiguous.
    FileNotFoundError
        If the file does not exist.
    """
    path = Path(path)
    format_name = image_format(path)
    if format_name is None:
        raise ValueError(f'cannot tell the image format of {str(path)!r} from its extension; '
                         f'known extensions: {_known_suffixes()}')
    if path.is_dir():
        raise ValueError(f'{str(path)!r} is a directory, not an image file: name a file '
                         'inside it')
    if not path.is_file():
        raise FileNotFoundError(f'image file {str(path)!r} does not exist')
    for name, value in (('hdu', hdu), ('channel_axis', channel_axis)):
        if value is not None and format_name != 'fits':
            raise ValueError(f'{name}= applies to FITS files only; {str(path)!r} is '
                             f'{format_name}')
    if channel_axis not in (None, 0, -1, 2):
        raise ValueError(f'channel_axis must be 0 (channels first) or -1 (channels last); got '
                         f'{channel_axis!r}')
    reader = {'fits': _read_fits, 'xisf': _read_xisf, 'tiff': _read_tiff}[format_name]
    try:
        image = reader(path, hdu)
    except MemoryError:
        raise
    except Exception as exc:
        # The format libraries raise assorted exception types for corrupt
        # files (OSError, struct/XML/zlib errors); report them uniformly,
        # with the file's name.
        raise ValueError(f'could not read {format_name} file {str(path)!r}: {exc}') from exc
    if image.data.ndim == 3:
        image.channel_axis = (-1 if format_name != 'fits'
                              else _fits_channel_axis(image.data.shape, channel_axis, path))
    return image


def _read_fits(path, hdu):
    with fits.open(path, memmap=False) as hdul:
        index = _select_hdu(hdul, hdu)
        selected = hdul[index]
        # FITS stores big-endian numbers; native order keeps the dtype's kind
        # and size and spares every consumer (TensorFlow included) a copy.
        data = np.asarray(selected.data, dtype=selected.data.dtype.newbyteorder('='))
        header = selected.header.copy()
    if data.ndim not in (2, 3):
        raise ValueError(f'HDU {index} holds {data.ndim}-D data; an image must be 2-D or 3-D')
    return ImageData(data=data, header=header, wcs=_celestial_wcs(header, path),
                     unit=_header_unit(header, path), meta={}, format='fits', path=path,
                     hdu=index)


def _fits_channel_axis(shape, channel_axis, path):
    """The channel axis (0 or -1) of a 3-D FITS image: as asked, else told from the shape."""
    if channel_axis is not None:
        return 0 if channel_axis == 0 else -1
    first_is_short = shape[0] <= _MAX_COLOUR_CHANNELS
    last_is_colour = shape[-1] in (3, 4)
    if first_is_short and last_is_colour:
        raise ValueError(f'{str(path)!r} holds a cube of shape {shape}, which could be stored '
                         'channels first or channels last: pass channel_axis=0 or -1')
    return -1 if last_is_colour else 0


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
    # index_of returns an integer unchecked.
    if not -len(hdul) <= index < len(hdul):
        raise ValueError(f'there is no HDU {hdu!r}: the file has HDUs 0 to {len(hdul) - 1} '
                         f'({listing})')
    index %= len(hdul)
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
        page = tiff.pages[0]
        extra_samples = tuple(int(kind) for kind in page.extrasamples)
        tags = {tag.name: tag.value for tag in page.tags
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
    # The extra samples follow the colour (or grey) ones; those marked as
    # alpha are kept apart, so that they are carried through, not fitted.
    alpha = None
    is_alpha = np.zeros(data.shape[-1] if data.ndim == 3 else 0, dtype=bool)
    if extra_samples:
        is_alpha[-len(extra_samples):] = [kind in _TIFF_ALPHA_SAMPLES for kind in extra_samples]
    if is_alpha.any():
        tags['ExtraSamples'] = extra_samples
        alpha = _single_channel(data[..., is_alpha])
        data = _single_channel(data[..., ~is_alpha])
    return ImageData(data=data, header=None, wcs=None, unit=None, meta=tags, format='tiff',
                     path=path, alpha=alpha)


def _single_channel(data):
    """A (ny, nx, channels) array as (ny, nx) when it has one channel."""
    return data[..., 0] if data.shape[-1] == 1 else data


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
        Pixels, written in the layout given: (ny, nx), or three axes
        with the channels first or last for FITS (as ``like.data``, see
        `~astrobgopt.io.ImageData.channel_axis`) and last for XISF and TIFF. A
        Quantity's unit is written as BUNIT. Boolean pixels are written
        as uint8 and float16 as float32 (no format here stores them
        portably), any byte order as native; complex pixels are refused.
    like : `~astrobgopt.io.ImageData`, optional
        The image this one derives from: its header (FITS; for XISF output,
        as FITS keywords) and WCS are kept, and its XISF properties are
        copied to XISF output. Its TIFF alpha channel (``like.alpha``) is
        written unchanged after the channels of ``data`` to TIFF output of
        the same size; other formats have no alpha channel, and it is
        dropped with a warning.
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
    TypeError
        If the pixels are of a type no image format stores (complex).

    Notes
    -----
    The image is written to a hidden temporary file beside ``path``
    (``.tmp-astrobgopt-<host>-<pid>-<random>-<name>``) that replaces
    ``path`` once complete, so ``path`` is never left partly written. If
    the process is killed during the write (``kill -9``, a power cut), the
    temporary file stays behind and ``path`` is left as it was (absent, or
    the previous version). The next write of the same ``path`` removes the
    temporaries of it left by processes of this host that no longer run;
    those of running writers are left alone.
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
    data = _storable(data)
    if data.ndim not in (2, 3):
        raise ValueError(f'data must be a 2-D or 3-D image; got shape {data.shape}')
    alpha = _alpha_to_write(like, data, format_name, path)

    header = _output_header(like)
    if unit is not None:
        header['BUNIT'] = unit.to_string()
    if provenance is not None:
        _add_provenance(header, provenance)
    for line in [history] if isinstance(history, str) else (history or []):
        header.add_history(_printable_ascii(line))

    def write(target):
        if format_name == 'fits':
            _write_fits(target, data, header, extra_hdus or {}, compress)
        elif format_name == 'xisf':
            _write_xisf(target, data, header, like, compress)
        else:
            _write_tiff(target, data, header, compress, alpha, like)

    _replace_atomically(path, write)
    return path


def _output_header(like):
    """A copy of ``like``'s header without the cards that describe its layout."""
    header = fits.Header() if like is None or like.header is None else like.header.copy()
    for keyword in set(header):
        if keyword in _STRUCTURAL_KEYWORDS or re.fullmatch(r'NAXIS\d+', keyword):
            header.remove(keyword, remove_all=True)
    return header


def _storable(data):
    """Pixels as a type the formats store, in native byte order (see `write_image`)."""
    data = np.asarray(data)
    if data.dtype.kind not in 'biuf':
        advice = ('write the real part (data.real) or the magnitude (np.abs(data))'
                  if data.dtype.kind == 'c' else 'convert them to integers or floats')
        raise TypeError(f'cannot write {data.dtype} pixels: image formats store integers and '
                        f'floats; {advice}')
    native = data.dtype.newbyteorder('=')
    return data.astype(_STORED_AS.get(native, native), copy=False)


def _alpha_to_write(like, data, format_name, path):
    """``like``'s alpha channel when it can go into the output, else None (with a warning)."""
    if like is None or like.alpha is None:
        return None
    if format_name == 'tiff' and data.shape[:2] == like.alpha.shape[:2]:
        return like.alpha
    reason = ('FITS and XISF have no alpha channel' if format_name != 'tiff' else
              f'the image is {data.shape[1]} x {data.shape[0]} pixels, the alpha '
              f'{like.alpha.shape[1]} x {like.alpha.shape[0]}')
    warnings.warn(f'{str(path)!r}: the alpha channel of {like.path.name!r} is not written: '
                  f'{reason}', AstropyUserWarning)
    return None


def _add_provenance(header, provenance):
    """Version, UTC date and parameter summary keywords."""
    from . import __version__

    header['BGOPTVER'] = (__version__, 'astrobgopt version')
    header['BGOPTDAT'] = (datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%S'),
                          'UTC date of the astrobgopt run')
    # A long summary is split over CONTINUE cards by astropy.
    summary = ', '.join(f'{key}={value}' for key, value in provenance.items())
    header['BGOPTPAR'] = (_printable_ascii(summary), 'astrobgopt parameters')


def _printable_ascii(text):
    """
    Text with every character FITS cards cannot hold escaped as Python does.

    FITS header text is printable ASCII only; a file name such as
    ``imäge ✓.fits`` is stored as ``im\\xe4ge \\u2713.fits``.
    """
    return re.sub(r'[^ -~]', lambda match: match[0].encode('unicode_escape').decode('ascii'),
                  str(text))


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
        hdus.append(image_hdu(_storable(extra), extra_header, name=name))
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
    if data.shape[-1] not in (1, 3):
        # The xisf package writes grey and RGB only; it would scramble
        # any other channel count.
        raise ValueError(f'XISF output holds grey or RGB images; the data have shape '
                         f'{data.shape}, {data.shape[-1]} channels: write FITS or TIFF instead')
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


def _write_tiff(target, data, header, compress, alpha, like):
    import tifffile

    from . import __version__

    # TIFF has no FITS header: the provenance cards go into the JSON
    # description tifffile writes.
    description = {key: header[key] for key in ('BGOPTVER', 'BGOPTDAT', 'BGOPTPAR')
                   if key in header}
    if 'HISTORY' in header:
        description['HISTORY'] = [str(line) for line in header['HISTORY']]
    options = {'photometric': 'minisblack'}
    if data.ndim == 3 or alpha is not None:
        # Samples beyond grey or RGB are written as extra samples of one
        # image (not as a stack of pages): unspecified for data channels,
        # so they read back as channels, and alpha as the input marked it.
        samples = data if data.ndim == 3 else data[..., None]
        colour = samples.shape[-1] in (3, 4)
        extra_samples = ['unspecified'] * (samples.shape[-1] - (3 if colour else 1))
        if alpha is not None:
            samples = np.dstack([samples, cast_like(alpha, data.dtype)])
            # As the input marked them; unassociated for an alpha set by hand.
            alpha_kinds = [kind for kind in like.meta.get('ExtraSamples', ())
                           if kind in _TIFF_ALPHA_SAMPLES]
            n_alpha = 1 if alpha.ndim == 2 else alpha.shape[-1]
            extra_samples += (alpha_kinds if len(alpha_kinds) == n_alpha
                              else ['unassalpha'] * n_alpha)
        options = {'photometric': 'rgb' if colour else 'minisblack', 'planarconfig': 'contig',
                   'extrasamples': extra_samples or None}
        data = samples
    tifffile.imwrite(target, data, compression='zlib' if compress else None,
                     software=f'astrobgopt {__version__}', metadata=description, **options)


def _replace_atomically(path, write):
    """
    Call ``write(temporary_path)`` and move the result onto ``path``.

    The temporary file's name records this host and process, so that a
    later call removes the temporaries a killed process left (see
    `write_image`).
    """
    _remove_stranded_temporaries(path)
    # The temporary name ends with the target's name, so writers that look
    # at the extension (e.g. astropy gzipping '.fits.gz') behave the same.
    temporary = path.with_name(f'{_TEMPORARY_PREFIX}-{_host_tag()}-{os.getpid()}-'
                               f'{secrets.token_hex(4)}-{path.name}')
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _host_tag():
    """Eight hex digits naming this host, for temporary file names."""
    return f'{zlib.crc32(socket.gethostname().encode()):08x}'


def _remove_stranded_temporaries(path):
    """Delete temporaries of ``path`` whose writer, a process of this host, has ended."""
    # Only POSIX can ask whether a process runs without touching it
    # (os.kill with signal 0); a writer on another host cannot be asked.
    if os.name != 'posix':
        return
    pattern = re.compile(rf'{re.escape(_TEMPORARY_PREFIX)}-{_host_tag()}-(\d+)-[0-9a-f]{{8}}-'
                         + re.escape(path.name))
    try:
        candidates = list(path.parent.iterdir())
    except OSError:
        return
    for candidate in candidates:
        match = pattern.fullmatch(candidate.name)
        if match and not _process_runs(int(match[1])):
            candidate.unlink(missing_ok=True)


def _process_runs(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # It runs, as another user.
        return True
    return True


def channels_last(image):
    """The pixels of an `ImageData` as (H, W, k), whatever the file's layout."""
    data = image.data
    if data.ndim == 2:
        return data[..., None]
    return np.moveaxis(data, image.channel_axis, -1)


def file_layout(pixels, image):
    """Pixels (H, W, k) back in the layout `ImageData` ``image`` was read in."""
    if image.data.ndim == 2:
        return pixels[..., 0]
    return np.moveaxis(pixels, -1, image.channel_axis)
