"""
Background removal for image files: one frame in-process, many in parallel.

`process_file` reads a FITS, XISF or TIFF image, fits its background with
`~astrobgopt.SplineOptBackground` (or, with user sample points, in the manner
of rmgradient), and writes ``<name>_bgSubtracted.<ext>`` and
``<name>_bgModel.<ext>`` in the input's format and data type, plus an optional
figure and JSON report. `process_batch` does the same for many files on local
worker processes or an existing Dask cluster, one task per frame, and returns
a summary table in which a failed frame is a row, not an exception.

Output policy
-------------
The corrected image stays linear. By default it is
``data - model + pedestal`` where the pedestal is the median of the model in
each channel, so the sky keeps its overall level (integer images stay
non-negative) while its gradients go. ``pedestal='minimum'`` adds back the
model's minimum instead (rmgradient's choice: nothing is ever lifted above the
input), a number adds that constant to every channel (the same level for every
frame of a batch, and a neutral sky). With ``divide=True`` the background is
treated as multiplicative (vignetting, flat-field residue) and the output is
``data / model * median(model)``. Integer outputs are rounded and clipped to
the range of their type, never wrapped; the number of clipped pixels is
reported.

Sample points (rmgradient's mode)
---------------------------------
A points file lists background samples, one ``x y`` pair per line (0-based
pixel column and row; ``#`` starts a comment). Each sample's value is the
Gaussian-weighted mean (``points_sigma`` pixels, window of three sigmas,
masked pixels left out) of the image around it. A pair written with negative
coordinates is a point of an isoline: it lies at ``(|x|, |y|)`` and takes the
value measured at the last sample written with positive coordinates, so a
series of such points extends one sample's level along a contour of the
background (also into areas, such as a nebula or an image border, where
nothing can be measured). The samples join the block samples of the image as
extra constraints, each weighted by the number of pixels it averages relative
to a block, or replace them (``points_only=True``).
"""

import dataclasses
import glob
import json
import math
import os
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

from .io import image_format, read_image, write_image

__all__ = ['process_file', 'process_batch', 'expand_inputs', 'check_input', 'output_paths',
           'read_points', 'sample_points', 'FrameOptions', 'PEDESTALS', 'SUBTRACTED_SUFFIX',
           'MODEL_SUFFIX']

#: Name suffix of the background-corrected image (as the seed tool).
SUBTRACTED_SUFFIX = '_bgSubtracted'
#: Name suffix of the background model (as the seed tool).
MODEL_SUFFIX = '_bgModel'
_PLOT_SUFFIX = '_bgPlot.png'
_REPORT_SUFFIX = '_bgReport.json'
_PREVIEW_SUFFIX = '_bgPreview.png'
_OUTPUT_STEM_SUFFIXES = (SUBTRACTED_SUFFIX, MODEL_SUFFIX)
#: Named pedestal levels added back after subtraction (or a number).
PEDESTALS = ('median', 'minimum')
# rmgradient's default Gaussian sigma for sample points, in pixels.
_DEFAULT_POINTS_SIGMA = 8.0
# The Gaussian sampling window reaches this many sigmas (as rmgradient's kernel).
_POINTS_WINDOW_SIGMAS = 3.0
# Longest side of an image as drawn in figures: plenty for a background, and
# it keeps figures of 60-megapixel frames small and quick.
_DISPLAY_PIXELS = 1200
_MAD_TO_SIGMA = 1.482602218505602
# Columns of the batch summary table.
_SUMMARY_COLUMNS = ('file', 'status', 'seconds', 'residual_rms', 'message')


@dataclasses.dataclass(frozen=True)
class FrameOptions:
    """
    How to process each frame (validated on creation; picklable for workers).

    Parameters
    ----------
    estimator_options : dict, optional
        Keyword arguments of `~astrobgopt.SplineOptBackground`.
    mask : str or path-like, optional
        Mask image (any supported format, the image's shape): integer or
        boolean values, nonzero = masked; floating values in [0, 1] are soft
        weights, 1 = fully masked. Colour masks mask a pixel where any
        channel does.
    regions : str or path-like, optional
        ds9 or CRTF region file of areas to leave out of the fit (sky regions
        need a FITS WCS).
    points : str or path-like, optional
        File of background sample points (see the module notes).
    points_only : bool, optional
        Fit the sample points alone (rmgradient's mode) rather than adding
        them to the image's block samples. Unless ``n_points`` is given,
        half as many control points as samples are used (4 to 32).
    points_sigma : float, optional
        Gaussian sigma, in pixels, of the sampling around each point.
    hdu : int or str, optional
        FITS HDU to read (default: the first with an image).
    divide : bool, optional
        Divide by the model (multiplicative background) instead of
        subtracting it.
    pedestal : {'median', 'minimum'} or float, optional
        Level added back after subtraction (see the module notes); not used
        with ``divide``.
    compress : bool, optional
        Compress outputs losslessly (XISF lz4hc + byte shuffle, FITS tile
        compression, TIFF zlib). ``.fz`` inputs always give compressed FITS.
    overwrite : bool, optional
        Replace existing outputs. An input file is never replaced.
    plot, report : str, optional
        Where to write a figure (PNG) and a JSON report: a path, a template
        in which ``{name}`` stands for the input's name without extension,
        or a directory (an existing one, or a path ending with ``/``) that
        receives ``<name>_bgPlot.png`` / ``<name>_bgReport.json``. With
        several inputs, use ``{name}`` or a directory.
    preview : bool, optional
        Do not fit: write a figure of the stretched image, the mask and the
        initial control points (to ``plot``, by default
        ``<output_dir>/<name>_bgPreview.png``), to tune the stretch and
        masking as with the seed tool's ``--preview``.
    """

    estimator_options: dict = dataclasses.field(default_factory=dict)
    mask: str | None = None
    regions: str | None = None
    points: str | None = None
    points_only: bool = False
    points_sigma: float = _DEFAULT_POINTS_SIGMA
    hdu: int | str | None = None
    divide: bool = False
    pedestal: str | float = 'median'
    compress: bool = False
    overwrite: bool = False
    plot: str | None = None
    report: str | None = None
    preview: bool = False

    def __post_init__(self):
        if not isinstance(self.estimator_options, dict):
            raise TypeError(f'estimator_options must be a dict of SplineOptBackground '
                            f'options; got {type(self.estimator_options).__name__}')
        # Build the estimator once so that bad options fail before any work.
        self.estimator()
        for name in ('mask', 'regions', 'points'):
            path = getattr(self, name)
            if path is not None:
                path = os.fspath(path)
                object.__setattr__(self, name, path)
                if not os.path.isfile(path):
                    raise FileNotFoundError(f'{name} file {path!r} does not exist')
        if self.points_only and self.points is None:
            raise ValueError('points_only needs a points file (points=...)')
        if not (math.isfinite(self.points_sigma) and self.points_sigma > 0):
            raise ValueError(f'points_sigma must be a positive number of pixels; '
                             f'got {self.points_sigma!r}')
        if isinstance(self.pedestal, str):
            if self.pedestal not in PEDESTALS:
                raise ValueError(f'pedestal must be one of {PEDESTALS} or a number; '
                                 f'got {self.pedestal!r}')
        elif isinstance(self.pedestal, bool) or not isinstance(self.pedestal, (int, float)):
            raise TypeError(f'pedestal must be one of {PEDESTALS} or a number; '
                            f'got {self.pedestal!r}')

    def estimator(self):
        """The configured `~astrobgopt.SplineOptBackground`."""
        from .background import SplineOptBackground

        return SplineOptBackground(**self.estimator_options)


def expand_inputs(inputs):
    """
    Input files from paths and glob patterns.

    Patterns (with ``*``, ``?`` or ``[``, and not the name of an existing
    file) are expanded here, in sorted order,
    so they work where the shell does not expand them (Windows, quoted
    arguments); files a pattern matches whose names end with
    ``_bgSubtracted`` or ``_bgModel`` are skipped, as outputs of an earlier
    run. Plain paths are kept as given.

    Parameters
    ----------
    inputs : str, path-like or iterable of them

    Returns
    -------
    paths : list of `~pathlib.Path`
        In order, without duplicates.

    Raises
    ------
    FileNotFoundError
        If a pattern matches nothing.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths = []
    for item in inputs:
        text = os.path.expanduser(os.fspath(item))
        # An existing file is taken as named, even if its name has '[' in it.
        if not os.path.exists(text) and any(char in text for char in '*?['):
            matches = [Path(match) for match in sorted(glob.glob(text, recursive=True))
                       if os.path.isfile(match)]
            if not matches:
                raise FileNotFoundError(f'no file matches {text!r}')
            paths.extend(match for match in matches
                         if not _split_name(match)[0].endswith(_OUTPUT_STEM_SUFFIXES))
        else:
            paths.append(Path(text))
    return list(dict.fromkeys(paths))


def _split_name(path):
    """(name without the format's extension, extension), e.g. ('m42', '.fits.gz')."""
    path = Path(path)
    suffixes = path.suffixes
    # Compressed FITS names carry two extensions; both belong to the format.
    count = 2 if len(suffixes) > 1 and path.suffix.lower() in ('.gz', '.fz') else 1
    extension = ''.join(suffixes[-count:]) if suffixes else ''
    return path.name[:len(path.name) - len(extension)], extension


def check_input(path):
    """
    Fail early, with the file's name, on a missing or unsupported input.

    Parameters
    ----------
    path : `~pathlib.Path`
        An input image.

    Raises
    ------
    ValueError
        The extension is not a supported format.
    FileNotFoundError
        The file does not exist (or is not a file).
    """
    if image_format(path) is None:
        raise ValueError(f'{str(path)!r} is not a supported image (FITS: .fits .fit .fts, '
                         'optionally .gz/.fz; XISF: .xisf; TIFF: .tif .tiff)')
    if not path.is_file():
        raise FileNotFoundError(f'input file {str(path)!r} does not exist'
                                if not path.exists() else f'{str(path)!r} is not a file')


def _expand_template(template, stem, default_suffix):
    """The file a --plot/--report value names for the input called ``stem``."""
    text = os.fspath(template)
    if '{name}' in text:
        return Path(text.replace('{name}', stem))
    if text.endswith(('/', os.sep)) or os.path.isdir(text):
        return Path(text) / f'{stem}{default_suffix}'
    return Path(text)


def output_paths(path, output_dir, *, options=None):
    """
    The files processing ``path`` writes.

    Parameters
    ----------
    path : str or path-like
        Input image.
    output_dir : str or path-like
        Output directory.
    options : `~astrobgopt.batch.FrameOptions`, optional
        For the figure and report paths, and for preview mode.

    Returns
    -------
    paths : dict of str to `~pathlib.Path`
        Keys among ``'subtracted'``, ``'model'`` (not in preview mode),
        ``'plot'`` and ``'report'``.
    """
    options = FrameOptions() if options is None else options
    stem, extension = _split_name(path)
    output_dir = Path(output_dir)
    paths = {}
    if options.preview:
        paths['plot'] = (_expand_template(options.plot, stem, _PREVIEW_SUFFIX)
                         if options.plot is not None else output_dir / f'{stem}{_PREVIEW_SUFFIX}')
    else:
        paths['subtracted'] = output_dir / f'{stem}{SUBTRACTED_SUFFIX}{extension}'
        paths['model'] = output_dir / f'{stem}{MODEL_SUFFIX}{extension}'
        if options.plot is not None:
            paths['plot'] = _expand_template(options.plot, stem, _PLOT_SUFFIX)
    if options.report is not None:
        paths['report'] = _expand_template(options.report, stem, _REPORT_SUFFIX)
    return paths


def _check_outputs(plan, overwrite):
    """
    Refuse outputs that would replace an input, collide, or exist already.

    ``plan`` maps each input path to its `output_paths`.
    """
    inputs = {path.resolve(): path for path in plan}
    claimed = {}
    for source, targets in plan.items():
        for target in targets.values():
            resolved = target.resolve()
            if resolved in inputs:
                raise ValueError(f'refusing to write {str(target)!r}: it is the input file '
                                 f'{str(inputs[resolved])!r} (inputs are never overwritten, '
                                 'even with --overwrite)')
            if resolved in claimed:
                raise ValueError(f'{str(claimed[resolved])!r} and {str(source)!r} would both '
                                 f'write {str(target)!r}; process them into different output '
                                 'directories (or use {name} in --plot/--report)')
            claimed[resolved] = source
            if target.exists() and not overwrite:
                raise FileExistsError(f'{str(target)!r} already exists; use --overwrite '
                                      '(overwrite=True) to replace it')


def read_points(path):
    """
    Read background sample points, rmgradient style.

    Parameters
    ----------
    path : str or path-like
        Text file of ``x y`` pairs (0-based pixel column and row), one per
        line, separated by blanks or a comma; ``#`` starts a comment. A pair
        with both coordinates negative is an isoline point at ``(|x|, |y|)``
        that shares the value of the last positive pair before it.

    Returns
    -------
    points : `~numpy.ndarray`, shape (m, 2)
        (x, y) positions.
    source : `~numpy.ndarray` of int, shape (m,)
        For each point, the index of the point whose measured value it takes:
        itself for a sample, its anchor for an isoline point.

    Raises
    ------
    ValueError
        On a line that is not a pair of numbers, a pair with one negative
        coordinate, an isoline point with no sample before it, or a file
        without points.
    """
    points, source = [], []
    anchor = None
    text = Path(path).read_text()
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split('#', 1)[0].replace(',', ' ').split()
        if not fields:
            continue
        where = f'{os.fspath(path)}, line {number}'
        try:
            x, y = (float(field) for field in fields)
        except ValueError:
            raise ValueError(f'{where}: expected two numbers "x y"; got {line.strip()!r}') \
                from None
        # The sign is read from the text so that "-0" marks an isoline too.
        negative = [field.startswith('-') for field in fields]
        if negative[0] != negative[1]:
            raise ValueError(f'{where}: give both coordinates negative (an isoline point) or '
                             f'neither; got {line.strip()!r}')
        if negative[0]:
            if anchor is None:
                raise ValueError(f'{where}: an isoline point (negative coordinates) needs a '
                                 'sample point with positive coordinates before it')
            source.append(anchor)
        else:
            anchor = len(points)
            source.append(anchor)
        points.append((abs(x), abs(y)))
    if not points:
        raise ValueError(f'{os.fspath(path)} holds no points')
    return np.array(points, dtype=np.float64), np.array(source, dtype=int)


def sample_points(image, weights, points, *, sigma=_DEFAULT_POINTS_SIGMA):
    """
    Gaussian-weighted image values around points.

    Parameters
    ----------
    image : `~numpy.ndarray`, shape (H, W, k)
        The image, channels last.
    weights : `~numpy.ndarray`, shape (H, W)
        Pixel weights in [0, 1] (0 = masked, left out).
    points : `~numpy.ndarray`, shape (m, 2)
        (x, y) positions inside the image.
    sigma : float, optional
        Gaussian sigma in pixels; the window reaches three sigmas.

    Returns
    -------
    values : `~numpy.ndarray`, shape (m, k)
        Weighted means.
    n_effective : `~numpy.ndarray`, shape (m,)
        Effective number of pixels averaged, ``(sum w)**2 / sum w**2``.

    Raises
    ------
    ValueError
        If a point lies outside the image or only on masked pixels.
    """
    height, width = image.shape[:2]
    radius = int(math.ceil(_POINTS_WINDOW_SIGMAS * sigma))
    values = np.empty((len(points), image.shape[2]))
    n_effective = np.empty(len(points))
    for index, (x, y) in enumerate(points):
        if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
            raise ValueError(f'sample point ({x:g}, {y:g}) lies outside the image '
                             f'({width} x {height} pixels; x is the column, y the row, from 0)')
        cx, cy = int(round(x)), int(round(y))
        rows = slice(max(0, cy - radius), min(height, cy + radius + 1))
        cols = slice(max(0, cx - radius), min(width, cx + radius + 1))
        yy, xx = np.mgrid[rows, cols]
        kernel = np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / sigma ** 2) * weights[rows, cols]
        total = kernel.sum()
        if total <= 0:
            raise ValueError(f'sample point ({x:g}, {y:g}) has only masked pixels around it')
        window = np.where(kernel[..., None] > 0, image[rows, cols], 0.0)
        values[index] = np.tensordot(kernel, window, axes=2) / total
        n_effective[index] = total ** 2 / np.sum(kernel ** 2)
    return values, n_effective


def _channels_last(data, format_name):
    """An image as (H, W, k): FITS stores channels first, XISF and TIFF last."""
    if data.ndim == 2:
        return data[..., None]
    return np.moveaxis(data, 0, -1) if format_name == 'fits' else data


def _file_layout(image, format_name, ndim):
    """Undo `_channels_last` for an image with ``ndim`` dimensions in the file."""
    if ndim == 2:
        return image[..., 0]
    return np.moveaxis(image, -1, 0) if format_name == 'fits' else image


def _read_mask(path, shape):
    """A mask file as float weights-to-remove in [0, 1], shape (H, W)."""
    mask_image = read_image(path)
    mask = _channels_last(mask_image.data, mask_image.format)
    if mask.shape[:2] != tuple(shape):
        raise ValueError(f'mask {os.fspath(path)!r} has shape {mask.shape[:2]}, but the image '
                         f'has shape {tuple(shape)}')
    if mask.dtype.kind in 'biu':
        return np.any(mask != 0, axis=-1).astype(np.float32)
    mask = mask.max(axis=-1).astype(np.float32)
    if not (np.all(np.isfinite(mask)) and mask.min() >= 0 and mask.max() <= 1):
        raise ValueError(f'mask {os.fspath(path)!r} has floating values outside [0, 1]; '
                         'use 0 (kept) to 1 (masked), or an integer mask (nonzero = masked)')
    return mask


def _estimator_inputs(image, options, wcs):
    """Keyword arguments of the estimator for a float (H, W, k) frame: its masks and WCS."""
    mask = None if options.mask is None else _read_mask(options.mask, image.shape[:2])
    return {'mask': mask, 'regions': options.regions, 'wcs': wcs, 'channel_axis': -1}


def _estimator_for(options, n_samples=None):
    """
    The estimator of a frame. In points-only mode without an explicit
    ``n_points``, it has half as many control points as samples (4 to 32):
    fewer control points than samples keep the fit a smooth regression
    rather than an interpolation of the noise.
    """
    from .background import SplineOptBackground

    if options.points_only and 'n_points' not in options.estimator_options:
        return SplineOptBackground(**options.estimator_options,
                                   n_points=int(np.clip(n_samples // 2, 4, 32)))
    return options.estimator()


def _fit_with_points(image, options, wcs):
    """Fit the spline to user sample points (and the block samples), rmgradient style."""
    from .background import SplineOptBackgroundResult, auto_downscale_factor
    from .downsample import block_reduce_masked
    from .optimize import fit_spline

    timings = {}
    start = time.perf_counter()
    points, source = read_points(options.points)
    estimator = _estimator_for(options, len(points))
    shape = image.shape[:2]
    prepared = estimator._prepare(image, **_estimator_inputs(image, options, wcs))
    image, weights, stretch = prepared.image, prepared.weights, prepared.stretch
    is_sample = source == np.arange(len(source))
    values, n_effective = sample_points(image, weights, points[is_sample],
                                        sigma=options.points_sigma)
    # Isoline points repeat their anchor's value and weight.
    anchor_row = np.cumsum(is_sample) - 1
    values, n_effective = values[anchor_row], n_effective[anchor_row]

    factor = (auto_downscale_factor(shape) if estimator.downscale_factor == 'auto'
              else estimator.downscale_factor)
    samples = block_reduce_masked(image, weights, factor, func=estimator.downscale_func)
    # A sample point counts as many blocks as it averages pixels.
    sample_weights = n_effective / factor ** 2
    if not options.points_only:
        block_points, block_values, block_weights = samples.points()
        points = np.concatenate([points, block_points])
        values = np.concatenate([values, block_values])
        sample_weights = np.concatenate([sample_weights, block_weights])
    if stretch is not None:
        values = stretch.forward(values)
    timings['downscale'] = time.perf_counter() - start

    start = time.perf_counter()
    model = fit_spline(points, values, sample_weights, shape, estimator.config,
                       progress=estimator.progress)
    timings['fit'] = time.perf_counter() - start
    return SplineOptBackgroundResult(
        model=model, data=image, usable=weights > 0, samples=samples, stretch=stretch,
        unit=None, dtype=prepared.dtype, coverage=None, fill_value=0.0, channel_axis=-1,
        estimator=estimator, timings=timings)


def _fit(image, options, wcs):
    """The background fit of a float (H, W, k) image under the frame options."""
    if options.points is not None:
        return _fit_with_points(image, options, wcs)
    return options.estimator()(image, **_estimator_inputs(image, options, wcs))


def _correct(data, model, result, options):
    """
    The background-corrected image and the level it keeps, per channel.

    Subtraction adds the pedestal back; division rescales to the model's
    median, so either way the sky keeps a sensible level.
    """
    if options.divide:
        if np.any(model <= 0):
            raise ValueError(f'cannot divide by a background model that falls to '
                             f'{float(model.min()):.4g}; subtract it instead, or mask what '
                             'drags it down')
        level = np.asarray(result.background_median, dtype=data.dtype)
        return data / model * level, level
    if options.pedestal == 'median':
        level = result.background_median
    elif options.pedestal == 'minimum':
        level = model.min(axis=(0, 1))
    else:
        level = np.full(data.shape[-1], float(options.pedestal))
    level = np.asarray(level, dtype=data.dtype)
    return data - model + level, level


def _residual_statistics(corrected, result):
    """Level, noise and large-scale flatness of the corrected image, per channel."""
    from .downsample import block_reduce_masked

    finite = np.all(np.isfinite(corrected), axis=-1)
    values = corrected[finite]
    median = np.median(values, axis=0)
    noise = _MAD_TO_SIGMA * np.median(np.abs(values - median), axis=0)
    blocks = block_reduce_masked(np.where(finite[..., None], corrected, 0),
                                 finite.astype(np.float32), result.downscale_factor).values
    blocks = blocks.reshape(-1, blocks.shape[-1])
    blocks = blocks[np.all(np.isfinite(blocks), axis=1)]
    # Robust scatter of the block medians: what is left of the gradient,
    # little affected by the minority of blocks that hold a nebula.
    large_scale = _MAD_TO_SIGMA * np.median(np.abs(blocks - np.median(blocks, axis=0)), axis=0)
    return {'median': median, 'noise': noise, 'large_scale_rms': large_scale,
            'background_rms': np.atleast_1d(result.background_rms_median)}


def _clipped_count(values, dtype):
    """Pixels an integer dtype cannot hold (they are clipped on writing)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in 'iu':
        return 0
    info = np.iinfo(dtype)
    with np.errstate(invalid='ignore'):
        return int(np.count_nonzero((values < info.min - 0.5) | (values > info.max + 0.5)))


def _process(path, output_dir, options):
    """Process one frame: the body of `process_file`."""
    start = time.perf_counter()
    check_input(path)
    targets = output_paths(path, output_dir, options=options)
    _check_outputs({path: targets}, options.overwrite)
    image = read_image(path, hdu=options.hdu)
    data = _channels_last(image.data, image.format)
    if data.dtype.kind not in 'iuf':
        raise ValueError(f'{str(path)!r} holds {data.dtype} pixels; expected integers or floats')
    work = data.astype(np.promote_types(data.dtype, np.float32), copy=False)
    timings = {'read': time.perf_counter() - start}
    for target in targets.values():
        target.parent.mkdir(parents=True, exist_ok=True)
    report = {'input': str(path), 'format': image.format, 'shape': list(image.data.shape),
              'dtype': str(image.data.dtype), 'outputs': {key: str(value) for key, value in
                                                          targets.items()},
              'options': dataclasses.asdict(options)}
    if options.preview:
        report.update(_preview(work, image, targets['plot'], options))
    else:
        report.update(_remove_background(work, image, targets, options, timings))
    timings['total'] = time.perf_counter() - start
    report['timings'] = timings
    if 'report' in targets:
        with open(targets['report'], 'w') as stream:
            json.dump(_jsonable(report), stream, indent=1)
    return _jsonable(report)


def _remove_background(work, image, targets, options, timings):
    """Fit, correct and write one frame; the report entries of the fit."""
    start = time.perf_counter()
    result = _fit(work, options, image.wcs)
    model = result.background
    corrected, level = _correct(work, model, result, options)
    timings['fit'] = time.perf_counter() - start

    start = time.perf_counter()
    meta = result.meta
    config = meta['config']
    provenance = {'input': image.path.name, 'mode': 'divide' if options.divide else 'subtract',
                  'level': ' '.join(f'{value:.6g}' for value in level),
                  'n_points': config['n_points'], 'order': config['order'],
                  'loss': config['loss'],
                  'stretch': options.estimator_options.get('stretch') or 'none',
                  'downscale': result.downscale_factor, 'steps': meta['n_steps']}
    if options.points is not None:
        provenance['points'] = Path(options.points).name
    operation = ('divided by the background model and scaled by its median'
                 if options.divide else f'background subtracted, pedestal {options.pedestal}')
    dtype = image.data.dtype
    compress = options.compress or image.path.name.lower().endswith('.fz')
    for key, pixels, history in (('subtracted', corrected, f'astrobgopt: {operation}'),
                                 ('model', model, 'astrobgopt: background model')):
        write_image(targets[key], _file_layout(pixels, image.format, image.data.ndim),
                    like=image, overwrite=options.overwrite, provenance=provenance,
                    history=history, compress=compress, dtype=dtype)
    clipped = _clipped_count(corrected, dtype)
    if clipped:
        warnings.warn(f'{image.path.name}: {clipped} pixels of the corrected image lay outside '
                      f'the {dtype} range and were clipped (see --pedestal)', stacklevel=2)
    if 'plot' in targets:
        _plot_result(targets['plot'], work, model, corrected, result, options,
                     title=image.path.name, origin=_origin(image))
    timings['write'] = time.perf_counter() - start

    history = np.asarray(result.loss_history)
    control = result.control_points
    return {'mode': provenance['mode'], 'level': level, 'clipped_pixels': clipped,
            'fit': meta, 'loss_history': {'train': history[:, 0], 'held_out': history[:, 1]},
            'control_points': {'x': np.asarray(control['x']), 'y': np.asarray(control['y']),
                               'value': np.asarray(control['value'])},
            'residual': _residual_statistics(corrected, result)}


def _preview(work, image, plot_path, options):
    """Draw the stretched image, the mask and the initial control points; no fit."""
    from .optimize import initial_control_points

    finite = np.all(np.isfinite(work), axis=-1)
    user_points = read_points(options.points)[0] if options.points is not None else None
    estimator = _estimator_for(options, None if user_points is None else len(user_points))
    prepared = estimator._prepare(work, **_estimator_inputs(work, options, image.wcs))
    weights, stretch = prepared.weights, prepared.stretch
    config = estimator.config
    shape = work.shape[:2]
    control = initial_control_points(shape, config)
    display = stretch if stretch is not None else _display_stretch(work, finite, estimator)

    origin = _origin(image)
    figure, axes, show = _image_figure(shape, 2, origin=origin)
    figure.suptitle(f'{image.path.name}: preview ({display})')
    show(axes[0], work, display, 'stretched image and initial control points')
    axes[0].scatter(control[:, 0], control[:, 1], marker='+', color='red')
    if user_points is not None:
        axes[0].scatter(user_points[:, 0], user_points[:, 1], marker='o', facecolors='none',
                        edgecolors='cyan')
    masked_fraction = float(1 - weights.mean())
    show(axes[1], work, display, f'masked (red): {100 * masked_fraction:.1f}% of the weight')
    step = _display_step(shape)
    overlay = np.zeros(weights[::step, ::step].shape + (4,), dtype=np.float32)
    overlay[..., 0] = 1
    overlay[..., 3] = 0.6 * (1 - weights[::step, ::step])
    axes[1].imshow(overlay, **_imshow_geometry(shape, origin))
    _save(figure, plot_path)
    return {'mode': 'preview', 'stretch': repr(display), 'masked_fraction': masked_fraction,
            'initial_control_points': control}


def _origin(image):
    """Where figures put row 0: at the bottom for FITS (astronomers' habit), else on top."""
    return 'lower' if image.format == 'fits' else 'upper'


def _display_stretch(image, usable, estimator):
    """A delinearizing stretch to show a linear image (the fit's own if it has one)."""
    from .stretch import Stretch

    return Stretch.from_data(image, usable, quantile=estimator.delinearization_quantile)


def _display_step(shape):
    """Stride that brings the longest side down to about `_DISPLAY_PIXELS`."""
    return max(1, math.ceil(max(shape) / _DISPLAY_PIXELS))


def _imshow_geometry(shape, origin):
    """imshow arguments that put pixel (x, y) at data coordinates (x, y)."""
    height, width = shape
    vertical = (-0.5, height - 0.5) if origin == 'lower' else (height - 0.5, -0.5)
    return {'origin': origin, 'extent': (-0.5, width - 0.5) + vertical,
            'interpolation': 'nearest'}


def _image_figure(shape, n_panels, *, origin):
    """
    A row of image panels sized to the image's aspect ratio.

    Returns the figure, its axes and ``show(ax, image, stretch, title)``,
    which draws a (H, W, k) image stretched for display (RGB for 3
    channels, the mean of the channels in grey otherwise).
    """
    from matplotlib.figure import Figure

    height, width = shape
    panel_width = 5.0
    figure = Figure(figsize=(panel_width * n_panels,
                             panel_width * height / width + 0.8), layout='constrained')
    axes = figure.subplots(1, n_panels, squeeze=False)[0]
    step = _display_step(shape)
    geometry = _imshow_geometry(shape, origin)

    def show(ax, image, stretch, title):
        view = image[::step, ::step]
        if view.shape[-1] != 3:
            view = view.mean(axis=-1)
        shown = np.clip(stretch.forward(view), 0, 1)
        ax.imshow(np.nan_to_num(shown), cmap='gray', vmin=0, vmax=1, **geometry)
        ax.set_title(title, fontsize='medium')
        ax.set_xticks([])
        ax.set_yticks([])

    return figure, axes, show


def _save(figure, path):
    figure.savefig(path, dpi=100)


def _plot_result(path, work, model, corrected, result, options, *, title, origin):
    """Input, model (with the control points) and corrected image, stretched."""
    finite = np.all(np.isfinite(work), axis=-1)
    estimator = options.estimator()
    input_stretch = _display_stretch(work, finite, estimator)
    output_stretch = _display_stretch(corrected, finite, estimator)
    figure, axes, show = _image_figure(work.shape[:2], 3, origin=origin)
    meta = result.meta
    figure.suptitle(f'{title}: {meta["n_control_points"]} control points, '
                    f'{meta["n_steps"]} steps ({meta["stop_reason"]})')
    show(axes[0], work, input_stretch, 'input')
    show(axes[1], model, input_stretch, 'background model (stretched as the input)')
    result.plot_meshes(ax=axes[1], show_initial=True)
    if options.points is not None:
        user_points = read_points(options.points)[0]
        axes[1].scatter(user_points[:, 0], user_points[:, 1], marker='o', facecolors='none',
                        edgecolors='cyan')
    # The markers must not widen the panel beyond the image.
    geometry = _imshow_geometry(work.shape[:2], origin)['extent']
    axes[1].set_xlim(*geometry[:2])
    axes[1].set_ylim(*geometry[2:])
    show(axes[2], corrected, output_stretch,
         'divided by the model' if options.divide else 'background subtracted')
    _save(figure, path)


def _jsonable(value):
    """Plain JSON types (non-finite numbers become null)."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def process_file(path, output_dir='.', **options):
    """
    Remove the background of one image file.

    Reads ``path`` (FITS, XISF or TIFF), fits its background and writes
    ``<name>_bgSubtracted.<ext>`` and ``<name>_bgModel.<ext>`` to
    ``output_dir`` in the input's format and data type: the FITS header,
    WCS and XISF properties are kept, and provenance (astrobgopt version,
    date, parameters) is added. Colour images are fitted with control points
    shared by the channels.

    Parameters
    ----------
    path : str or path-like
        The image.
    output_dir : str or path-like, optional
        Where the outputs go (created if missing).
    **options
        Keyword options, see `~astrobgopt.batch.FrameOptions`: ``estimator_options``,
        ``mask``, ``regions``, ``points``, ``points_only``,
        ``points_sigma``, ``hdu``, ``divide``, ``pedestal``, ``compress``,
        ``overwrite``, ``plot``, ``report``, ``preview``.

    Returns
    -------
    report : dict
        What the ``report`` JSON file holds: input, outputs, options, the
        fit's provenance (``fit``), loss history, control points, residual
        statistics (per channel: ``median``, ``noise``, ``large_scale_rms``,
        ``background_rms``), the level kept, clipped pixels and timings.

    Raises
    ------
    FileNotFoundError, FileExistsError, ValueError
        Missing or unsupported input, an output that exists (without
        ``overwrite``) or would replace the input, or a failed fit.

    Examples
    --------
    >>> from astrobgopt.batch import process_file
    >>> report = process_file('m42.fits', 'out', estimator_options={'n_points': 64},
    ...                       plot='out/{name}.png')  # doctest: +SKIP
    """
    return _process(Path(path), Path(output_dir), FrameOptions(**options))


def error_message(exc):
    """One line describing a failure (the exception type is named when unexpected)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    if not isinstance(exc, (OSError, ValueError)) and text:
        line = f'{type(exc).__name__}: {line}'
    return line


def _run_frame(path, output_dir, options):
    """Process a frame, never raising: its row of the batch summary."""
    start = time.perf_counter()
    row = {'file': path, 'status': 'ok', 'residual_rms': math.nan, 'message': '',
           'outputs': {}, 'warnings': [], 'traceback': ''}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            report = _process(Path(path), Path(output_dir), options)
        except Exception as exc:
            row.update(status='failed', message=error_message(exc),
                       traceback=traceback.format_exc())
        else:
            row['outputs'] = report['outputs']
            row['message'] = ', '.join(Path(target).name for target in
                                       report['outputs'].values())
            if 'residual' in report:
                row['residual_rms'] = float(np.mean(report['residual']['background_rms']))
    row['warnings'] = list(dict.fromkeys(str(warning.message) for warning in caught))
    row['seconds'] = time.perf_counter() - start
    return row


def _absolute(path):
    """An absolute path (None stays None; a trailing separator is kept)."""
    if path is None:
        return None
    text = os.fspath(path)
    absolute = os.path.abspath(text)
    return absolute + os.sep if text.endswith(('/', os.sep)) else absolute


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _worker_environment(n_workers):
    """
    Environment of local worker processes. TensorFlow would otherwise start
    as many threads per process as there are cores, so that N workers fight
    over the CPUs, and the first process would reserve nearly all of a GPU's
    memory, leaving none to the others.
    """
    threads = max(1, _cpu_count() // n_workers)
    return {'TF_NUM_INTRAOP_THREADS': str(threads), 'TF_NUM_INTEROP_THREADS': '1',
            'TF_FORCE_GPU_ALLOW_GROWTH': 'true',
            'TF_CPP_MIN_LOG_LEVEL': os.environ.get('TF_CPP_MIN_LOG_LEVEL', '2')}


def _run_on_dask(jobs, output_dir, options, *, workers, scheduler, client, on_result):
    """Run `_run_frame` on every job, one Dask task each; rows in job order."""
    import contextlib
    import logging

    from dask.distributed import Client, LocalCluster, as_completed

    from ._startup import load_numerical_core

    with contextlib.ExitStack() as stack:
        if client is None and scheduler is not None:
            client = stack.enter_context(Client(scheduler))
        elif client is None:
            n_workers = min(workers or _cpu_count(), len(jobs))
            cluster = stack.enter_context(LocalCluster(
                n_workers=n_workers, processes=True, threads_per_worker=1,
                dashboard_address=None, silence_logs=logging.ERROR,
                env=_worker_environment(n_workers)))
            client = stack.enter_context(Client(cluster))
            # Our workers share this terminal's stderr: keep TensorFlow's
            # start-up log off it, as the command line does.
            client.run(load_numerical_core)
        # Absolute paths: remote workers need not share our working directory.
        futures = {client.submit(_run_frame, str(path.resolve()), str(output_dir.resolve()),
                                 options, pure=False): path for path in jobs}
        rows = {}
        for future in as_completed(futures):
            path = futures[future]
            try:
                row = future.result()
            except Exception as exc:  # the worker itself died (memory, crash)
                row = {'status': 'failed', 'seconds': math.nan, 'residual_rms': math.nan,
                       'message': error_message(exc), 'outputs': {}, 'warnings': [],
                       'traceback': ''}
            row['file'] = str(path)
            rows[path] = row
            if on_result is not None:
                on_result(row)
    return [rows[path] for path in jobs]


def process_batch(inputs, output_dir='.', *, workers=None, scheduler=None, client=None,
                  on_result=None, **options):
    """
    Remove the background of many image files in parallel.

    Every frame is one task: on local worker processes (a Dask
    ``LocalCluster`` with one thread per process), or on an existing Dask
    cluster. A frame that fails is reported in the summary and the others
    go on. One input, or ``workers=1``, runs in this process with no
    cluster.

    Parameters
    ----------
    inputs : str, path-like or iterable of them
        Files and glob patterns (see `~astrobgopt.batch.expand_inputs`).
    output_dir : str or path-like, optional
        Where the outputs go (created if missing). Workers on another
        machine must see the inputs and this directory at the same paths.
    workers : int, optional
        Local worker processes (default: one per core, at most one per
        frame).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); its
        workers need astrobgopt installed.
    client : `dask.distributed.Client`, optional
        A client to submit to (a notebook's own cluster); it is not closed.
    on_result : callable, optional
        Called with each frame's row (a dict) as soon as it is done.
    **options
        Keyword options of each frame, see `~astrobgopt.batch.FrameOptions` and
        `process_file`. Progress bars are off on workers.

    Returns
    -------
    summary : `~astropy.table.Table`
        One row per input, in input order: ``file``, ``status`` ('ok' or
        'failed'), ``seconds``, ``residual_rms`` (robust RMS of data - model,
        mean over channels, data units) and ``message`` (the outputs, or the
        error). ``meta['tracebacks']`` and ``meta['warnings']`` hold those
        of each file that had any.

    Raises
    ------
    FileNotFoundError, FileExistsError, ValueError
        Before any frame is processed: a missing or unsupported input, a
        pattern that matches nothing, or outputs that exist, collide or
        would replace an input.

    Examples
    --------
    >>> from astrobgopt.batch import process_batch
    >>> summary = process_batch('lights/*.fits', 'out', workers=4,
    ...                         estimator_options={'n_points': 64})  # doctest: +SKIP
    >>> summary[summary['status'] == 'failed']  # doctest: +SKIP
    """
    from astropy.table import Table

    frame_options = FrameOptions(**options)
    output_dir = Path(output_dir)
    jobs = expand_inputs(inputs)
    if not jobs:
        raise ValueError('no input files')
    for path in jobs:
        check_input(path)
    _check_outputs({path: output_paths(path, output_dir, options=frame_options)
                    for path in jobs}, frame_options.overwrite)
    output_dir.mkdir(parents=True, exist_ok=True)

    if client is None and scheduler is None and (len(jobs) == 1 or workers == 1):
        rows = []
        for path in jobs:
            rows.append(_run_frame(str(path), str(output_dir), frame_options))
            if on_result is not None:
                on_result(rows[-1])
    else:
        # Workers may run elsewhere: they get absolute paths and no progress bars.
        worker_options = dataclasses.replace(
            frame_options, estimator_options={**frame_options.estimator_options,
                                              'progress': False},
            **{name: _absolute(getattr(frame_options, name))
               for name in ('mask', 'regions', 'points', 'plot', 'report')})
        rows = _run_on_dask(jobs, output_dir, worker_options, workers=workers,
                            scheduler=scheduler, client=client, on_result=on_result)

    summary = Table(rows=[[row[name] for name in _SUMMARY_COLUMNS] for row in rows],
                    names=_SUMMARY_COLUMNS, dtype=[str, str, float, float, str])
    summary['file'].format = summary['message'].format = '<'
    summary['seconds'].format = '.1f'
    summary['residual_rms'].format = '.4g'
    summary.meta['tracebacks'] = {row['file']: row['traceback'] for row in rows
                                  if row['traceback']}
    summary.meta['warnings'] = {row['file']: row['warnings'] for row in rows if row['warnings']}
    return summary
