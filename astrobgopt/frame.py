"""
Background removal for one image file: the per-file pipeline.

`process_file` reads a FITS, XISF or TIFF image, fits its background through
the stages of `~astrobgopt.SplineOptBackground` (with user sample points, see
`astrobgopt.points`, in the manner of rmgradient), and writes
``<name>_bgSubtracted.<ext>`` and ``<name>_bgModel.<ext>`` in the input's
format and data type, plus an optional figure (`astrobgopt.figures`) and JSON
report. `astrobgopt.batch` runs it on many files.

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

The module is over 600 lines because a frame's outputs are one unit: the
fit, the level kept, the residual statistics and the safe writing of the
set (incomplete-set markers, reruns after a crash) share the frame's
options and must stay consistent with one another.
"""

import dataclasses
import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.stats import mad_std
from scipy.special import ndtri

from ._choices import (DEFAULT_PEDESTAL, DEFAULT_POINTS_SIGMA, MIN_CONTROL_POINTS,
                       PEDESTALS)
from .downsample import block_reduce_masked
from .figures import display_stretch, figure_origin, plot_preview, plot_result
from .io import (_remove_stranded_temporaries, channels_last, file_layout, image_format,
                 read_image, write_image)
from .masks import _read_mask
from .points import point_samples, read_points
from .prepare import working_dtype

__all__ = ['process_file', 'check_input', 'check_output_dir', 'output_paths',
           'remove_incomplete_outputs', 'FrameOptions',
           'PEDESTALS', 'SUBTRACTED_SUFFIX', 'MODEL_SUFFIX']

#: Name suffix of the background-corrected image (as the seed tool).
SUBTRACTED_SUFFIX = '_bgSubtracted'
#: Name suffix of the background model (as the seed tool).
MODEL_SUFFIX = '_bgModel'
_PLOT_SUFFIX = '_bgPlot.png'
_REPORT_SUFFIX = '_bgReport.json'
_PREVIEW_SUFFIX = '_bgPreview.png'
_OUTPUT_STEM_SUFFIXES = (SUBTRACTED_SUFFIX, MODEL_SUFFIX)
# Standard deviation of a Gaussian per unit of median absolute deviation.
_MAD_TO_SIGMA = 1 / ndtri(0.75)


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
        boolean values, nonzero = masked; floating values in [0, 1] are the
        masked fraction of a pixel, 1 = fully masked. Colour masks mask a
        pixel as much as its most masked channel.
    regions : str or path-like, optional
        ds9 or CRTF region file of areas to leave out of the fit (sky regions
        need a FITS WCS).
    points : str or path-like, optional
        File of background sample points (see `astrobgopt.points`).
    points_only : bool, optional
        Fit the sample points alone (rmgradient's mode) rather than adding
        them to the image's block samples. Unless ``n_points`` is given,
        half as many control points as samples are used (4 to 32).
    points_sigma : float, optional
        Gaussian sigma, in pixels, of the sampling around each point.
    hdu : int or str, optional
        FITS HDU to read (default: the first with an image).
    channel_axis : {0, -1}, optional
        FITS only: the axis of a 3-D image that holds the channels (0
        channels first, -1 channels last); default: told from the shape
        (see `~astrobgopt.io.read_image`). Outputs keep the layout read.
    divide : bool, optional
        Divide by the model (multiplicative background) instead of
        subtracting it.
    pedestal : {'median', 'minimum'} or float, optional
        Level added back after subtraction (see the module notes), a finite
        number if a number; not used with ``divide``.
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
    points_sigma: float = DEFAULT_POINTS_SIGMA
    hdu: int | str | None = None
    channel_axis: int | None = None
    divide: bool = False
    pedestal: str | float = DEFAULT_PEDESTAL
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
        if self.channel_axis not in (None, 0, -1):
            raise ValueError(f'channel_axis must be 0 (channels first), -1 (channels last) or '
                             f'None (told from the shape); got {self.channel_axis!r}')
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
        elif not math.isfinite(self.pedestal):
            raise ValueError(f'pedestal must be a finite number (or one of {PEDESTALS}); '
                             f'got {self.pedestal!r}')

    def estimator(self):
        """The configured `~astrobgopt.SplineOptBackground`."""
        from .background import SplineOptBackground

        return SplineOptBackground(**self.estimator_options)


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


def check_output_dir(output_dir):
    """
    Fail early on an output directory that names an existing non-directory.

    Raises
    ------
    NotADirectoryError
        If ``output_dir`` exists and is not a directory.
    """
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise NotADirectoryError(f'the output directory {os.fspath(output_dir)!r} is an existing '
                                 'file: name a directory (new or existing) for the outputs')


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
    options : `~astrobgopt.frame.FrameOptions`, optional
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


def _incomplete_marker(targets):
    """
    The hidden file that stands beside a frame's first output while its
    outputs are written: left behind, it marks them as an incomplete set.
    """
    first = next(iter(targets.values()))
    return first.with_name(f'.{first.name}.astrobgopt-incomplete')


def remove_incomplete_outputs(targets):
    """
    Delete the outputs of a frame whose writing was cut short.

    Does nothing for a complete set (no marker). Temporaries of writers
    that no longer run go too.

    Parameters
    ----------
    targets : dict of str to `~pathlib.Path`
        The frame's `output_paths`.

    Returns
    -------
    removed : bool
        Whether the set was incomplete.
    """
    marker = _incomplete_marker(targets)
    if not marker.exists():
        return False
    for target in targets.values():
        target.unlink(missing_ok=True)
        _remove_stranded_temporaries(target)
    marker.unlink(missing_ok=True)
    return True


def _check_outputs(plan, overwrite):
    """
    Refuse outputs that would replace an input, collide, or exist already
    (those of an incomplete set, see `_incomplete_marker`, may be replaced).

    ``plan`` maps each input path to its `output_paths`.
    """
    inputs = {path.resolve(): path for path in plan}
    claimed = {}
    for source, targets in plan.items():
        replaceable = overwrite or _incomplete_marker(targets).exists()
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
            if target.exists() and not replaceable:
                raise FileExistsError(f'{str(target)!r} already exists; use --overwrite '
                                      '(overwrite=True) to replace it')


def _estimator_inputs(image, options, wcs, alpha=None):
    """
    Keyword arguments of the estimator for a float (H, W, k) frame: its
    masks and WCS. Transparent pixels (``alpha`` 0, a TIFF's alpha channel)
    are masked: they hold no image.
    """
    mask = None if options.mask is None else _read_mask(options.mask, image.shape[:2])
    if alpha is not None:
        transparent = np.any(alpha.reshape(*image.shape[:2], -1) == 0, axis=-1)
        mask = transparent if mask is None else np.maximum(mask, transparent)
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
                                   n_points=int(np.clip(n_samples // 2, MIN_CONTROL_POINTS, 32)))
    return options.estimator()


def _fit(image, options, wcs, alpha=None):
    """
    The background fit of a float (H, W, k) image under the frame options,
    through the estimator's stages (user sample points join as extra
    samples, or replace the blocks in points-only mode).
    """
    user = None if options.points is None else read_points(options.points)
    estimator = _estimator_for(options, None if user is None else len(user[0]))
    prepared = estimator.prepare(image, **_estimator_inputs(image, options, wcs, alpha))
    extra_samples = None
    if user is not None:
        extra_samples = point_samples(*user, prepared.image, prepared.usable_fraction,
                                      factor=estimator.downscale_factor_for(image.shape[:2]),
                                      sigma=options.points_sigma)
    samples = estimator.sample(prepared, extra_samples=extra_samples,
                               include_blocks=not options.points_only)
    return estimator.result(prepared, samples, estimator.fit(samples))


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
    corrected = data - model
    corrected += level  # in place: one image-sized temporary fewer
    return corrected, level


def _residual_statistics(corrected, factor):
    """
    Level, noise and large-scale flatness (over blocks of ``factor``
    pixels) of the corrected image, per channel.

    ``corrected`` is spent: the median and MAD of its finite pixels are
    taken in place, in the array itself when every pixel is finite (the
    rule), so that a large frame costs no more memory here.
    """
    finite = np.all(np.isfinite(corrected), axis=-1)
    # Where every pixel is finite, a weight of 1 costs no memory.
    weights = (np.broadcast_to(np.float32(1), finite.shape) if finite.all()
               else finite.astype(np.float32))
    blocks = block_reduce_masked(corrected if finite.all()
                                 else np.where(finite[..., None], corrected, 0),
                                 weights, factor).values
    blocks = blocks.reshape(-1, blocks.shape[-1])
    blocks = blocks[np.all(np.isfinite(blocks), axis=1)]
    # Robust scatter of the block medians: what is left of the gradient,
    # little affected by the minority of blocks that hold a nebula.
    large_scale = mad_std(blocks, axis=0)
    median, noise = [], []
    for channel in range(corrected.shape[-1]):
        values = (np.ravel(corrected[..., channel]) if finite.all()
                  else corrected[..., channel][finite])
        median.append(np.median(values, overwrite_input=True))
        np.abs(np.subtract(values, median[-1], out=values), out=values)
        noise.append(_MAD_TO_SIGMA * np.median(values, overwrite_input=True))
    return {'median': np.array(median), 'noise': np.array(noise),
            'large_scale_rms': large_scale}


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
    check_output_dir(output_dir)
    targets = output_paths(path, output_dir, options=options)
    _check_outputs({path: targets}, options.overwrite)
    # Outputs of a run cut short (their marker is still there) are replaced.
    overwrite = options.overwrite or _incomplete_marker(targets).exists()
    try:
        report = _process_frame(path, targets, options, overwrite, start)
    except BaseException:
        # Once writing began the outputs are a mixed set: none is better.
        remove_incomplete_outputs(targets)
        raise
    _incomplete_marker(targets).unlink(missing_ok=True)
    return report


def _process_frame(path, targets, options, overwrite, start):
    """Read, fit and write one frame; its report."""
    image = read_image(path, hdu=options.hdu, channel_axis=options.channel_axis)
    data = channels_last(image)
    if data.dtype.kind not in 'iuf':
        raise ValueError(f'{str(path)!r} holds {data.dtype} pixels; expected integers or floats')
    # The estimator's working type: no copy of a float image.
    work = data.astype(working_dtype(data.dtype), copy=False)
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
        report.update(_remove_background(work, image, targets, options, timings, overwrite))
    timings['total'] = time.perf_counter() - start
    report['timings'] = timings
    if 'report' in targets:
        with open(targets['report'], 'w') as stream:
            json.dump(_jsonable(report), stream, indent=1)
    return _jsonable(report)


def _remove_background(work, image, targets, options, timings, overwrite):
    """
    Fit, correct and write one frame (replacing existing outputs if
    ``overwrite``); the report entries of the fit.
    """
    start = time.perf_counter()
    result = _fit(work, options, image.wcs, image.alpha)
    # The residual RMS first, while the frame holds the fewest images: its
    # block statistics cost several images of temporary memory.
    background_rms = np.atleast_1d(result.background_rms_median)
    model = result.background
    corrected, level = _correct(work, model, result, options)
    timings['fit'] = time.perf_counter() - start

    start = time.perf_counter()
    meta = result.meta
    # The estimator's repr names every option: the fit can be rerun from it.
    provenance = {'input': image.path.name, 'mode': 'divide' if options.divide else 'subtract',
                  'level': ' '.join(f'{value:.6g}' for value in level),
                  'estimator': meta['estimator'], 'downscale': result.downscale_factor,
                  'steps': meta['n_steps']}
    if options.points is not None:
        provenance['points'] = Path(options.points).name
    operation = ('divided by the background model and scaled by its median'
                 if options.divide else f'background subtracted, pedestal {options.pedestal}')
    dtype = image.data.dtype
    compress = options.compress or image.path.name.lower().endswith('.fz')
    # Until the run ends, the marker tells a rerun these outputs are incomplete.
    _incomplete_marker(targets).touch()
    for key, pixels, history in (('subtracted', corrected, f'astrobgopt: {operation}'),
                                 ('model', model, 'astrobgopt: background model')):
        write_image(targets[key], file_layout(pixels, image),
                    like=image, overwrite=overwrite, provenance=provenance,
                    history=history, compress=compress, dtype=dtype)
    clipped = _clipped_count(corrected, dtype)
    if clipped:
        warnings.warn(f'{image.path.name}: {clipped} pixels of the corrected image lay outside '
                      f'the {dtype} range and were clipped (see --pedestal)', stacklevel=2)
    if 'plot' in targets:
        plot_result(targets['plot'], work, model, corrected, result, options,
                    title=image.path.name, origin=figure_origin(image))
    timings['write'] = time.perf_counter() - start

    history = np.asarray(result.loss_history)
    control = result.control_points
    return {'mode': provenance['mode'], 'level': level, 'clipped_pixels': clipped,
            'fit': meta, 'loss_history': {'train': history[:, 0], 'held_out': history[:, 1]},
            'control_points': {'x': np.asarray(control['x']), 'y': np.asarray(control['y']),
                               'value': np.asarray(control['value'])},
            'residual': {**_residual_statistics(corrected, result.downscale_factor),
                         'background_rms': background_rms}}


def _preview(work, image, plot_path, options):
    """Draw the stretched image, the mask and the initial control points; no fit."""
    from .optimize import initial_control_points

    user_points = None if options.points is None else read_points(options.points)[0]
    estimator = _estimator_for(options, None if user_points is None else len(user_points))
    prepared = estimator.prepare(work, **_estimator_inputs(work, options, image.wcs,
                                                           image.alpha))
    control = initial_control_points(work.shape[:2], estimator.config)
    display = prepared.stretch
    if display is None:
        display = display_stretch(work, np.all(np.isfinite(work), axis=-1),
                                  estimator.delinearization_quantile)
    masked_fraction = plot_preview(plot_path, work, prepared.usable_fraction, display, control,
                                   user_points, title=image.path.name,
                                   origin=figure_origin(image))
    return {'mode': 'preview', 'stretch': repr(display), 'masked_fraction': masked_fraction,
            'initial_control_points': control}


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
        Keyword options, see `~astrobgopt.frame.FrameOptions`: ``estimator_options``,
        ``mask``, ``regions``, ``points``, ``points_only``,
        ``points_sigma``, ``hdu``, ``channel_axis``, ``divide``, ``pedestal``, ``compress``,
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

    Notes
    -----
    While the outputs are written a hidden marker
    (``.<name>_bgSubtracted.<ext>.astrobgopt-incomplete``) stands beside
    them. A run that fails or is interrupted while writing removes the
    outputs it had written; one killed outright leaves the marker, and the
    next run replaces that incomplete set without ``overwrite`` (see
    `~astrobgopt.frame.remove_incomplete_outputs`).

    Examples
    --------
    >>> from astrobgopt.frame import process_file
    >>> report = process_file('m42.fits', 'out', estimator_options={'n_points': 64},
    ...                       plot='out/{name}.png')  # doctest: +SKIP
    """
    return _process(Path(path), Path(output_dir), FrameOptions(**options))
