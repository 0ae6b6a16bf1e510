"""
`SplineOptBackground`: a photutils-style background estimator built on the
gradient-descent spline fit, and its stages (prepare, sample, fit, result).
"""

import dataclasses
import itertools
import math
import time
from numbers import Real
from typing import NamedTuple

import numpy as np
from astropy.units import Quantity

from . import _choices, _isolation
from ._docs import insert_fit_parameter_docs
from .config import FitConfig, make_repr
from .chunked import block_samples, fit_chunked, is_chunked
from .extended import mask_extended_objects, sky_light_cutoff
from .prepare import prepare_image
from .result import SplineOptBackgroundResult
from .samples import ExtraSamples, FitSamples

__all__ = ['SplineOptBackground', 'SplineOptBackgroundResult']

# The automatic downscale factor aims for about this many blocks: enough that
# compact sources stand out from the blocks they fall in and the noise
# averages down, few enough that every optimization step stays cheap.
_AUTO_BLOCKS = 12000
# n_points='auto' fits this many control points, then doubles them, up to the
# last, while each doubling lowers the held-out loss (below) by more than
# _AUTO_POINTS_GAIN: a sky with more structure than 16 points can follow
# (ripples, an amplifier glow, a bowl) gets more, a simple one keeps 16,
# which propagates the least block noise and absorbs least of any faint
# nebulosity left unmasked (small_flat: 0.0071 sigma, 0.0100 with 32).
_AUTO_POINTS = (16, 32, 64, 128, 256)
_AUTO_POINTS_GAIN = 0.05
# ... unless the extended-object masking took more than this fraction of the
# blocks: points added around large masked objects are held by few blocks
# and bend beneath the objects (the light-pollution frame, half of it
# masked: 0.53 sigma with 32 points, 0.66 with 64 at 400 x 600).
_AUTO_MAX_MASKED = 0.1
# The extended-object masking's fits have this many control points, and so
# has the final fit when the masking took more than _AUTO_MAX_MASKED: 16
# there made the estimates change when a smooth gradient was added
# (equivariance 0.24 sigma on small_glow, 0.11 on small_256, in an earlier
# stop) and, when measured again, tripled the optimizer's steps.
_MASKING_POINTS = 32
# ... but when a bright masked object (see
# astrobgopt.extended.mask_extended_objects) covers more than _LARGE_OBJECT
# of the blocks (a nebula, a galaxy, a cluster, a star's halo), no glow was
# found and crowding did not stop the masking, the final fit is the robust
# initialization alone, stiffened: its bending penalty (``smoothing``) is at
# least _LARGE_OBJECT_SMOOTHING[n_points]. Beneath the object the points
# are held by few blocks; with the default penalty they bend, and the
# optimizer's free knots move to follow the object's unmasked wings. It has
# 16 points, or 32 where the sky has more structure than 16 follow: 32
# lower the held-out loss (below) under _LARGE_OBJECT_STRUCTURE times 16's.
# Over seeds 0-2 that ratio was 0.19-0.22 on strong_light_pollution,
# 0.33-0.34 on light_pollution, 0.44-0.47 on that frame at 600 x 900,
# 0.62-0.70 on edge_nebula and 0.93-1.00 on galaxy, globular_cluster and
# saturated_star. Measured against 16 points, the default penalty and no
# steps (the rule before), and against the full optimization with 32 points
# (before that): light_pollution 0.14 sigma, 0.45, 0.46;
# strong_light_pollution 0.43, 0.99-1.01, 0.38-0.44; edge_nebula 0.33-0.34,
# 1.03-1.36, 2.10; galaxy 0.18-0.20, 0.27-0.32, 0.71; globular_cluster
# 0.18-0.19, 0.23-0.26, 0.48; saturated_star 0.06, 0.07-0.08, 0.13. With
# 16 points a penalty of 1 did better beneath objects (edge_nebula
# 0.29-0.31) but worse where the masking took part of a sky glow for an
# object (the 256 x 256 demo sky without nebula of
# tests/test_pipeline_contract.py: 0.47-0.95, 0.28-0.38 with 0.3, 0.23-0.25
# with the default), and 0.1 less well beneath them (edge_nebula
# 0.38-0.43); with 32 points 0.3 and 3 did worse than 1 (light_pollution
# 0.17 and 0.26). Many small masked regions (bright stars) leave every
# point held and keep the rule below (rgb_gradient: 0.025 with 32, 0.031
# with 16), and a faint masked region may be sky structure (the sinc
# blemish's central lobe: 0.13 sigma with the usual points, 0.93 with 16).
_LARGE_OBJECT = 0.05
_LARGE_OBJECT_STRUCTURE = 0.55
_LARGE_OBJECT_SMOOTHING = {16: 0.3, 32: 1.0}
# Where n_points='auto' settles on the fewest points, the sky is simple and
# the fit is the robust initialization alone, with no optimizer steps: they
# changed nothing measurable on such skies (small_flat 0.0071 sigma either
# way, satellite_trail 0.0191, milky_way 1.87 and 1.86, small_256 0.18-0.19
# over seeds), beneath large objects they made it worse (above), and their
# compiled program costs about 0.35 s on its first call in a process
# (bench_pipeline.py's star field: first call 3.5 times a warm one). Skies
# with more structure keep the optimizer, which helps there (sinc_blemish,
# seed 1: 0.29 sigma, 0.59 without steps; small_glow 0.051 and 0.059).
# The held-out loss: the mean over a random _AUTO_HELD_OUT of the blocks
# (fitted without them, robust initialization only) of the squared residual
# in units of the first fit's block noise, capped at _AUTO_LOSS_CAP squared
# so that stars in held-out blocks do not count.
_AUTO_HELD_OUT = 0.2
_AUTO_LOSS_CAP = 3.0
_FIT_PARAMETERS = ('order', 'initializer', 'loss', 'alpha', 'smoothing', 'epochs',
                   'learning_rate', 'batch_size', 'patience', 'validation_fraction', 'seed')


def _check_threshold(name, level):
    """A threshold is None, a real number or a scalar Quantity, not NaN."""
    if level is None:
        return
    value = level.value if isinstance(level, Quantity) else level
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise TypeError(f'{name} must be a number or a scalar Quantity; got {level!r}')
    if math.isnan(value):
        raise ValueError(f'{name} must be a number, not NaN; leave it None for no threshold')


class _Trial(NamedTuple):
    """
    A trial fit of `_held_out_losses`: its number of control points, its
    held-out loss, the `~astrobgopt.optimize.SplineDesign` of all the
    samples for them and its control values, which the final fit reuses.
    """

    n_points: int
    loss: float
    design: object
    control_values: np.ndarray


def _held_out_losses(points, values, usable_fraction, shape, config, outlier_cutoff=None):
    """
    Yield a `_Trial` for each of `_AUTO_POINTS` in turn, while enough
    blocks train it: the held-out loss of a fit with that many control
    points (robust initialization only). Residuals count at most
    `_AUTO_LOSS_CAP`, scaled where a sample's ``outlier_cutoff`` (see
    `~astrobgopt.optimize.fit_spline`) is raised.
    """
    from .optimize import fit_spline, make_design

    held = np.random.default_rng(config.seed).random(len(points)) < _AUTO_HELD_OUT
    train_fraction = np.where(held, 0, usable_fraction)
    weight = np.sqrt(usable_fraction[held])[:, None]
    cap = _AUTO_LOSS_CAP * (1.0 if outlier_cutoff is None
                            else outlier_cutoff[held][:, None] / _choices.BIWEIGHT_CUTOFF)
    noise = model = None
    for n_points in _AUTO_POINTS:
        if np.count_nonzero(train_fraction > 0) < 4 * (n_points + 3):
            return
        trial = dataclasses.replace(config, n_points=n_points, epochs=0)
        design = make_design(points, shape, trial)
        # Each trial starts from the previous one's surface, which only
        # needs polishing: a third of the reweighted solves of a fresh start.
        start = None if model is None else model.evaluate(design.initial_control_points)
        model = fit_spline(points, values, train_fraction, shape, trial, design=design,
                           initial_values=start, outlier_cutoff=outlier_cutoff, progress=False)
        noise = model.noise_sigma if noise is None else noise
        residual = (values[held] - model.evaluate(points[held])) * weight / noise
        yield _Trial(n_points, float(np.mean(np.minimum(residual ** 2, cap ** 2))), design,
                     model.control_values)


def _auto_points_config(points, values, usable_fraction, shape, config, outlier_cutoff=None):
    """
    ``(config, trial)``: ``config`` with the number of control points of
    ``n_points='auto'``, the first of `_AUTO_POINTS` whose doubling does not
    lower the held-out loss (`_held_out_losses`) by more than
    `_AUTO_POINTS_GAIN` (with the fewest, no optimizer steps), and its
    `_Trial` (None where no count was tried).
    """
    from .optimize import compile_optimizer_in_background

    chosen = None
    for trial in _held_out_losses(points, values, usable_fraction, shape, config,
                                  outlier_cutoff):
        if chosen is not None and trial.loss > (1 - _AUTO_POINTS_GAIN) * chosen.loss:
            break
        chosen = trial
        if chosen.n_points > _AUTO_POINTS[0] and config.epochs > 0:
            # More than 16 points: the fit will run the optimizer, whose
            # program compiles meanwhile on a first call.
            compile_optimizer_in_background(config, len(points))
    if chosen is None:
        return config, None
    return (dataclasses.replace(config, n_points=chosen.n_points,
                                epochs=0 if chosen.n_points == _AUTO_POINTS[0] else config.epochs),
            chosen)


def _large_object_config(points, values, usable_fraction, shape, config, outlier_cutoff=None):
    """
    ``(config, design)`` for a frame with a large bright object: the robust
    initialization alone, smoothing at least `_LARGE_OBJECT_SMOOTHING`,
    with 16 control points, or 32 where the sky has more structure than 16
    follow (32 lower the held-out loss of `_held_out_losses` below
    `_LARGE_OBJECT_STRUCTURE` times 16's), and the design of that count
    (None where the blocks were too few to try it). The trial's values are
    not reused: the stiffer fit starts afresh.
    """
    trials = {trial.n_points: trial for trial in itertools.islice(
        _held_out_losses(points, values, usable_fraction, shape, config, outlier_cutoff), 2)}
    structured = len(trials) == 2 and trials[32].loss < _LARGE_OBJECT_STRUCTURE * trials[16].loss
    n_points = 32 if structured else 16
    return (dataclasses.replace(config, n_points=n_points, epochs=0,
                                smoothing=max(config.smoothing,
                                              _LARGE_OBJECT_SMOOTHING[n_points])),
            trials[n_points].design if n_points in trials else None)


@insert_fit_parameter_docs(*_FIT_PARAMETERS)
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
    n_points : int or 'auto', optional
        Number of control points (>= 4). 'auto' (default) starts at 16 and
        doubles them, up to 256, while that improves the fit to blocks held
        out of it by more than 5 % (see `~astrobgopt.SplineOptBackground.fit`):
        a sky with fine structure (ripples, an amplifier glow) gets more
        points, a simple one keeps 16, one with much masked has 32. A frame
        with a large bright object masked gets 16, or 32 where its sky has
        more structure, with a bending penalty (``smoothing``) of at least
        0.3 (16 points) or 1 (32), so that the fit stays stiff beneath the
        object. Those fits, and any of 16 points, are the robust
        initialization alone (no optimizer steps: ``epochs`` is ignored
        there; pass an integer ``n_points`` to optimize them). More points
        follow finer structure, and more of any unmasked nebulosity.
    FIT_PARAMETERS
    downscale_factor : int or 'auto', optional
        Block size of the downscaled image the spline is fitted to. 'auto'
        aims for about 12,000 blocks: a factor of 10 for a 1000 x 1000
        image, 23 for 2000 x 3000 and 45 for 4000 x 6000 (see
        `~astrobgopt.SplineOptBackground.downscale_factor_for`).
    downscale_func : {'median', 'clipped_mean', 'mean'}, optional
        Block statistic. 'clipped_mean' averages the pixels within 3 sigma
        of the block's median: as robust to stars as the median, with 1.2
        times less noise. Over the scene suite it lowered the error on 8 of
        13 scenes, but the extended-object masking decisions then changed
        when a smooth gradient was added on five, so it is not the default
        (see the scenes page of the docs). In a crowded star field, where
        the light of faint stars lifts every block, the 'median' and
        'clipped_mean' blocks are lowered by that bias (see
        `~astrobgopt.downsample.BlockSamples.crowding_corrected`).
    stretch : {None, 'mtf'}, optional
        None fits the linear data. 'mtf' fits the seed tool's delinearized
        image (pedestal, quantile scaling and midtones transfer function) and
        maps the model back with the exact inverse.
    delinearization_quantile : float, optional
        Quantile mapped to 1 by the 'mtf' stretch.
    threshold_min, threshold_max : float, optional
        Pixels below/above these levels are masked; levels are in stretched
        units when a stretch is used, else in data units.
    mask_extended : bool, optional
        Before optimizing, find coherent positive structure (nebulae,
        galaxies, star halos) in the smoothed residual of a first fit, mask
        it and refit, for a few rounds (see
        `astrobgopt.extended.mask_extended_objects`). Keeps large bright
        objects out of the background. Diffuse structure that is brightest
        at the frame's edge (sky light entering the field: a town's glow),
        or round and reaching the edge (a glow about a source in or beyond
        the frame: amplifier glow, a reflection), is kept as background and
        followed; anything else counts as an object. Turn it off when the
        background itself has structure that is neither; see the scenes
        page of the docs.
    progress : bool or None, optional
        Progress bar on stderr: False (default) never, True always, None
        only for fits longer than 2 s.

    Notes
    -----
    Calling the estimator runs four public stages, which can also be run
    one by one (to add samples, or to look at the prepared image):

    1. `~astrobgopt.SplineOptBackground.prepare`: the data as a float
       image, its masks, regions, thresholds and non-finite pixels combined
       into the usable fraction of every pixel, and the stretch of the fit;
    2. `~astrobgopt.SplineOptBackground.sample`: the block samples of the
       prepared image (and any extra samples), in the fit's units;
    3. `~astrobgopt.SplineOptBackground.fit`: extended-object masking of
       the blocks, then the spline fit;
    4. `~astrobgopt.SplineOptBackground.result`: the `SplineOptBackgroundResult`.

    Examples
    --------
    >>> from astrobgopt import SplineOptBackground
    >>> from astrobgopt.datasets import make_light_pollution_sky
    >>> sky = make_light_pollution_sky((300, 450), seed=1)
    >>> bkg = SplineOptBackground(n_points=16, progress=False)(sky.image)
    >>> bkg.background.shape
    (300, 450)
    """

    def __init__(self, *, n_points='auto', order=FitConfig.order,
                 initializer=FitConfig.initializer, loss=FitConfig.loss,
                 downscale_factor=_choices.DEFAULT_DOWNSCALE_FACTOR,
                 downscale_func=_choices.DEFAULT_DOWNSCALE_FUNC, stretch=_choices.DEFAULT_STRETCH,
                 delinearization_quantile=_choices.DEFAULT_DELINEARIZATION_QUANTILE,
                 threshold_min=None, threshold_max=None, alpha=FitConfig.alpha,
                 smoothing=FitConfig.smoothing, epochs=FitConfig.epochs,
                 learning_rate=FitConfig.learning_rate, batch_size=FitConfig.batch_size,
                 patience=FitConfig.patience, validation_fraction=FitConfig.validation_fraction,
                 mask_extended=True, seed=FitConfig.seed, progress=False):
        if isinstance(n_points, str) and n_points != 'auto':
            raise ValueError(f"n_points must be an integer or 'auto'; got {n_points!r}")
        self.n_points = n_points
        self.config = FitConfig(n_points=_MASKING_POINTS if n_points == 'auto' else n_points,
                                order=order, initializer=initializer,
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
        if downscale_func not in _choices.DOWNSCALE_FUNCTIONS:
            raise ValueError(f'downscale_func must be one of {_choices.DOWNSCALE_FUNCTIONS}; '
                             f'got {downscale_func!r}')
        if stretch not in _choices.STRETCHES:
            raise ValueError(f'stretch must be one of {_choices.STRETCHES}; got {stretch!r}')
        for name, level in (('threshold_min', threshold_min), ('threshold_max', threshold_max)):
            _check_threshold(name, level)
        self.downscale_factor = downscale_factor
        self.downscale_func = downscale_func
        self.stretch = stretch
        self.delinearization_quantile = delinearization_quantile
        self.threshold_min = threshold_min
        self.threshold_max = threshold_max
        self.mask_extended = mask_extended
        self.progress = progress

    def __repr__(self):
        return make_repr(self, fallback=self.config)

    def __call__(self, data, *, mask=None, coverage_mask=None, regions=None, wcs=None,
                 fill_value=0.0, channel_axis=None):
        """
        Fit the background of an image: `prepare`, `sample`, `fit`, `result`.

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
            Or, for a `dask.array` ``data`` (an image too large for memory,
            e.g. ``dask.array.from_array`` of a memory-mapped FITS), a
            `~astrobgopt.chunked.ChunkedBackgroundResult` whose products
            are lazy dask arrays (see `astrobgopt.chunked.fit_chunked`;
            2-D data and ``mask`` only).
        """
        if is_chunked(data):
            if any(option is not None for option in (coverage_mask, regions, channel_axis)):
                raise ValueError('a dask array takes mask= only: rasterize regions and '
                                 'coverage into the mask, and fit channels one by one')
            return fit_chunked(self, data, mask=mask)
        prepared = self.prepare(data, mask=mask, coverage_mask=coverage_mask, regions=regions,
                                wcs=wcs, channel_axis=channel_axis)
        samples = self.sample(prepared)
        model = self.fit(samples)
        return self.result(prepared, samples, model, fill_value=fill_value)

    def prepare(self, data, *, mask=None, coverage_mask=None, regions=None, wcs=None,
                channel_axis=None):
        """
        Stage 1: the image as float (H, W, k), the usable fraction of every
        pixel and the fit's stretch.

        The masks, regions and non-finite pixels come first, the stretch (if
        any) is chosen from the pixels they leave, then the thresholds (in
        stretched units with a stretch) mask more (see
        `astrobgopt.prepare.prepare_image`).

        Parameters
        ----------
        data, mask, coverage_mask, regions, wcs, channel_axis
            As for `__call__`.

        Returns
        -------
        prepared : `~astrobgopt.prepare.PreparedImage`
        """
        return prepare_image(data, mask=mask, coverage_mask=coverage_mask, regions=regions,
                             wcs=wcs, channel_axis=channel_axis, stretch=self.stretch,
                             delinearization_quantile=self.delinearization_quantile,
                             threshold_min=self.threshold_min, threshold_max=self.threshold_max)

    def downscale_factor_for(self, shape):
        """
        The block size used for an image of ``shape`` (H, W): the
        ``downscale_factor``, or with 'auto' the factor that gives about
        12,000 blocks.
        """
        if self.downscale_factor != 'auto':
            return self.downscale_factor
        return max(1, math.ceil(math.sqrt(shape[0] * shape[1] / _AUTO_BLOCKS)))

    def sample(self, prepared, *, extra_samples=None, include_blocks=True):
        """
        Stage 2: the samples of the fit, in its (stretched) units.

        Parameters
        ----------
        prepared : `~astrobgopt.prepare.PreparedImage`
            The output of `prepare`.
        extra_samples : tuple of array-like, optional
            ``(points, values, usable_fraction)`` of samples beside the
            blocks, in linear data units: (x, y) positions of shape (m, 2),
            values of shape (m,) or (m, k), and each sample's usable fraction
            relative to a full block of ``downscale_factor_for(shape)**2``
            pixels (a sample averaging that many pixels has 1). See
            `astrobgopt.points.sample_points`.
        include_blocks : bool, optional
            Fit the image's block samples (default) or only
            ``extra_samples``.

        Returns
        -------
        samples : `~astrobgopt.samples.FitSamples`

        Raises
        ------
        ValueError
            If the image has fewer than 2 x 2 blocks, or ``include_blocks``
            is False without ``extra_samples``.
        """
        start = time.perf_counter()
        image, stretch = prepared.image, prepared.stretch
        shape = image.shape[:2]
        factor = self.downscale_factor_for(shape)
        if min(shape) < 2:
            raise ValueError(f'image of shape {shape} is too small to fit a background: it '
                             'needs at least 2 pixels on each side')
        if shape[0] < 2 * factor or shape[1] < 2 * factor:
            largest = min(shape) // 2
            raise ValueError(f'image of shape {shape} is too small for downscale factor '
                             f'{factor}: it needs at least 2 x 2 blocks; use a factor of at '
                             f'most {largest}')
        if not include_blocks and extra_samples is None:
            raise ValueError('include_blocks=False leaves nothing to fit: give extra_samples')
        blocks = block_samples(image, prepared.usable_fraction, factor,
                               func=self.downscale_func).crowding_corrected()
        extra = (None if extra_samples is None
                 else ExtraSamples.from_arrays(*extra_samples, n_channels=image.shape[2]))
        # The stretch is applied here once; every later stage works in its units.
        if stretch is not None:
            usable = blocks.usable_fraction > 0
            values = np.full_like(blocks.values, np.nan)
            values[usable] = stretch.forward(blocks.values[usable])
            blocks = blocks.with_values(values)
            if extra is not None:
                extra = extra._replace(values=stretch.forward(extra.values))
        return FitSamples(blocks=blocks, extra=extra, include_blocks=include_blocks, shape=shape,
                          timings={'downscale': time.perf_counter() - start})

    def fit(self, samples):
        """
        Stage 3: the spline fitted to the samples.

        With ``mask_extended``, extended objects are first removed from the
        block samples (`astrobgopt.extended.mask_extended_objects`), whose
        last round also gives the starting control values. With
        ``n_points='auto'`` the number of control points is then 16 where
        the masking found a large bright object
        (more than a twentieth of the blocks, see
        `~astrobgopt.extended.ExtendedMask`) and no glow, or stopped in a
        crowded field with the most significant blocks masked, else 32 where it
        took more than a tenth of the blocks (as in the masking: more points
        would bend beneath the masked objects), else chosen: a random fifth
        of the blocks is held out, splines of 16,
        32, 64, 128 and 256 points are fitted to the rest (robust
        initialization only) and
        the count doubled while that lowers the held-out loss (the mean
        squared residual in noise units, capped at 3) by more than 5 %. A
        fit of 16 points chosen so is the robust initialization alone, with
        no optimizer steps; where more than 32 are chosen, the masking took
        something and found no sky light, the masking is done again with
        the chosen points (what 32 could not follow may be sky structure).
        The seconds of these stages are added to ``samples.timings``, and
        the blocks' usable fraction as the fit used it is
        ``samples.fitted_fraction`` (the result's ``background_rms`` leaves
        out what the fit left out).

        Parameters
        ----------
        samples : `~astrobgopt.samples.FitSamples`
            The output of `sample`.

        Returns
        -------
        model : `~astrobgopt.optimize.SplineModel`
            In the fit's (stretched) units.

        Raises
        ------
        ValueError
            If there are fewer usable samples than control points plus the
            spline's polynomial tail (checked before any heavy work).

        Notes
        -----
        In a process forked after TensorFlow started (a ``fork`` process
        pool), this stage runs in a helper process started for it (see
        :doc:`/pipeline`): TensorFlow cannot run after a fork.
        """
        # Before any heavy work: the design of too many control points
        # takes minutes and gigabytes before the fit could refuse it.
        n_usable = np.count_nonzero(samples.arrays()[2] > 0)
        n_needed = self.config.n_points + _choices.tail_size(self.config.order)
        if n_usable < n_needed:
            advice = ['use a smaller downscale factor' if samples.include_blocks
                      else 'give more sample points', 'mask less']
            if self.config.n_points > _choices.MIN_CONTROL_POINTS:
                advice.insert(0, 'use fewer control points')
            raise ValueError(f'only {n_usable} usable samples for n_points='
                             f'{self.config.n_points} control points, which need at least '
                             f'{n_needed}: {", ".join(advice[:-1])} or '
                             f'{advice[-1]}')
        # In a process forked after TensorFlow started, in a helper process.
        model, timings, samples.fitted_fraction = _isolation.call(self._fit, samples)
        samples.timings.update(timings)
        return model

    def _mask_extended(self, samples, config):
        """
        The extended-object masking of the block samples with ``config``'s
        control points: the `~astrobgopt.extended.ExtendedMask` and each
        sample's outlier cut-off (raised in sky light).
        """
        extended = mask_extended_objects(samples.blocks, samples.shape, config,
                                         downscale_func=self.downscale_func)
        outlier_cutoff = samples.per_sample(
            sky_light_cutoff(extended.sky_light, samples.blocks.factor, self.downscale_func),
            extended.usable_fraction, extra_value=_choices.BIWEIGHT_CUTOFF)
        return extended, outlier_cutoff

    def _fit(self, samples):
        """
        `fit`'s work, in this process: the model, the samples' timings and
        the blocks' usable fraction with extended objects removed (None
        without extended-object masking).
        """
        from .optimize import fit_spline

        start = time.perf_counter()
        block_fraction = initial_values = outlier_cutoff = extended = None
        if self.mask_extended and samples.include_blocks:
            extended, outlier_cutoff = self._mask_extended(samples, self.config)
            block_fraction, initial_values = extended.usable_fraction, extended.control_values
        samples.timings['extended_mask'] = time.perf_counter() - start

        start = time.perf_counter()
        points, values, usable_fraction = samples.arrays(block_fraction)
        config, design, trial = self.config, None, None
        masked = (0.0 if block_fraction is None else
                  1 - block_fraction.sum() / max(samples.blocks.usable_fraction.sum(), 1e-300))
        # A crowded field's masking leaves a quarter of the blocks, scattered
        # between the objects: the stiff fit of a large object bridges them.
        stiff = extended is not None and (extended.crowded or (
            extended.largest_object > _LARGE_OBJECT and not extended.sky_light.any()))
        if self.n_points == 'auto' and stiff:
            config, design = _large_object_config(points, values, usable_fraction,
                                                  samples.shape, config, outlier_cutoff)
        elif self.n_points == 'auto' and masked <= _AUTO_MAX_MASKED:
            config, trial = _auto_points_config(points, values, usable_fraction,
                                                samples.shape, config, outlier_cutoff)
        if (trial is not None and trial.n_points > self.config.n_points and masked > 0
                and not extended.sky_light.any()):
            # The sky needs more points than the masking had, and no sky
            # light explains what they could not follow: what it masked may
            # be sky structure. Judged again with the chosen points.
            extended, outlier_cutoff = self._mask_extended(samples, config)
            block_fraction, initial_values = extended.usable_fraction, extended.control_values
            points, values, usable_fraction = samples.arrays(block_fraction)
        elif trial is not None:
            # The chosen trial's values only need polishing.
            design, initial_values = trial.design, trial.control_values
        elif config.n_points != self.config.n_points:
            initial_values = None  # the masking's values are of other control points
        model = fit_spline(points, values, usable_fraction, samples.shape, config,
                           design=design, initial_values=initial_values,
                           outlier_cutoff=outlier_cutoff, progress=self.progress)
        samples.timings['fit'] = time.perf_counter() - start
        return model, samples.timings, block_fraction

    def result(self, prepared, samples, model, *, fill_value=0.0):
        """
        Stage 4: the result of a fit.

        Parameters
        ----------
        prepared : `~astrobgopt.prepare.PreparedImage`
            The output of `prepare`.
        samples : `~astrobgopt.samples.FitSamples`
            The output of `sample`.
        model : `~astrobgopt.optimize.SplineModel`
            The output of `fit`.
        fill_value : float, optional
            Output value where the coverage mask is True.

        Returns
        -------
        result : `SplineOptBackgroundResult`
        """
        return SplineOptBackgroundResult(model=model, prepared=prepared, samples=samples,
                                         fill_value=fill_value, estimator=self,
                                         timings=dict(samples.timings))
