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
* `create_fits` makes a FITS file of a given shape whose data is a writable
  memory map, a target that `ChunkedBackgroundResult.store` fills band by band.

Bands hold whole blocks, so the block statistics, and hence the fit, are
exactly those of the in-memory path.
"""

import time

import numpy as np

from .downsample import BlockSamples, block_reduce_masked

__all__ = ['ChunkedBackgroundResult', 'block_samples', 'band_height', 'create_fits',
           'fit_chunked', 'is_chunked']

# Pixels per band: 1 MB of float32, so that a band's temporaries (a
# few copies for the block statistic, about 40 bytes a pixel) stay near 10 MB.
BAND_PIXELS = 256 * 1024


def band_height(factor, width, band_pixels=BAND_PIXELS):
    """Rows per band: a whole number of ``factor``-row blocks, about ``band_pixels`` pixels."""
    return factor * max(1, band_pixels // (factor * width))


def join_bands(bands):
    """One `BlockSamples` from those of consecutive bands, given as ``(top row, samples)``."""
    return BlockSamples(np.concatenate([samples.values for _, samples in bands]),
                        np.concatenate([samples.usable_fraction for _, samples in bands]),
                        bands[0][1].x,
                        np.concatenate([top + samples.y for top, samples in bands]),
                        bands[0][1].factor)


def block_samples(image, usable_fraction, factor, *, func='median'):
    """
    `~astrobgopt.downsample.block_reduce_masked` band by band: the same
    samples, with the temporaries of one band.

    Parameters
    ----------
    image : `~numpy.ndarray`, shape (H, W, k)
        The image (non-finite pixels already unusable).
    usable_fraction : `~numpy.ndarray`, shape (H, W)
        Usable fraction of each pixel.
    factor : int
        Block size.
    func : {'median', 'mean'}, optional
        Block statistic.

    Returns
    -------
    samples : `~astrobgopt.downsample.BlockSamples`
    """
    rows = band_height(factor, image.shape[1])
    return join_bands([(top, block_reduce_masked(image[top:top + rows],
                                                 usable_fraction[top:top + rows], factor,
                                                 func=func))
                       for top in range(0, image.shape[0], rows)])


def is_chunked(data):
    """Whether ``data`` is a `dask.array.Array` (the input of `fit_chunked`)."""
    import sys

    dask_array = sys.modules.get('dask.array')
    return dask_array is not None and isinstance(data, dask_array.Array)


def _as_bands(data, rows, what):
    """``data`` as a 2-D dask array in bands of ``rows`` full rows."""
    import dask.array as da

    if not is_chunked(data):
        data = da.from_array(data, chunks=(rows, -1), asarray=True)
    if data.ndim != 2:
        raise ValueError(f'{what} must be a 2-D image for the chunked path; got shape '
                         f'{data.shape} (fit colour mosaics one channel at a time)')
    return data.rechunk((rows, -1))


def _band_samples(band, mask, estimator, factor):
    """Block samples of one band (prepared as a whole image would be)."""
    prepared = estimator.prepare(band, mask=mask)
    return block_reduce_masked(prepared.image, prepared.usable_fraction, factor,
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
        The image: a `dask.array`, or an array read on demand such as a
        `numpy.memmap` or the ``data`` of a FITS file opened with
        ``memmap=True``.
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
    samples = _fit_samples(join_bands(list(zip(range(0, shape[0], rows), sampled))), shape,
                           time.perf_counter() - start)
    model = estimator.fit(samples)
    return ChunkedBackgroundResult(model=model, data=data, mask=mask, samples=samples,
                                   estimator=estimator, scheduler=scheduler)


def _model_band(block, model, shape, dtype, block_info=None):
    top, bottom = block_info[0]['array-location'][0]
    return model.evaluate_image(shape, rows=slice(top, bottom))[..., 0].astype(dtype, copy=False)


def _rms_band(block, mask, model, estimator, shape, factor, top):
    from .result import block_mad_std

    prepared = estimator.prepare(block, mask=mask)
    background = model.evaluate_image(shape, rows=slice(top, top + len(block)))
    return block_mad_std(prepared.image - background, prepared.usable_fraction > 0, factor)


def _resampled_band(block, resampler, dtype, block_info=None):
    top, bottom = block_info[0]['array-location'][0]
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
        return self._data.map_blocks(_model_band, self.model, self._data.shape, self._dtype,
                                     dtype=self._dtype)

    @property
    def subtracted(self):
        """The data minus the background, a lazy (H, W) `dask.array`."""
        return (self._data - self.background).astype(self._dtype)

    @property
    def background_rms_mesh(self):
        """Robust RMS of the residual in each block, (ny, nx); one pass over the data."""
        import dask

        if not hasattr(self, '_rms_mesh'):
            start = time.perf_counter()
            rows = self._data.chunks[0]
            tops = np.concatenate([[0], np.cumsum(rows)[:-1]])
            masks = ([None] * len(rows) if self._mask is None
                     else self._mask.to_delayed().ravel())
            bands = dask.compute(*[
                dask.delayed(_rms_band)(band, band_mask, self.model, self._estimator,
                                        self._data.shape, self.downscale_factor, top)
                for band, band_mask, top in zip(self._data.to_delayed().ravel(), masks, tops)],
                scheduler=self._scheduler)
            self._rms_mesh = np.concatenate(bands)
            self.timings['rms'] = time.perf_counter() - start
        return self._rms_mesh[..., 0]

    @property
    def background_rms(self):
        """The RMS map (`background_rms_mesh` interpolated), a lazy (H, W) `dask.array`."""
        from .result import mesh_resampler

        resampler = mesh_resampler(self.background_rms_mesh[..., None], self._data.shape,
                                   self.downscale_factor)
        return self._data.map_blocks(_resampled_band, resampler, self._dtype, dtype=self._dtype)

    def store(self, *, background=None, subtracted=None, background_rms=None):
        """
        Compute the products band by band into writable targets of shape
        (H, W) (`numpy.memmap`, `create_fits` data, zarr arrays...).

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


def create_fits(path, shape, dtype=np.float32, *, header=None, overwrite=False):
    """
    Create a FITS file of ``shape`` without holding its data in memory, and
    return the file's data as a writable memory map.

    Parameters
    ----------
    path : str or path-like
        The file to create.
    shape : tuple of int
        Image shape (H, W).
    dtype : dtype, optional
        Floating type of the data.
    header : `~astropy.io.fits.Header`, optional
        Cards to copy (the data's structure cards are set from ``shape``).
    overwrite : bool, optional
        Replace an existing file.

    Returns
    -------
    data : `numpy.memmap`, shape ``shape``
        Big-endian, as FITS stores it; flushed when deleted.
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
            if card.keyword not in primary.header and not card.keyword.startswith('NAXIS'):
                primary.header.append(card)
    text = primary.header.tostring().encode('ascii')
    size = int(np.prod(shape)) * dtype.itemsize
    with open(path, 'wb') as stream:
        stream.write(text)
        stream.seek(len(text) + size + (-size % 2880) - 1)
        stream.write(b'\0')
    return np.memmap(path, dtype=dtype, mode='r+', offset=len(text), shape=tuple(shape))


def _fit_samples(blocks, shape, seconds):
    from .samples import FitSamples

    return FitSamples(blocks=blocks, extra=None, include_blocks=True, shape=shape,
                      timings={'downscale': seconds})
