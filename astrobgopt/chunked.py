"""
Images in bands of rows: block statistics, the background and the
subtracted image of images larger than memory.

A background fit needs little of an image: the statistic of each block
(about 12,000 numbers) and, afterwards, one pass that writes the model. Both
passes here work on bands of whole block rows, so that only a band is in
memory at a time:

* `block_samples` computes the block statistics band by band. The in-memory
  path uses it too: the temporaries of the statistic are those of one band,
  not of the whole image.
* `fit_chunked` fits a memory-mapped or `dask.array` image: Dask reads the
  bands and reduces them (on its threads, or on a cluster given as
  ``scheduler``), the spline is fitted to the joined blocks, and the result
  gives the background, RMS map and subtracted image as lazy `dask.array`
  arrays, evaluated band by band when stored (`ChunkedBackgroundResult.store`).
* `create_fits` makes a FITS file of a given shape and a writer of its
  data, a target that `ChunkedBackgroundResult.store` fills band by band.

Bands hold whole blocks, so the block statistics, and hence the fit, are
exactly those of the in-memory path.
"""

import time

import numpy as np

from .downsample import BlockSamples, block_reduce_masked

__all__ = ['ChunkedBackgroundResult', 'FitsDataWriter', 'block_samples', 'band_height',
           'create_fits', 'fit_chunked', 'fits_bands', 'is_chunked', 'process_fits']

# Pixels per band: 1 MB of float32, so that a band's temporaries (a
# few copies for the block statistic, about 40 bytes a pixel) stay near 10 MB.
BAND_PIXELS = 256 * 1024


def band_height(factor, width):
    """Rows per band: a whole number of ``factor``-row blocks, about ``BAND_PIXELS`` pixels."""
    return factor * max(1, BAND_PIXELS // (factor * width))


def join_tiles(tiles):
    """
    One `BlockSamples` from those of a grid of tiles of whole blocks, given
    as rows of ``(top, left, samples)``.
    """
    def joined(part):
        return np.concatenate([np.concatenate([part(samples) for _, _, samples in row], axis=1)
                               for row in tiles])

    first_row = tiles[0]
    first = first_row[0][2]
    return BlockSamples(joined(lambda samples: samples.values),
                        joined(lambda samples: samples.usable_fraction),
                        np.concatenate([left + samples.x for _, left, samples in first_row]),
                        np.concatenate([top + samples.y for top, _, samples in
                                        (row[0] for row in tiles)]),
                        first.factor,
                        None if first.widths is None else
                        tuple(joined(lambda samples: samples.widths[side]) for side in range(2)))


def block_samples(image, usable_fraction, factor, *, func='median'):
    """
    `~astrobgopt.downsample.block_reduce_masked` tile by tile: the same
    samples, with the temporaries of one tile of about ``BAND_PIXELS`` pixels.

    Parameters
    ----------
    image : `~numpy.ndarray`, shape (H, W, k)
        The image (non-finite pixels already unusable).
    usable_fraction : `~numpy.ndarray`, shape (H, W)
        Usable fraction of each pixel.
    factor : int
        Block size.
    func : {'median', 'clipped_mean', 'mean'}, optional
        Block statistic.

    Returns
    -------
    samples : `~astrobgopt.downsample.BlockSamples`
    """
    height, width = image.shape[:2]
    rows = band_height(factor, width)
    columns = band_height(factor, rows)  # tiles of whole blocks when a band is too wide
    return join_tiles([[(top, left, block_reduce_masked(
        image[top:top + rows, left:left + columns],
        usable_fraction[top:top + rows, left:left + columns], factor, func=func))
        for left in range(0, width, columns)] for top in range(0, height, rows)])


def is_chunked(data):
    """Whether ``data`` is a `dask.array.Array` (the input of `fit_chunked`)."""
    import sys

    dask_array = sys.modules.get('dask.array')
    return dask_array is not None and isinstance(data, dask_array.Array)


class _PixelSource:
    """
    An array-like with the ``shape``, ``ndim`` and ``dtype`` Dask reads:
    FITS sections (read on demand, no memory map) lack ``ndim``, and before
    astropy 6.1 ``dtype`` too (then one pixel is read to learn it).
    """

    def __init__(self, data):
        self._data = data
        self.shape = tuple(data.shape)
        self.ndim = len(self.shape)
        dtype = getattr(data, 'dtype', None)
        self.dtype = np.dtype(dtype if dtype is not None else np.asarray(data[:1, :1]).dtype)

    def __getitem__(self, key):
        return self._data[key]


def _as_bands(data, rows, what):
    """``data`` as a 2-D dask array in bands of ``rows`` full rows."""
    import dask.array as da

    if not is_chunked(data):
        # lock: a FITS section's reads seek a shared file, one thread at a time.
        source = data if isinstance(data, np.ndarray) else _PixelSource(data)
        data = da.from_array(source, chunks=(rows, -1), asarray=True,
                             lock=source is not data,
                             meta=np.empty((0,) * source.ndim, dtype=source.dtype))
    if data.ndim != 2:
        raise ValueError(f'{what} must be a 2-D image for the chunked path; got shape '
                         f'{data.shape} (fit colour mosaics one channel at a time)')
    return data.rechunk((rows, -1))


def _band_samples(band, mask, estimator, factor):
    """Block samples of one band (prepared as a whole image would be)."""
    prepared = estimator.prepare(band, mask=mask)
    return block_samples(prepared.image, prepared.usable_fraction, factor,
                         func=estimator.downscale_func)


def fit_chunked(estimator, data, *, mask=None, scheduler=None):
    """
    Fit the background of an image too large for memory.

    Parameters
    ----------
    estimator : `~astrobgopt.SplineOptBackground`
        The estimator (without a stretch: the 'mtf' stretch needs a
        quantile of the whole image).
    data : `dask.array.Array` or array-like, shape (H, W)
        The image: a `dask.array` (`fits_bands` reads a FITS image so), or
        an array read on demand such as the ``section`` of a FITS image
        opened with ``memmap=False`` (read band by band with file reads, one
        thread at a time), a `numpy.memmap` or the ``data`` of a
        FITS file opened with ``memmap=True`` (the pages of a memory map
        stay resident once read, as long as the map is open: resident
        memory then grows to the file's size, though the system can
        reclaim those pages).
    mask : `dask.array.Array` or array-like, shape (H, W), optional
        Pixels to ignore (True or 1 = masked, fractions down-weight).
    scheduler : optional
        Dask scheduler of the chunked work (``'threads'``, ``'sync'``, a
        `distributed.Client`...); default: Dask's current one.

    Returns
    -------
    result : `ChunkedBackgroundResult`

    Notes
    -----
    Peak memory is a few bands of ``band_height`` rows (about a million
    pixels each) per Dask worker thread, plus the samples and the fit, and
    does not grow with the image.
    """
    import dask

    if estimator.stretch is not None:
        raise ValueError('the chunked path fits linear data: use stretch=None '
                         f'(got {estimator.stretch!r}, which needs the whole image at once)')
    start = time.perf_counter()
    shape = tuple(data.shape)
    factor = estimator.downscale_factor_for(shape[:2])
    rows = band_height(factor, shape[1] if len(shape) > 1 else 1)
    data = _as_bands(data, rows, 'data')
    bands = data.to_delayed().ravel()
    if mask is not None:
        mask = _as_bands(mask, rows, 'mask')
        if mask.shape != data.shape:
            raise ValueError(f'mask must have the shape of the data {data.shape}; '
                             f'got {mask.shape}')
    masks = [None] * len(bands) if mask is None else mask.to_delayed().ravel()
    sampled = dask.compute(*[dask.delayed(_band_samples)(band, band_mask, estimator, factor)
                             for band, band_mask in zip(bands, masks)], scheduler=scheduler)
    blocks = join_tiles([[(top, 0, band)] for top, band in zip(range(0, shape[0], rows), sampled)])
    samples = _fit_samples(blocks.crowding_corrected(), shape, time.perf_counter() - start)
    model = estimator.fit(samples)
    return ChunkedBackgroundResult(model=model, data=data, mask=mask, samples=samples,
                                   estimator=estimator, scheduler=scheduler)


def _fit_samples(blocks, shape, seconds):
    from .samples import FitSamples

    return FitSamples(blocks=blocks, extra=None, include_blocks=True, shape=shape,
                      timings={'downscale': seconds})


def _model_band(model, shape, dtype, block_info=None):
    top, bottom = block_info[None]['array-location'][0]
    return model.evaluate_image(shape, rows=slice(top, bottom))[..., 0].astype(dtype, copy=False)


def _rms_band(block, mask, model, estimator, samples, box, top):
    """`rms_box_statistics` of one band, as `SplineOptBackgroundResult` makes them."""
    from .result import rms_box_statistics, sky_residual

    bottom = top + len(block)
    prepared = estimator.prepare(block, mask=mask)
    residual = sky_residual(prepared.image,
                            model.evaluate_image(samples.shape, rows=slice(top, bottom)),
                            (prepared.usable_fraction > 0) & samples.fitted_pixels(top, bottom))
    return rms_box_statistics(residual, box, samples.blocks.crowding_weight)


def _resampled_band(resampler, dtype, block_info=None):
    top, bottom = block_info[None]['array-location'][0]
    return resampler.rows(top, bottom, dtype=dtype)[..., 0]


class ChunkedBackgroundResult:
    """
    The fitted background of an image too large for memory (what
    `fit_chunked` returns).

    The full-size products are lazy `dask.array` arrays in bands of rows:
    nothing is computed until they are stored (`store`) or computed.

    Attributes
    ----------
    model : `~astrobgopt.optimize.SplineModel`
        The fitted spline.
    samples : `~astrobgopt.samples.FitSamples`
        The block samples of the fit.
    downscale_factor : int
        Block size of the fit.
    timings : dict
        Seconds of each stage.
    """

    def __init__(self, *, model, data, mask, samples, estimator, scheduler):
        self.model = model
        self.samples = samples
        self.downscale_factor = samples.blocks.factor
        self.timings = samples.timings
        self._data = data
        self._mask = mask
        self._estimator = estimator
        self._scheduler = scheduler
        self._dtype = data.dtype if data.dtype in (np.float32, np.float64) else np.dtype(np.float32)

    @property
    def background(self):
        """The background model, a lazy (H, W) `dask.array`."""
        return self._bands(_model_band, self.model, self._data.shape, self._dtype)

    def _bands(self, func, *args):
        """A lazy (H, W) array in the data's bands, band ``func(*args, block_info=)``."""
        import dask.array as da

        return da.map_blocks(func, *args, chunks=self._data.chunks, dtype=self._dtype,
                             meta=np.empty((0, 0), dtype=self._dtype))

    @property
    def subtracted(self):
        """The data minus the background, a lazy (H, W) `dask.array`."""
        return (self._data - self.background).astype(self._dtype)

    @property
    def rms_box_size(self):
        """Box size (pixels) of the `background_rms` map, see `astrobgopt.result.rms_box_size`."""
        from .result import rms_box_size

        return rms_box_size(self.downscale_factor)

    @property
    def background_rms_mesh(self):
        """
        The `background_rms` box map (ny, nx), as
        `~astrobgopt.SplineOptBackgroundResult` makes it; one pass over the
        data in bands of whole boxes.
        """
        import dask

        from .result import rms_mesh

        if not hasattr(self, '_rms_mesh'):
            start = time.perf_counter()
            rows = band_height(self.rms_box_size, self._data.shape[1])
            data = self._data.rechunk((rows, -1))
            tops = np.concatenate([[0], np.cumsum(data.chunks[0])[:-1]])
            masks = ([None] * len(tops) if self._mask is None
                     else self._mask.rechunk((rows, -1)).to_delayed().ravel())
            bands = dask.compute(*[
                dask.delayed(_rms_band)(band, band_mask, self.model, self._estimator,
                                        self.samples, self.rms_box_size, top)
                for band, band_mask, top in zip(data.to_delayed().ravel(), masks, tops)],
                scheduler=self._scheduler)
            self._rms_mesh = rms_mesh(bands)
            self.timings['rms'] = time.perf_counter() - start
        return self._rms_mesh[..., 0]

    @property
    def background_rms(self):
        """The RMS map (`background_rms_mesh` interpolated), a lazy (H, W) `dask.array`."""
        from .result import mesh_resampler

        resampler = mesh_resampler(self.background_rms_mesh[..., None], self._data.shape,
                                   self.rms_box_size)
        return self._bands(_resampled_band, resampler, self._dtype)

    def store(self, *, background=None, subtracted=None, background_rms=None):
        """
        Compute the products band by band into writable targets of shape
        (H, W) (`create_fits` writers, `numpy.memmap`, zarr arrays...).

        Parameters
        ----------
        background, subtracted, background_rms : array-like, optional
            Where to write each product; None skips it.
        """
        import dask.array as da

        start = time.perf_counter()
        pairs = [(getattr(self, name), target) for name, target in
                 (('background', background), ('subtracted', subtracted),
                  ('background_rms', background_rms)) if target is not None]
        if pairs:
            da.store(*zip(*pairs), scheduler=self._scheduler, lock=False)
        self.timings['store'] = time.perf_counter() - start


class FitsDataWriter:
    """
    The data of a FITS image written in bands of whole rows, with file
    writes rather than a memory map (whose dirty pages would count in the
    process's resident memory): a target of `dask.array.store`.

    Made by `create_fits`. ``writer[top:bottom] = band`` (or
    ``writer[top:bottom, :]``) writes rows ``top:bottom``.
    """

    def __init__(self, path, offset, shape, dtype):
        self.path = path
        self.shape = tuple(shape)
        self.dtype = dtype
        self._offset = offset

    def __setitem__(self, index, value):
        index = index if isinstance(index, tuple) else (index,)
        rows, *columns = index
        start, stop, step = rows.indices(self.shape[0])
        if step != 1 or any(column.indices(self.shape[1]) != (0, self.shape[1], 1)
                            for column in columns):
            raise IndexError('a FITS data writer takes bands of whole rows, e.g. [top:bottom]')
        band = np.ascontiguousarray(np.broadcast_to(value, (stop - start,) + self.shape[1:]),
                                    dtype=self.dtype)
        row_bytes = self.dtype.itemsize * int(np.prod(self.shape[1:]))
        with open(self.path, 'r+b') as stream:
            stream.seek(self._offset + start * row_bytes)
            stream.write(memoryview(band).cast('B'))


# Cards of a source header that describe its own data, not the new file's.
_STRUCTURE_KEYWORDS = {'XTENSION', 'PCOUNT', 'GCOUNT', 'BSCALE', 'BZERO', 'BLANK', 'CHECKSUM',
                       'DATASUM', 'EXTNAME'}


def create_fits(path, shape, dtype=np.float32, *, header=None, overwrite=False):
    """
    Create a FITS image of ``shape`` without holding its data in memory, and
    return a writer of its data in bands of rows.

    Parameters
    ----------
    path : str or path-like
        The file to create.
    shape : tuple of int
        Image shape (H, W).
    dtype : dtype, optional
        Floating type of the data (float32 or float64).
    header : `~astropy.io.fits.Header`, optional
        Cards to copy (the data's structure cards are set from ``shape``).
    overwrite : bool, optional
        Replace an existing file.

    Returns
    -------
    writer : `FitsDataWriter`
        ``writer[top:bottom] = band`` writes rows; unwritten rows are 0.
    """
    import os

    from astropy.io import fits

    dtype = np.dtype(dtype).newbyteorder('>')
    if os.path.exists(path) and not overwrite:
        raise OSError(f'{path} exists: pass overwrite=True to replace it')
    primary = fits.PrimaryHDU()
    primary.header['BITPIX'] = {4: -32, 8: -64}[dtype.itemsize]
    primary.header['NAXIS'] = len(shape)
    for axis, length in enumerate(reversed(shape), start=1):
        primary.header[f'NAXIS{axis}'] = length
    if header is not None:
        for card in header.cards:
            if (card.keyword not in primary.header and card.keyword not in _STRUCTURE_KEYWORDS
                    and not card.keyword.startswith('NAXIS')):
                primary.header.append(card)
    text = primary.header.tostring().encode('ascii')
    size = int(np.prod(shape)) * dtype.itemsize
    with open(path, 'wb') as stream:
        stream.write(text)
        stream.truncate(len(text) + size + (-size % 2880))  # sparse: zeros not written
    return FitsDataWriter(path, len(text), shape, dtype)


def _read_fits_band(path, hdu, block_info=None):
    from astropy.io import fits

    (top, bottom), (left, right) = block_info[None]['array-location']
    with fits.open(path, memmap=False) as hdul:
        return np.asarray(hdul[hdu].section[top:bottom, left:right])


def fits_bands(path, *, hdu=0, band_rows=None):
    """
    A 2-D FITS image as a lazy `dask.array` in bands of rows, each band read
    by opening the file (no memory map): bands can be read in parallel
    threads or on a cluster's workers that see ``path``.

    Parameters
    ----------
    path : str or path-like
        The FITS file.
    hdu : int or str, optional
        The image HDU.
    band_rows : int, optional
        Rows per band (default: about 16 Mi pixels).

    Returns
    -------
    data : `dask.array.Array`, shape (H, W)
    """
    import os

    import dask.array as da
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        header = hdul[hdu].header
        if header.get('NAXIS') != 2:
            raise ValueError(f'HDU {hdu!r} of {path} is not a 2-D image '
                             f'(NAXIS={header.get("NAXIS")})')
        shape = (header['NAXIS2'], header['NAXIS1'])
        dtype = np.dtype(hdul[hdu].section[:1, :1].dtype.newbyteorder('='))
    band_rows = band_rows or max(1, 64 * BAND_PIXELS // shape[1])
    return da.map_blocks(_read_fits_band, os.fspath(path), hdu, dtype=dtype,
                         chunks=(da.core.normalize_chunks(band_rows, (shape[0],))[0],
                                 (shape[1],)), meta=np.empty((0, 0), dtype=dtype))


def process_fits(path, outputs, estimator, *, hdu=0, scheduler=None, overwrite=False):
    """
    Fit a FITS image band by band and write its model and the data minus the
    model band by band (the command line's ``--chunked``).

    Parameters
    ----------
    path : str or path-like
        The FITS file (a 2-D image HDU; read with file reads, not mapped).
    outputs : dict
        ``'model'`` and ``'subtracted'``: the paths to write.
    estimator : `~astrobgopt.SplineOptBackground`
        The estimator.
    hdu : int or str, optional
        The image HDU.
    scheduler : optional
        Dask scheduler of the bands (see `fit_chunked`).
    overwrite : bool, optional
        Replace existing outputs.

    Returns
    -------
    result : `ChunkedBackgroundResult`
    """
    from astropy.io import fits

    header = fits.getheader(path, hdu)
    width = header.get('NAXIS1', 1)
    # Bands of whole block rows from the start: no rechunking between the
    # reads and the block statistics, whose intermediate pieces pile up.
    rows = band_height(estimator.downscale_factor_for((header.get('NAXIS2', 1), width)), width)
    data = fits_bands(path, hdu=hdu, band_rows=rows)
    result = fit_chunked(estimator, data, scheduler=scheduler)
    dtype = result.background.dtype
    result.store(**{name: create_fits(outputs[key], data.shape, dtype, header=header,
                                      overwrite=overwrite)
                    for name, key in (('background', 'model'), ('subtracted', 'subtracted'))})
    return result
