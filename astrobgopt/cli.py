"""
The ``astrobgopt`` command: background removal for astrophotographs and
frames from the command line.

It keeps the flags of the seed tool (bgoptimizer), with the same short forms
and meanings (``-dx 8 -tM 0.9 -lr 0.01``), reads and writes FITS, XISF and TIFF,
processes many files in parallel or on a Dask cluster, and adds rmgradient's
user sample points. See ``astrobgopt --help`` and the documentation page
"Astrophotography from the command line".

Exit status: 0 on success, 1 when a file could not be processed (missing,
unreadable, unsupported, or a failed fit), 2 for a bad command line.

The module is about 550 lines, most of them the argument parser's help
texts, which are the command's documentation.
"""

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from . import _choices
from .config import FitConfig

__all__ = ['main', 'build_parser']

_PROG = 'astrobgopt'
# Frame size of the built-in demo image: a typical small astrophotograph.
_DEMO_SHAPE = (1000, 1500)
_DEMO_NAME = 'demo.fits'
# --channel-axis names and the axis `astrobgopt.io.read_image` takes.
_CHANNEL_AXES = {'first': 0, 'last': -1}

_DESCRIPTION = """\
Model the sky background of linear images with a spline fitted by gradient
descent, and write <name>_bgSubtracted.<ext> and <name>_bgModel.<ext> to OUTDIR
in the input's format (FITS, XISF, TIFF) and data type.

The corrected image stays linear: data - model + pedestal (the model's median
per channel by default, see --pedestal), or data / model * median(model) with
--divide. Integer outputs are rounded and clipped to their type, never wrapped.
"""

_EPILOG = """\
examples:
  astrobgopt --demo -o demo-output          built-in demo image, with a figure
  astrobgopt m42.xisf -dq 0.9 -tM 0.75 -p   preview the stretch and the mask
  astrobgopt m42.xisf -N 64 -c -o out       fit 64 control points, compress
  astrobgopt 'lights/*.fits' -o out --workers 4 --report 'out/{name}.json'
  astrobgopt m42.tif --points samples.txt   add rmgradient-style sample points
  astrobgopt validate --quick               run the validation kit

exit status: 0 success, 1 a file failed, 2 bad command line
"""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, not the whole usage."""

    def error(self, message):
        self.exit(2, f'{self.prog}: error: {message} (see {self.prog} --help)\n')


def _positive_int(text):
    value = _parse(int, text, 'an integer')
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be a positive integer; got {text!r}')
    return value


def _non_negative_int(text):
    value = _parse(int, text, 'an integer')
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be >= 0; got {text!r}')
    return value


def _downscale_factor(text):
    return 'auto' if text == 'auto' else _positive_int(text)


def _positive_float(text):
    value = _parse(float, text, 'a number')
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f'must be a positive number; got {text!r}')
    return value


def _finite_float(text):
    value = _parse(float, text, 'a number')
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f'must be a finite number; got {text!r}')
    return value


def _quantile(text):
    value = _parse(float, text, 'a number')
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f'must lie in (0, 1]; got {text!r}')
    return value


def _pedestal(text):
    if text in _choices.PEDESTALS:
        return text
    if text == 'none':
        return 0.0
    try:
        return _finite_float(text)
    except argparse.ArgumentTypeError:
        names = ', '.join(repr(name) for name in _choices.PEDESTALS)
        raise argparse.ArgumentTypeError(
            f"must be {names}, 'none' or a finite number; got {text!r}") from None


def _stretch_name(stretch):
    """The command line's name of a stretch: 'none' for the linear data."""
    return 'none' if stretch is None else stretch


def _hdu(text):
    return int(text) if text.lstrip('-').isdigit() else text


def _parse(kind, text, what):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be {what}; got {text!r}') from None


def build_parser():
    """
    The argument parser of the ``astrobgopt`` command.

    The seed tool's multi-letter short flags (``-dx``, ``-df``, ``-dq``,
    ``-tm``, ``-tM``, ``-lr``) are declared as single-dash option strings,
    which argparse matches exactly (abbreviations are turned off so that
    they cannot be confused).

    Returns
    -------
    parser : `argparse.ArgumentParser`
    """
    from . import __version__

    parser = _Parser(prog=_PROG, description=_DESCRIPTION, epilog=_EPILOG, allow_abbrev=False,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('inputs', nargs='*', metavar='INPUT',
                        help='images (FITS .fits/.fit/.fts[.gz|.fz], XISF .xisf, TIFF .tif/.tiff) '
                             'or glob patterns; several are processed in parallel')
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')

    out = parser.add_argument_group('input and output')
    out.add_argument('-o', '--output-dir', metavar='OUTDIR', default=None,
                     help='directory of the outputs, created if missing (default: the current '
                          'directory; as in the seed tool, an existing directory given as the '
                          'last INPUT also works)')
    out.add_argument('-c', '--compress', action='store_true',
                     help='compress outputs losslessly: XISF lz4hc + byte shuffling (as the '
                          'seed tool), FITS tile compression, TIFF zlib')
    out.add_argument('--hdu', type=_hdu, default=None,
                     help='FITS HDU to read, index or EXTNAME (default: the first image)')
    out.add_argument('--channel-axis', choices=tuple(_CHANNEL_AXES), default=None,
                     help='FITS colour cubes: channels on the first axis (first, the FITS '
                          'convention) or the last (last); outputs keep that layout '
                          '(default: told from the shape, ambiguous shapes are refused)')
    out.add_argument('--overwrite', action='store_true',
                     help='replace existing outputs (an input file is never replaced)')
    out.add_argument('--divide', action='store_true',
                     help='multiplicative background (vignetting): write data / model * '
                          'median(model) instead of subtracting')
    out.add_argument('--pedestal', type=_pedestal, default=None,
                     metavar='{' + ','.join(_choices.PEDESTALS) + ',none,VALUE}',
                     help='level added back after subtraction, per channel: the model\'s median '
                          '(default; the sky keeps its level and integer images stay '
                          'non-negative), its minimum (as rmgradient), none (0), or a value')
    out.add_argument('--plot', metavar='PNG',
                     help='write a figure (input / model / result, stretched, control points). '
                          'PNG may contain {name} (the input name without extension) or be a '
                          'directory, which receives <name>_bgPlot.png')
    out.add_argument('--report', metavar='JSON',
                     help='write a JSON report (parameters, loss history, residual statistics, '
                          'timings); {name} or a directory as for --plot (<name>_bgReport.json)')
    out.add_argument('--demo', action='store_true',
                     help='run on the built-in simulated light-polluted sky: writes demo.fits, '
                          'its outputs and demo_bgPlot.png to OUTDIR')

    seed = parser.add_argument_group("model options (the seed tool's flags)")
    seed.add_argument('-dx', '--downscaling-factor', type=_downscale_factor,
                      default=_choices.DEFAULT_DOWNSCALE_FACTOR, metavar='DOWNSCALING_FACTOR',
                      help='block size of the downscaled image the spline is fitted to '
                           "(default: %(default)s, about 12000 blocks; the seed's default was 8)")
    seed.add_argument('-df', '--downscaling-func', choices=_choices.DOWNSCALE_FUNCTIONS,
                      default=_choices.DEFAULT_DOWNSCALE_FUNC,
                      help='block statistic (default: %(default)s)')
    seed.add_argument('-dq', '--delinearization-quantile', type=_quantile,
                      default=_choices.DEFAULT_DELINEARIZATION_QUANTILE,
                      metavar='DELINEARIZATION_QUANTILE',
                      help='quantile mapped to 1.0 by the delinearizing stretch (with --stretch '
                           'mtf, and in figures; default: %(default)s)')
    seed.add_argument('-p', '--preview', action='store_true',
                      help="don't fit: write a figure of the stretched image, the mask and the "
                           'initial control points (OUTDIR/<name>_bgPreview.png, or --plot)')
    seed.add_argument('-N', type=_positive_int, default=None, dest='n_points', metavar='N',
                      help='number of control points (default: chosen from 16 to 256)')
    seed.add_argument('-O', type=int, choices=_choices.SUPPORTED_ORDERS, default=FitConfig.order,
                      dest='order', metavar='O',
                      help='order of the spline: 2 thin-plate, 3 cubic (default: %(default)s)')
    seed.add_argument('-tm', '--threshold-min', type=_finite_float, default=None,
                      metavar='THRESHOLD_MIN',
                      help='mask pixels below this level (stretched units with --stretch mtf, '
                           'else data units; default: none)')
    seed.add_argument('-tM', '--threshold-max', type=_finite_float, default=None,
                      metavar='THRESHOLD_MAX',
                      help='mask pixels above this level (units as -tm; default: none)')
    seed.add_argument('-m', '--mask', metavar='MASK',
                      help='mask image (any supported format): nonzero integers are masked, '
                           'floats in [0, 1] are masked fractions (1 = fully masked)')
    seed.add_argument('-i', '--initializer', choices=_choices.INITIALIZERS,
                      default=FitConfig.initializer,
                      help='initial control points (default: %(default)s)')
    seed.add_argument('-e', '--epochs', type=_non_negative_int, default=FitConfig.epochs,
                      help='maximum number of optimization steps; early stopping usually ends '
                           'sooner (default: %(default)s)')
    seed.add_argument('-a', '--alpha', type=_finite_float, default=FitConfig.alpha,
                      help="[advanced] weight of the asymmetric loss's overshoot and negative "
                           'background penalties (default: %(default)s)')
    seed.add_argument('-B', type=_positive_int, default=None, dest='batch_size', metavar='B',
                      help='[advanced] blocks per optimization step (default: all)')
    seed.add_argument('-lr', type=_positive_float, default=FitConfig.learning_rate,
                      dest='learning_rate', metavar='LR',
                      help='[advanced] learning rate (default: %(default)s)')

    new = parser.add_argument_group('model options (new)')
    new.add_argument('--loss', choices=_choices.LOSSES, default=FitConfig.loss,
                     help="robust (Tukey biweight: unbiased, rejects stars and nebulae) or "
                          "asymmetric (the seed tool's loss; use with --stretch mtf; "
                          'default: %(default)s)')
    new.add_argument('--stretch', choices=[_stretch_name(name) for name in _choices.STRETCHES],
                     default=_stretch_name(_choices.DEFAULT_STRETCH),
                     help='fit the linear data (none) or, as the seed tool, the delinearized '
                          'image (mtf; default: %(default)s)')
    new.add_argument('--smoothing', type=_finite_float, default=FitConfig.smoothing,
                     help='bending-energy penalty relative to the data term '
                          '(default: %(default)s)')
    new.add_argument('--regions', metavar='FILE',
                     help='ds9 (.reg) or CASA (.crtf) regions to leave out of the fit')
    new.add_argument('--seed', type=_non_negative_int, default=FitConfig.seed,
                     help='random seed of the random initializer and held-out blocks '
                          '(default: %(default)s)')
    new.add_argument('--points', metavar='FILE',
                     help="background sample points, 'x y' per line, negative pairs continuing "
                          'an isoline (rmgradient); added to the image samples')
    new.add_argument('--points-only', action='store_true',
                     help='fit the --points samples alone, as rmgradient')
    new.add_argument('--points-sigma', type=_positive_float,
                     default=_choices.DEFAULT_POINTS_SIGMA, metavar='SIGMA',
                     help='Gaussian sigma, in pixels, of the sampling around each point '
                          "(rmgradient's --sigma; default: %(default)s)")

    run = parser.add_argument_group('running')
    run.add_argument('--workers', type=_positive_int, default=None,
                     help='local worker processes for several inputs (default: one per core)')
    run.add_argument('--scheduler', metavar='ADDRESS',
                     help='run on an existing Dask cluster (e.g. tcp://host:8786); inputs and '
                          'OUTDIR must be visible to its workers at the same paths')
    run.add_argument('--chunked', action='store_true',
                     help='FITS images larger than memory: read, fit and write band by band '
                          '(2-D linear data; the model and data minus model are written; '
                          'with --scheduler the cluster does the bands)')
    run.add_argument('--quiet', action='store_true',
                     help='no progress bar or messages, only warnings and errors')
    run.add_argument('--debug', action='store_true',
                     help="show the Python traceback of errors and TensorFlow's start-up log")
    return parser


def _frame_options(args):
    """`astrobgopt.frame.FrameOptions` keywords from parsed arguments."""
    estimator_options = {
        'order': args.order, 'initializer': args.initializer, 'loss': args.loss,
        'downscale_factor': args.downscaling_factor, 'downscale_func': args.downscaling_func,
        'stretch': None if args.stretch == _stretch_name(None) else args.stretch,
        'delinearization_quantile': args.delinearization_quantile,
        'threshold_min': args.threshold_min, 'threshold_max': args.threshold_max,
        'alpha': args.alpha, 'smoothing': args.smoothing, 'epochs': args.epochs,
        'learning_rate': args.learning_rate, 'batch_size': args.batch_size, 'seed': args.seed,
        'progress': False if args.quiet else None}
    # Absent unless given, so that points-only mode can choose it.
    if args.n_points is not None:
        estimator_options['n_points'] = args.n_points
    return {'estimator_options': estimator_options, 'mask': args.mask,
            'regions': args.regions, 'points': args.points, 'points_only': args.points_only,
            'points_sigma': args.points_sigma, 'hdu': args.hdu,
            'channel_axis': _CHANNEL_AXES.get(args.channel_axis), 'divide': args.divide,
            'pedestal': _choices.DEFAULT_PEDESTAL if args.pedestal is None else args.pedestal,
            'compress': args.compress, 'overwrite': args.overwrite, 'plot': args.plot,
            'report': args.report, 'preview': args.preview}


def _check_combinations(args, parser):
    """Reject option combinations that cannot mean anything."""
    if args.demo and args.inputs:
        parser.error('--demo runs on the built-in image: give no INPUT with it')
    if not args.demo and not args.inputs:
        parser.error('give at least one INPUT image (or --demo)')
    if args.divide and args.pedestal is not None:
        parser.error('--pedestal applies to subtraction; --divide keeps the median level')
    if args.points_only and args.points is None:
        parser.error('--points-only needs --points FILE')
    if args.scheduler is not None and args.workers is not None:
        parser.error('--workers starts local processes; with --scheduler the cluster has '
                     'its own workers')


def _split_seed_output_dir(args):
    """The seed tool's form ``INPUT OUTPUT_PATH``: a trailing existing directory is OUTDIR."""
    if args.output_dir is None and len(args.inputs) > 1 and os.path.isdir(args.inputs[-1]):
        args.output_dir = args.inputs.pop()
    if args.output_dir is None:
        args.output_dir = '.'


def _print_warning(message, category, filename, lineno, file=None, line=None):
    print(f'{_PROG}: warning: {message}', file=sys.stderr)


def main(argv=None):
    """
    Run the ``astrobgopt`` command.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).
        ``validate ...`` runs the validation kit's command.

    Returns
    -------
    status : int
        0 on success, 1 when a file could not be processed, 2 for a bad
        command line.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ['validate']:
        return _validate(argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:
        return exit_request.code
    with warnings.catch_warnings():
        warnings.showwarning = _print_warning
        try:
            _check_combinations(args, parser)
            _split_seed_output_dir(args)
            return _run(args, parser)
        except SystemExit as exit_request:
            return exit_request.code
        except KeyboardInterrupt:
            print(f'{_PROG}: interrupted', file=sys.stderr)
            return 130
        except Exception as exc:
            if args.debug:
                raise
            from .batch import error_message

            hint = ('' if isinstance(exc, (OSError, ValueError))
                    else ' (run with --debug for the traceback)')
            print(f'{_PROG}: error: {error_message(exc)}{hint}', file=sys.stderr)
            return 1


def _validate(argv):
    """``astrobgopt validate ...``: the validation kit's command line."""
    try:
        from .validation import validation_main
    except ImportError as exc:
        print(f'{_PROG}: error: the validation kit is not available ({exc})', file=sys.stderr)
        return 1
    try:
        return validation_main(argv)
    except SystemExit as exit_request:  # argparse's --help and usage errors
        return exit_request.code


def _run(args, parser):
    from ._startup import load_numerical_core
    from .batch import expand_inputs
    from .frame import FrameOptions, check_input, check_output_dir
    from .io import image_format

    # Inputs first: a missing file is reported before the options are
    # checked, which loads the numerical core (TensorFlow).
    inputs = [] if args.demo else expand_inputs(args.inputs)
    for path in inputs:
        check_input(path)
    try:
        check_output_dir(args.output_dir)
    except NotADirectoryError as exc:
        parser.error(f'-o/--output-dir: {exc}')
    if args.channel_axis is not None:
        others = [str(path) for path in inputs if image_format(path) != 'fits']
        if others:
            parser.error('--channel-axis applies to FITS inputs only (XISF and TIFF record '
                         f'their layout); not to {", ".join(others)}')
    load_numerical_core(show_log=args.debug)
    try:
        options = _frame_options(args)
        FrameOptions(**options)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    if args.demo:
        return _run_demo(args, options)
    if args.chunked:
        return _run_chunked(inputs, args, options)
    return _run_batch(inputs, args, options)


def _run_chunked(inputs, args, options):
    """Process FITS inputs band by band (`astrobgopt.chunked.process_fits`)."""
    from .chunked import process_fits
    from .frame import FrameOptions, output_paths

    unsupported = [flag for flag, given in (
        ('--mask', args.mask), ('--regions', args.regions), ('--points', args.points),
        ('--divide', args.divide), ('--pedestal', args.pedestal), ('--plot', args.plot),
        ('--report', args.report), ('--preview', args.preview), ('--compress', args.compress),
        ('--workers', args.workers)) if given]
    if unsupported:
        print(f'{_PROG}: error: --chunked does not take {", ".join(unsupported)}',
              file=sys.stderr)
        return 2
    frame_options = FrameOptions(**options)
    scheduler = 'threads'
    if args.scheduler is not None:
        from distributed import Client

        scheduler = Client(args.scheduler)
    for path in inputs:
        start = time.perf_counter()
        paths = output_paths(path, args.output_dir or '.', options=frame_options)
        try:
            process_fits(path, paths, frame_options.estimator(), hdu=args.hdu or 0,
                         scheduler=scheduler, overwrite=args.overwrite)
        except (OSError, TypeError, ValueError) as exc:
            print(f'{_PROG}: error: {path}: {exc}', file=sys.stderr)
            return 1
        if not args.quiet:
            print(f'{path}: wrote {", ".join(map(str, paths.values()))} '
                  f'({time.perf_counter() - start:.1f} s)')
    return 0


def _describe(name, outputs, residual_rms, seconds):
    """One line about a processed frame."""
    rms = '' if math.isnan(residual_rms) else f'residual RMS {residual_rms:.4g}; '
    return f'{name}: wrote {", ".join(outputs)} ({rms}{seconds:.1f} s)'


def _run_batch(inputs, args, options):
    """Process the inputs (in this process if only one), one line per frame."""
    from .batch import process_batch

    done = []

    def announce(row):
        done.append(row)
        for warning in row['warnings']:
            print(f'{_PROG}: warning: {warning}', file=sys.stderr)
        if row['status'] != 'ok':
            print(f'{_PROG}: error: {row["file"]}: {row["message"]}', file=sys.stderr)
            if args.debug and row['traceback']:
                print(row['traceback'], file=sys.stderr, end='')
        elif not args.quiet:
            counter = f'[{len(done)}/{len(inputs)}] ' if len(inputs) > 1 else ''
            print(counter + _describe(row['file'], row['outputs'].values(),
                                      row['residual_rms'], row['seconds']))

    # After Ctrl-C, Dask's worker processes can leave a semaphore that the
    # multiprocessing resource tracker (started later, with these options)
    # removes with a warning of several lines: the removal is all it takes.
    tracker_option = 'ignore::UserWarning:multiprocessing.resource_tracker'
    if tracker_option not in sys.warnoptions:
        sys.warnoptions.append(tracker_option)
    summary = process_batch(inputs, args.output_dir, workers=args.workers,
                            scheduler=args.scheduler, on_result=announce, **options)
    failed = int(np.count_nonzero(summary['status'] != 'ok'))
    if len(summary) > 1:
        if not args.quiet:
            summary.pprint(max_lines=-1, max_width=-1)
        if failed:
            print(f'{_PROG}: error: {failed} of {len(summary)} files failed', file=sys.stderr)
    return 1 if failed else 0


def _run_demo(args, options):
    """Write the demo image, process it like any input, and score the model."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from .frame import process_file
    from .datasets import make_light_pollution_sky
    from .io import read_image

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    sky = make_light_pollution_sky(_DEMO_SHAPE, seed=args.seed)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [56.75, 24.12]
    wcs.wcs.crpix = [_DEMO_SHAPE[1] / 2, _DEMO_SHAPE[0] / 2]
    wcs.wcs.cdelt = [-0.002, 0.002]
    header = wcs.to_header()
    header['OBJECT'] = ('astrobgopt demo', 'simulated light-polluted sky')
    header.add_comment('astrobgopt.datasets.make_light_pollution_sky: gradient, town glow, '
                       'vignetting, a faint nebula, stars and noise')
    demo_path = output_dir / _DEMO_NAME
    if demo_path.exists() and not args.overwrite:
        raise FileExistsError(f'{str(demo_path)!r} already exists; use --overwrite to replace '
                              'it')
    fits.PrimaryHDU(sky.image, header).writeto(demo_path, overwrite=args.overwrite)
    if options['plot'] is None:
        options = {**options, 'plot': os.fspath(output_dir / 'demo_bgPlot.png')}
    start = time.perf_counter()
    report = process_file(demo_path, output_dir, **options)
    if args.quiet:
        return 0
    residual = report.get('residual', {}).get('background_rms', [math.nan])
    print(_describe(str(demo_path), report['outputs'].values(), float(np.mean(residual)),
                    time.perf_counter() - start))
    if options['preview']:
        return 0
    error = read_image(report['outputs']['model']).data - sky.background
    gradient = np.ptp(sky.background)
    print(f'demo: the model matches the true background to {np.std(error):.2g} RMS, '
          f'{100 * np.std(error) / gradient:.1f}% of its {gradient:.3g} range '
          f'(pixel noise {sky.noise_sigma:g})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
