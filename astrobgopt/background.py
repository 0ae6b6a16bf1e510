"""
`SplineOptBackground`: a photutils-style background estimator built on the
gradient-descent spline fit.
"""

import dataclasses
import math
import time
import warnings
from typing import NamedTuple

import numpy as np
from astropy.nddata import NDData
from astropy.table import QTable
from astropy.units import Quantity
from astropy.utils import lazyproperty
from astropy.utils.exceptions import AstropyUserWarning

from .downsample import DOWNSCALE_FUNCTIONS, block_reduce_masked
from .optimize import FitConfig, compute_device, fit_spline, make_design
from .stretch import Stretch

__all__ = ['SplineOptBackground', 'SplineOptBackgroundResult']

# The automatic downscale factor aims for about this many blocks: enough that
# compact sources stand out from the blocks they fall in and the noise
# averages down, few enough that every optimization step stays cheap.
_AUTO_BLOCKS = 12000
_MAD_TO_SIGMA = 1.482602218505602
# Extended-object masking on the block grid: the residual is smoothed by a
# Gaussian of _EXTENDED_SMOOTH blocks; blocks where it exceeds both
# _EXTENDED_SIGNIFICANCE times its own noise and _EXTENDED_LEVEL times the
# pixel noise (a surface brightness, whatever the downscale factor) are
# masked, each connected region grown by _EXTENDED_GROW times its equivalent
# radius (at least one block) to take in the wings a fit absorbs, for at most
# _EXTENDED_ROUNDS rounds.
_EXTENDED_SMOOTH = 2.0
_EXTENDED_SIGNIFICANCE = 3.0
_EXTENDED_LEVEL = 0.5
_EXTENDED_GROW = 0.5
# ... but by at most this fraction of the block grid's shorter side: a large
# object's grown mask must not swallow a corner, which would then only be
# extrapolated.
_EXTENDED_MAX_GROW = 0.15
_EXTENDED_ROUNDS = 3
# The masking never leaves fewer than this fraction of the usable blocks (nor
# fewer than 4 samples per control point): in a crowded field (a globular
# cluster filling the frame) everything looks extended, and the fit needs data.
_EXTENDED_MIN_KEPT = 0.25
# Efficiency of the median relative to the mean for Gaussian noise: the
# median of n pixels scatters sqrt(pi / 2) times more than their mean.
_MEDIAN_NOISE_FACTOR = math.sqrt(math.pi / 2)


class _PreparedImage(NamedTuple):
    """What `SplineOptBackground._prepare` makes of the input."""

    image: np.ndarray
    unit: object
    dtype: np.dtype
    weights: np.ndarray
    stretch: Stretch | None
    coverage: np.ndarray | None


def auto_downscale_factor(shape):
    """
    Downscale factor chosen when ``downscale_factor='auto'``.

    Aims for about 12,000 blocks: a factor of 10 for a 1000 x 1000 image,
    23 for 2000 x 3000 and 45 for 4000 x 6000.
    """
    return max(1, math.ceil(math.sqrt(shape[0] * shape[1] / _AUTO_BLOCKS)))


def _split_input(data, wcs):
    """Return (array, unit, mask, wcs) from an ndarray, Quantity or NDData."""
    unit = mask = None
    if isinstance(data, NDData):
        mask = data.mask
        if wcs is None:
            wcs = data.wcs
        unit = data.unit
        data = data.data
    if isinstance(data, Quantity):
        unit = data.unit
        data = data.value
    if not isinstance(data, np.ndarray):
        try:
            data = np.asarray(data)
        except (TypeError, ValueError) as exc:
            raise TypeError(f'data must be an array, Quantity or NDData; got {type(data)}') from exc
    if data.dtype.kind not in 'biuf':
        raise TypeError(f'data must be numeric; got dtype {data.dtype}')
    return data, unit, mask, wcs


def _validate_mask(mask, shape, name):
    """A mask as float weights-to-remove in [0, 1] (1 = fully masked)."""
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise ValueError(f'{name} must have the image shape {tuple(shape)}; got {mask.shape}')
    if mask.dtype == bool:
        return mask.astype(np.float32)
    if mask.dtype.kind not in 'iuf':
        raise TypeError(f'{name} must be boolean or numeric in [0, 1]; got dtype {mask.dtype}')
    mask = mask.astype(np.float32)
    if not (np.all(np.isfinite(mask)) and mask.min() >= 0 and mask.max() <= 1):
        raise ValueError(f'{name} values must lie in [0, 1] (1 = fully masked, fractions '
                         'down-weight a pixel)')
    return mask


def _grow_regions(flagged, factor, max_reach):
    """
    Grow each connected region by ``factor`` times its equivalent radius, by
    at least one and at most ``max_reach`` cells.
    """
    from scipy import ndimage

    if not flagged.any():
        return flagged
    labels, n_regions = ndimage.label(flagged)
    areas = np.bincount(labels.ravel(), minlength=n_regions + 1)
    reach = np.clip(factor * np.sqrt(areas / np.pi), 1.0, max(1.0, max_reach))
    distance, (iy, ix) = ndimage.distance_transform_edt(~flagged, return_indices=True)
    return distance <= reach[labels[iy, ix]]


class SplineOptBackground:
    """
    Estimate a smooth 2-D background with a spline fitted by gradient descent.

    Control points of a polyharmonic spline (thin-plate by default) are placed
    on a grid or at random, their values initialized by robust weighted least
    squares on a block-downscaled image, and their positions and values then
    optimized with Adam in TensorFlow (on a GPU when one is visible).

    Calling the estimator on an image returns a `SplineOptBackgroundResult`,
    which offers the attributes of `photutils.background.Background2D`
    (``background``, ``background_rms``, ``background_median``,
    ``background_rms_median``, ``plot_meshes``), so it can stand in wherever a
    pipeline expects a ``Background2D``.

    Parameters
    ----------
    n_points : int, optional
        Number of control points. More points follow finer structure (and
        more of any unmasked nebulosity). 32 suits astrophotographs; 100-300
        suit complex detector or scattered-light patterns.
    order : {1, 2, 3, 4}, optional
        Polyharmonic order: 2 is the thin-plate spline, 3 the cubic.
    initializer : {'grid', 'random'}, optional
        Initial placement of the control points.
    loss : {'robust', 'asymmetric'}, optional
        ``'robust'`` (Tukey biweight of the noise-normalized residual: no
        offset bias, stars and nebulae rejected) or ``'asymmetric'`` (the
        seed tool's loss; use with ``stretch='mtf'``). See
        `astrobgopt.optimize`.
    downscale_factor : int or 'auto', optional
        Block size of the downscaled image the spline is fitted to. 'auto'
        picks it from the image size (see ``auto_downscale_factor``).
    downscale_func : {'median', 'mean'}, optional
        Block statistic.
    stretch : {None, 'mtf'}, optional
        None fits the linear data. 'mtf' fits the seed tool's delinearized
        image (pedestal, quantile scaling and midtones transfer function) and
        maps the model back with the exact inverse.
    delinearization_quantile : float, optional
        Quantile mapped to 1 by the 'mtf' stretch.
    threshold_min, threshold_max : float, optional
        Pixels below/above these levels are masked; levels are in stretched
        units when a stretch is used, else in data units.
    validation_fraction : float, optional
        Fraction of blocks held out of the optimization; early stopping
        watches their loss so that the control points stop moving once that
        no longer generalizes.
    alpha : float, optional
        Weight of the overshoot and negative-background penalties of the
        ``'asymmetric'`` loss.
    smoothing : float, optional
        Bending-energy penalty relative to the data term.
    epochs : int, optional
        Maximum number of Adam steps (0 keeps the initialization).
    learning_rate : float, optional
        Adam learning rate.
    batch_size : int or None, optional
        Blocks per step; None uses all (deterministic full batch).
    patience : int, optional
        Steps without improvement before stopping early.
    mask_extended : bool, optional
        Before optimizing, find coherent positive structure (nebulae,
        galaxies, star halos) in the smoothed residual of a first fit, mask
        it and refit, for a few rounds. Keeps large bright objects out of
        the background; turn off when the background itself has compact
        bright features that few control points cannot follow.
    seed : int, optional
        Seed of the random initializer and mini-batches; fits are
        deterministic for a given seed.
    progress : bool or None, optional
        Progress bar: None shows one only for fits longer than 2 s.

    Examples
    --------
    >>> from astrobgopt import SplineOptBackground
    >>> from astrobgopt.datasets import make_light_pollution_sky
    >>> sky = make_light_pollution_sky((300, 450), seed=1)
    >>> bkg = SplineOptBackground(n_points=16, progress=False)(sky.image)
    >>> bkg.background.shape
    (300, 450)
    """

    def __init__(self, *, n_points=32, order=2, initializer='grid', loss='robust',
                 downscale_factor='auto', downscale_func='median', stretch=None,
                 delinearization_quantile=0.95, threshold_min=None, threshold_max=None,
                 alpha=5.0, smoothing=1e-3, epochs=300, learning_rate=1e-3, batch_size=None,
                 patience=10, validation_fraction=0.2, mask_extended=True, seed=0,
                 progress=None):
        self.config = FitConfig(n_points=n_points, order=order, initializer=initializer,
                                loss=loss, alpha=alpha, smoothing=smoothing, epochs=epochs,
                                learning_rate=learning_rate, batch_size=batch_size,
                                patience=patience, validation_fraction=validation_fraction,
                                seed=seed)
        if downscale_factor != 'auto':
            is_integer = (isinstance(downscale_factor, (int, np.integer))
                          and not isinstance(downscale_factor, bool))
            if not is_integer:
                raise TypeError(f"downscale_factor must be an integer or 'auto'; "
                                f"got {downscale_factor!r}")
            if downscale_factor < 1:
                raise ValueError(f'downscale_factor must be >= 1; got {downscale_factor}')
        if downscale_func not in DOWNSCALE_FUNCTIONS:
            raise ValueError(f'downscale_func must be one of {DOWNSCALE_FUNCTIONS}; '
                             f'got {downscale_func!r}')
        if stretch not in (None, 'mtf'):
            raise ValueError(f"stretch must be None or 'mtf'; got {stretch!r}")
        self.downscale_factor = downscale_factor
        self.downscale_func = downscale_func
        self.stretch = stretch
        self.delinearization_quantile = delinearization_quantile
        self.threshold_min = threshold_min
        self.threshold_max = threshold_max
        self.mask_extended = mask_extended
        self.progress = progress

    def __repr__(self):
        options = ', '.join(f'{key}={value!r}' for key, value in self.config.to_dict().items())
        return (f'{type(self).__name__}({options}, downscale_factor={self.downscale_factor!r}, '
                f'downscale_func={self.downscale_func!r}, stretch={self.stretch!r})')

    def __call__(self, data, *, mask=None, coverage_mask=None, regions=None, wcs=None,
                 fill_value=0.0, channel_axis=None):
        """
        Fit the background of an image.

        Parameters
        ----------
        data : array-like, `~astropy.units.Quantity` or `~astropy.nddata.NDData`
            The 2-D image (or 3-D with ``channel_axis``). A unit is kept on
            the outputs; an NDData/CCDData mask joins ``mask`` and its WCS is
            used for sky regions. Non-finite pixels are masked.
        mask : array-like, optional
            Pixels to ignore: boolean (True = masked) or numeric in [0, 1]
            (1 = masked, fractions down-weight a pixel, as the seed tool's
            soft masks).
        coverage_mask : bool array-like, optional
            Pixels with no data coverage: ignored in the fit and set to
            ``fill_value`` in the outputs.
        regions : str, path, `regions.Regions` or list of regions, optional
            Regions to exclude from the fit (a ds9/CRTF file or region
            objects; ds9 exclusions with a leading ``-`` are honoured).
        wcs : `~astropy.wcs.WCS`, optional
            WCS for sky regions (default: the NDData's).
        fill_value : float, optional
            Output value where ``coverage_mask`` is True.
        channel_axis : int, optional
            Axis of colour channels for 3-D data: channels share control-point
            positions (and, with the asymmetric loss, a colour-balance term).

        Returns
        -------
        result : `SplineOptBackgroundResult`
        """
        timings = {}
        start = time.perf_counter()
        prepared = self._prepare(data, mask=mask, coverage_mask=coverage_mask, regions=regions,
                                 wcs=wcs, channel_axis=channel_axis)
        image, weights, stretch = prepared.image, prepared.weights, prepared.stretch
        shape = image.shape[:2]

        factor = (auto_downscale_factor(shape)
                  if self.downscale_factor == 'auto' else self.downscale_factor)
        if shape[0] < 2 * factor or shape[1] < 2 * factor:
            raise ValueError(f'image of shape {shape} is too small for downscale factor '
                             f'{factor}: it needs at least 2 x 2 blocks; use a smaller factor')
        samples = block_reduce_masked(image, weights, factor, func=self.downscale_func)
        points, values, sample_weights = samples.points()
        if stretch is not None:
            values = stretch.forward(values)
        timings['downscale'] = time.perf_counter() - start

        start = time.perf_counter()
        initial_values = None
        if self.mask_extended:
            grid_weights, initial_values = self._mask_extended_objects(samples, stretch, shape)
            points, values, sample_weights = samples.points(grid_weights)
            if stretch is not None:
                values = stretch.forward(values)
        timings['extended_mask'] = time.perf_counter() - start

        start = time.perf_counter()
        model = fit_spline(points, values, sample_weights, shape, self.config,
                           initial_values=initial_values, progress=self.progress)
        timings['fit'] = time.perf_counter() - start

        return SplineOptBackgroundResult(
            model=model, data=image, usable=weights > 0, samples=samples, stretch=stretch,
            unit=prepared.unit, dtype=prepared.dtype, coverage=prepared.coverage,
            fill_value=fill_value, channel_axis=channel_axis, estimator=self, timings=timings)

    def _prepare(self, data, *, mask=None, coverage_mask=None, regions=None, wcs=None,
                 channel_axis=None):
        """
        The image as float (H, W, k) with non-finite pixels zeroed, the fit
        weight of every pixel and the fit's stretch.

        The masks, regions and non-finite pixels come first, the stretch (if
        any) is chosen from the pixels they leave, then the thresholds (in
        stretched units with a stretch) remove more. Arguments as for
        `__call__`.
        """
        array, unit, data_mask, wcs = _split_input(data, wcs)
        if channel_axis is None:
            if array.ndim != 2:
                raise ValueError(f'data must be a 2-D image; got shape {array.shape} '
                                 '(for colour images pass channel_axis=)')
            image = array[..., None]
        else:
            if array.ndim != 3:
                raise ValueError(f'with channel_axis, data must be 3-D; got shape {array.shape}')
            image = np.moveaxis(array, channel_axis, -1)
        shape = image.shape[:2]

        removed = np.zeros(shape, dtype=np.float32)
        for name, given in (('mask', mask), ('NDData mask', data_mask)):
            if given is not None:
                removed = np.maximum(removed, _validate_mask(given, shape, name))
        coverage = None
        if coverage_mask is not None:
            coverage = _validate_mask(coverage_mask, shape, 'coverage_mask') > 0
            removed[coverage] = 1
        if regions is not None:
            from .masks import regions_to_mask
            removed[regions_to_mask(regions, shape, wcs=wcs)] = 1
        finite = np.all(np.isfinite(image), axis=-1)
        removed[~finite] = 1
        if not finite.all():
            image = np.where(finite[..., None], image, 0)

        stretch = None
        if self.stretch == 'mtf':
            stretch = Stretch.from_data(image[removed < 1],
                                        quantile=self.delinearization_quantile)
        self._mask_thresholds(image, removed, stretch)
        weights = 1 - removed
        if not np.any(weights > 0):
            raise ValueError('every pixel is masked or non-finite: nothing to fit')
        dtype = array.dtype if array.dtype in (np.float32, np.float64) else np.float32
        return _PreparedImage(image=image, unit=unit, dtype=dtype, weights=weights,
                              stretch=stretch, coverage=coverage)

    def _mask_extended_objects(self, samples, stretch, shape):
        """
        Block weights with coherent positive structure (nebulae, galaxies,
        star halos) removed.

        A spline fitted to every block absorbs part of any large bright
        object, but what it leaves stands out in the residual once that is
        smoothed over a few blocks. Those blocks are masked, grown, and the
        spline refitted; a few rounds peel the object away.

        Returns the block weights and the control values of the last round
        (a warm start for the final fit).
        """
        from scipy import ndimage

        init_only = dataclasses.replace(self.config, epochs=0)
        usable = samples.weights > 0
        points, values, weights = samples.points()
        if stretch is not None:
            values = stretch.forward(values)
        # Every round refits the same samples with more of them at weight 0.
        design = make_design(points, shape, init_only)
        # Residuals below are in units of the full-block noise. Smoothing white
        # noise with a unit-sum Gaussian of width s blocks divides its scatter
        # by 2 s sqrt(pi); one block averages factor**2 pixels.
        smoothed_noise = 1 / (2 * _EXTENDED_SMOOTH * math.sqrt(math.pi))
        pixel_noise = samples.factor / (_MEDIAN_NOISE_FACTOR if self.downscale_func == 'median'
                                        else 1.0)
        threshold = max(_EXTENDED_SIGNIFICANCE * smoothed_noise, _EXTENDED_LEVEL * pixel_noise)
        excess = np.zeros(usable.shape, dtype=bool)
        model = None
        for _ in range(_EXTENDED_ROUNDS):
            model = fit_spline(points, values, np.where(excess[usable], 0, weights), shape,
                               init_only, design=design, progress=False,
                               initial_values=None if model is None else model.control_values)
            z = np.zeros(usable.shape)
            z[usable] = ((values - model.sample_values) * np.sqrt(weights)[:, None]
                         / model.noise_sigma).max(axis=-1)
            norm = ndimage.gaussian_filter(usable.astype(float), _EXTENDED_SMOOTH)
            smoothed = ndimage.gaussian_filter(z, _EXTENDED_SMOOTH) / np.maximum(norm, 1e-12)
            flagged = _grow_regions(usable & (smoothed > threshold), _EXTENDED_GROW,
                                    _EXTENDED_MAX_GROW * min(usable.shape)) & usable
            if np.array_equal(flagged | excess, excess):
                break
            kept = np.count_nonzero(usable & ~(excess | flagged))
            if kept < max(_EXTENDED_MIN_KEPT * np.count_nonzero(usable),
                          4 * (self.config.n_points + 3)):
                warnings.warn(
                    f'extended-object masking would leave only {kept} of '
                    f'{np.count_nonzero(usable)} blocks (a crowded field?); it stopped after '
                    f'masking {np.count_nonzero(excess)}. Pass a mask of the objects, or '
                    'mask_extended=False.', AstropyUserWarning)
                break
            excess |= flagged
        return np.where(excess, 0, samples.weights), model.control_values

    def _mask_thresholds(self, image, removed, stretch):
        """Mask pixels outside [threshold_min, threshold_max] in place."""
        for level, outside in ((self.threshold_min, np.less), (self.threshold_max, np.greater)):
            if level is None:
                continue
            linear_level = float(stretch.inverse(level)) if stretch is not None else level
            removed[np.any(outside(image, linear_level), axis=-1)] = 1


class SplineOptBackgroundResult:
    """
    The fitted background of one image, with the attributes of
    `photutils.background.Background2D`.

    Full-resolution products are computed on first access and cached.

    Attributes
    ----------
    model : `astrobgopt.optimize.SplineModel`
        The fitted spline (in stretched units when a stretch was used).
    stretch : `astrobgopt.stretch.Stretch` or None
        The delinearizing stretch of the fit.
    downscale_factor : int
        Block size used for the fit.
    timings : dict
        Wall-clock seconds of each stage ('downscale', 'fit', then
        'evaluate' and 'rms' once computed).
    """

    def __init__(self, *, model, data, usable, samples, stretch, unit, dtype, coverage,
                 fill_value, channel_axis, estimator, timings):
        self.model = model
        self.stretch = stretch
        self.downscale_factor = samples.factor
        self.timings = timings
        self._data = data
        self._usable = usable
        self._samples = samples
        self._unit = unit
        self._dtype = dtype
        self._coverage = coverage
        self._fill_value = fill_value
        self._channel_axis = channel_axis
        self._estimator = estimator

    def _to_linear(self, values):
        return self.stretch.inverse(values) if self.stretch is not None else values

    def _present(self, image):
        """Shape like the input (channels back in place), fill, add the unit."""
        if self._coverage is not None:
            image[self._coverage] = self._fill_value
        image = image[..., 0] if self._channel_axis is None else np.moveaxis(
            image, -1, self._channel_axis)
        return image * self._unit if self._unit is not None else image

    @lazyproperty
    def _background(self):
        start = time.perf_counter()
        image = self.model.evaluate_image(self._data.shape[:2], dtype=np.float32)
        if self.stretch is not None:
            image = self._to_linear(image)
        image = image.astype(self._dtype, copy=False)
        self.timings['evaluate'] = time.perf_counter() - start
        return image

    @lazyproperty
    def background(self):
        """The background model at full resolution (unit of the input)."""
        return self._present(self._background.copy())

    @lazyproperty
    def _rms_mesh(self):
        """Robust RMS of the residual in each block, (ny, nx, k); NaN where unusable."""
        start = time.perf_counter()
        factor = self.downscale_factor
        residual = self._data - self._background
        weights = self._usable.astype(np.float32)
        centre = block_reduce_masked(residual, weights, factor).values
        expanded = np.repeat(np.repeat(centre, factor, axis=0), factor, axis=1)
        spread = np.abs(residual - expanded[:residual.shape[0], :residual.shape[1]])
        rms = _MAD_TO_SIGMA * block_reduce_masked(spread, weights, factor).values
        self.timings['rms'] = time.perf_counter() - start
        return rms

    def _mesh_to_image(self, mesh):
        """
        A block-grid map (ny, nx, k) at full resolution: blocks without a
        value filled by the median, then bilinear interpolation between the
        block centres.
        """
        from scipy.ndimage import map_coordinates

        mesh = mesh.copy()
        for channel in range(mesh.shape[2]):
            plane = mesh[..., channel]
            plane[~np.isfinite(plane)] = np.nanmedian(plane)
        height, width = self._data.shape[:2]
        factor = self.downscale_factor
        rows = (np.arange(height) - (factor - 1) / 2) / factor
        cols = (np.arange(width) - (factor - 1) / 2) / factor
        grid = np.meshgrid(rows, cols, indexing='ij')
        image = np.stack([map_coordinates(mesh[..., c], grid, order=1, mode='nearest')
                          for c in range(mesh.shape[2])], axis=-1).astype(self._dtype)
        return self._present(image)

    @lazyproperty
    def background_rms(self):
        """
        RMS of the residual (data - background) at full resolution.

        The robust (MAD) scatter of the residual in each fitting block, with
        blocks that had no usable pixel filled by the median, interpolated
        bilinearly to every pixel.
        """
        return self._mesh_to_image(self._rms_mesh)

    @lazyproperty
    def background_error(self):
        """
        Standard error of the background model at full resolution.

        The noise of the blocks propagated through the fit of the control
        values (at their final positions), evaluated at the block centres and
        interpolated bilinearly; with a stretch, mapped back to linear units.
        This is the uncertainty of the model itself, not the pixel scatter
        (`background_rms`): `astrobgopt.subtract_background` adds it in
        quadrature to the data's uncertainty.
        """
        yy, xx = np.meshgrid(self._samples.y, self._samples.x, indexing='ij')
        points = np.stack([xx.ravel(), yy.ravel()], axis=1)
        error = self.model.standard_error(points)
        if self.stretch is not None:
            value = self.model.evaluate(points)
            error = 0.5 * np.abs(self._to_linear(value + error) - self._to_linear(value - error))
        return self._mesh_to_image(error.reshape(yy.shape + (-1,)))

    @lazyproperty
    def background_mesh(self):
        """The background model at the block centres (the low-resolution map)."""
        yy, xx = np.meshgrid(self._samples.y, self._samples.x, indexing='ij')
        values = self.model.evaluate(np.stack([xx.ravel(), yy.ravel()], axis=1))
        mesh = self._to_linear(values).reshape(yy.shape + (-1,)).astype(self._dtype)
        mesh = mesh[..., 0] if self._channel_axis is None else mesh
        return mesh * self._unit if self._unit is not None else mesh

    @lazyproperty
    def background_median(self):
        """Median of the low-resolution background map (per channel for colour)."""
        return np.median(self.background_mesh, axis=(0, 1))

    @lazyproperty
    def background_rms_median(self):
        """Median of the block RMS map (per channel for colour)."""
        rms = self._rms_mesh
        value = np.nanmedian(rms.reshape(-1, rms.shape[2]), axis=0).astype(self._dtype)
        value = value[0] if self._channel_axis is None else value
        return value * self._unit if self._unit is not None else value

    @property
    def control_points(self):
        """
        Fitted control points as a `~astropy.table.QTable` with columns
        ``x``, ``y`` (pixels) and ``value`` (data units; one column per
        channel for colour images).
        """
        values = self._to_linear(self.model.control_values)
        if self._unit is not None:
            values = values * self._unit
        table = QTable()
        table['x'] = self.model.control_points[:, 0]
        table['y'] = self.model.control_points[:, 1]
        table['value'] = values[:, 0] if self._channel_axis is None else values
        return table

    @property
    def initial_control_points(self):
        """(x, y) control-point positions before optimization, shape (n, 2)."""
        return self.model.initial_control_points

    @property
    def loss_history(self):
        """
        Loss per optimization step, shape (n_steps + 1, 2): columns are the
        training loss and the held-out (early-stopping) loss; the first row
        is the initialization.
        """
        return self.model.loss_history

    @property
    def meta(self):
        """
        Provenance: options, downscale factor, stretch, stop reason, device,
        timings.
        """
        return {'estimator': repr(self._estimator),
                'config': self._estimator.config.to_dict(),
                'downscale_factor': self.downscale_factor,
                'downscale_func': self._estimator.downscale_func,
                'stretch': repr(self.stretch),
                'n_control_points': len(self.model.control_points),
                'stop_reason': self.model.stop_reason,
                'n_steps': len(self.model.loss_history) - 1,
                'device': compute_device(),
                'timings': dict(self.timings)}

    def plot_meshes(self, *, ax=None, marker='+', color='red', markersize=None, alpha=None,
                    show_initial=False, **kwargs):
        """
        Plot the control points (over an image already shown on ``ax``).

        Parameters
        ----------
        ax : `matplotlib.axes.Axes`, optional
            Axes to draw on (default: the current axes).
        marker, color, markersize, alpha : optional
            Marker style of the final control points.
        show_initial : bool, optional
            Also mark the initial positions and draw how each point moved.
        **kwargs
            Passed to `matplotlib.axes.Axes.scatter`.

        Returns
        -------
        ax : `matplotlib.axes.Axes`
        """
        import matplotlib.pyplot as plt

        if ax is None:
            ax = plt.gca()
        final = self.model.control_points
        size = None if markersize is None else markersize ** 2
        if show_initial:
            initial = self.model.initial_control_points
            ax.scatter(initial[:, 0], initial[:, 1], marker='o', s=size, facecolors='none',
                       edgecolors=color, alpha=0.5 if alpha is None else alpha)
            for (x0, y0), (x1, y1) in zip(initial, final):
                ax.plot([x0, x1], [y0, y1], color=color, lw=0.8, alpha=alpha)
        ax.scatter(final[:, 0], final[:, 1], marker=marker, color=color, s=size, alpha=alpha,
                   **kwargs)
        return ax
