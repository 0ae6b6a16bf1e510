"""Tests of the astrobgopt command line (astrobgopt.cli)."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from astropy.io import fits
from astropy.wcs import WCS
from xisf import XISF

from astrobgopt import __version__
from astrobgopt.cli import build_parser, main
from astrobgopt.datasets import make_light_pollution_sky
from astrobgopt.downsample import block_reduce_masked
from astrobgopt.io import read_image, write_image

SHAPE = (200, 300)
# uint16 frames: the simulated [0, 1] sky scaled to ADU over a bias level.
ADU_GAIN, ADU_BIAS = 20000.0, 500.0
# Colour frames: the same sky seen through three filters.
CHANNEL_GAINS = np.array([1.0, 0.8, 0.6], dtype=np.float32)
FAST = ['-e', '30', '--quiet']


def run_cli(*args, cwd):
    """Run the installed command's module in a fresh interpreter."""
    # TensorFlow's native start-up log is left on: the command must hold it back.
    env = {**{key: value for key, value in os.environ.items() if key != 'TF_CPP_MIN_LOG_LEVEL'},
           'MPLBACKEND': 'agg'}
    return subprocess.run([sys.executable, '-m', 'astrobgopt.cli', *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def stderr_lines(stderr):
    return [line for line in stderr.splitlines() if line.strip()]


def science_header():
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [83.82, -5.39]
    wcs.wcs.crpix = [150, 100]
    wcs.wcs.cdelt = [-0.0005, 0.0005]
    header = wcs.to_header()
    header['OBJECT'] = ('M42', 'target')
    header['EXPTIME'] = (120.0, 's')
    return header


def large_scale_rms(image):
    """Scatter of 10x10 block medians: what is left of a smooth gradient."""
    image = np.asarray(image, dtype=np.float64)
    image = image[..., None] if image.ndim == 2 else image
    blocks = block_reduce_masked(image, np.ones(image.shape[:2], np.float32), 10).values
    return np.std(blocks.reshape(-1, image.shape[-1]), axis=0)


@pytest.fixture(scope='module')
def sky():
    return make_light_pollution_sky(SHAPE, seed=1)


@pytest.fixture(scope='module')
def starfield():
    """The light-polluted sky without the nebula: what is not stars is background."""
    return make_light_pollution_sky(SHAPE, seed=1, nebula_amplitude=0.0)


def sky_components(sky, *, rgb=False, adu=False):
    """(image, background, sources) in the layout and scale of a test file."""
    parts = [sky.image, sky.background, sky.nebula + sky.stars]
    if rgb:
        parts = [part[..., None] * CHANNEL_GAINS for part in parts]
    if adu:
        parts = [parts[0] * ADU_GAIN + ADU_BIAS, parts[1] * ADU_GAIN + ADU_BIAS,
                 parts[2] * ADU_GAIN]
    return parts


@pytest.fixture(scope='module')
def processed(starfield, tmp_path_factory):
    """
    FITS (mono float32, RGB uint16), TIFF (RGB uint16, mono float32) and
    XISF (mono float32, RGB uint16, compressed) processed by two runs of the
    command.
    """
    root = tmp_path_factory.mktemp('cli')
    inputs = root / 'in'
    inputs.mkdir()
    image, _, _ = sky_components(starfield)
    rgb16 = np.round(sky_components(starfield, rgb=True, adu=True)[0]).astype(np.uint16)
    fits.PrimaryHDU(image, science_header()).writeto(inputs / 'mono.fits')
    fits.PrimaryHDU(np.moveaxis(rgb16, -1, 0), science_header()).writeto(inputs / 'rgb.fits')
    tifffile.imwrite(inputs / 'rgb_tiff.tif', rgb16, photometric='rgb')
    tifffile.imwrite(inputs / 'mono_tiff.tif', image)
    write_image(inputs / 'mono_xisf.xisf', image, like=read_image(inputs / 'mono.fits'))
    write_image(inputs / 'rgb_xisf.xisf', rgb16)

    runs = [run_cli(*[inputs / name for name in ('mono.fits', 'rgb.fits', 'rgb_tiff.tif',
                                                 'mono_tiff.tif')],
                    '-o', root / 'out', '--workers', '1', '--report', f'{root / "reports"}/', *FAST,
                    cwd=root),
            run_cli(inputs / '*.xisf', '-o', root / 'out', '-c', *FAST, '--workers', '1',
                    cwd=root)]
    for run in runs:
        assert run.returncode == 0, run.stderr
        # The estimator may warn (one line each); nothing else reaches stderr.
        assert all(line.startswith('astrobgopt: warning: ') for line in stderr_lines(run.stderr))
    return root


@pytest.mark.parametrize('name, rgb, adu', [
    ('mono.fits', False, False), ('rgb.fits', True, True), ('rgb_tiff.tif', True, True),
    ('mono_tiff.tif', False, False), ('mono_xisf.xisf', False, False),
    ('rgb_xisf.xisf', True, True)])
def test_outputs_keep_format_and_remove_gradient(processed, starfield, name, rgb, adu):
    stem, extension = name.rsplit('.', 1)
    source = read_image(processed / 'in' / name)
    for suffix in ('_bgSubtracted', '_bgModel'):
        output = read_image(processed / 'out' / f'{stem}{suffix}.{extension}')
        assert output.format == source.format
        assert output.data.dtype == source.data.dtype
        assert output.data.shape == source.data.shape

    def channels_last(data):
        return np.moveaxis(data, 0, -1) if data.ndim == 3 and extension == 'fits' else data

    subtracted = channels_last(read_image(processed / 'out' / f'{stem}_bgSubtracted.'
                                          f'{extension}').data).astype(np.float64)
    model = channels_last(read_image(processed / 'out' / f'{stem}_bgModel.{extension}').data)
    _, background, sources = sky_components(starfield, rgb=rgb, adu=adu)
    gradient = large_scale_rms(background)
    # The subtracted image, once the known stars are taken away, keeps only
    # a small fraction of the light-pollution gradient.
    assert np.all(large_scale_rms(subtracted - sources) < 0.15 * gradient)
    assert np.all(large_scale_rms(model - background) < 0.15 * gradient)
    # It is data - model + a constant level per channel (exactly, but for the
    # rounding of both integer outputs).
    data = channels_last(source.data).astype(np.float64)
    level = np.median(subtracted - data + model, axis=(0, 1))
    rounding = 1.0 if adu else 1e-6
    assert np.all(np.abs(subtracted - (data - model + level)) <= rounding)
    # Default pedestal: the model's median is added back, so the sky keeps
    # its level (and integers stay positive).
    flat_sky = np.median(subtracted - sources, axis=(0, 1))
    assert np.allclose(flat_sky, np.median(background, axis=(0, 1)), rtol=0,
                       atol=0.05 * np.ptp(background))


def test_fits_header_wcs_and_provenance(processed):
    source = fits.getheader(processed / 'in' / 'rgb.fits')
    for suffix in ('_bgSubtracted', '_bgModel'):
        header = fits.getheader(processed / 'out' / f'rgb{suffix}.fits')
        assert header['OBJECT'] == 'M42' and header['EXPTIME'] == 120.0
        assert header['BGOPTVER'] == __version__
        assert 'mode=subtract' in header['BGOPTPAR'] and 'input=rgb.fits' in header['BGOPTPAR']
        assert any('astrobgopt' in line for line in header['HISTORY'])
        wcs, expected = WCS(header).celestial, WCS(source).celestial
        assert np.allclose(wcs.wcs.crval, expected.wcs.crval)
        assert list(wcs.wcs.ctype) == list(expected.wcs.ctype)
    assert fits.getheader(processed / 'out' / 'rgb_bgSubtracted.fits')['BITPIX'] == 16


def test_xisf_compressed_with_keywords(processed):
    for name in ('mono_xisf_bgSubtracted.xisf', 'rgb_xisf_bgModel.xisf'):
        metadata = XISF(str(processed / 'out' / name)).get_images_metadata()[0]
        assert metadata['FITSKeywords']['BGOPTVER'][0]['value'].strip("'") == __version__
    # The smooth model compresses; the header keywords of the input survive.
    assert 'compression' in XISF(str(processed / 'out' / 'rgb_xisf_bgModel.xisf')) \
        .get_images_metadata()[0]
    keywords = XISF(str(processed / 'out' / 'mono_xisf_bgModel.xisf')).get_images_metadata()[0][
        'FITSKeywords']
    assert keywords['OBJECT'][0]['value'].strip("'") == 'M42'


def test_tiff_keeps_bit_depth_and_photometric(processed):
    with tifffile.TiffFile(processed / 'out' / 'rgb_tiff_bgSubtracted.tif') as tiff:
        page = tiff.pages[0]
        assert page.dtype == np.uint16 and page.shape == (*SHAPE, 3)
        assert page.photometric == tifffile.PHOTOMETRIC.RGB
        assert 'astrobgopt' in page.software
    with tifffile.TiffFile(processed / 'out' / 'mono_tiff_bgModel.tif') as tiff:
        assert tiff.pages[0].dtype == np.float32


def test_report_json_per_input(processed):
    report = json.loads((processed / 'reports' / 'rgb_bgReport.json').read_text())
    assert report['input'].endswith('rgb.fits')
    assert report['shape'] == [3, *SHAPE] and report['dtype'] == 'uint16'
    assert report['options']['estimator_options']['epochs'] == 30
    assert report['fit']['config']['epochs'] == 30
    assert report['fit']['device'] == 'CPU' or report['fit']['device'].startswith('GPU (')
    n_steps = report['fit']['n_steps']
    assert 0 < n_steps <= 30
    assert len(report['loss_history']['train']) == n_steps + 1
    assert len(report['loss_history']['held_out']) == n_steps + 1
    assert len(report['control_points']['x']) == report['fit']['n_control_points']
    residual = report['residual']
    assert set(residual) == {'median', 'noise', 'large_scale_rms', 'background_rms'}
    noise_adu = 0.002 * ADU_GAIN * CHANNEL_GAINS
    # The residual scatter is the pixel noise, per channel, in ADU.
    assert np.allclose(residual['background_rms'], noise_adu, rtol=0.3)
    assert report['level'] == pytest.approx(residual['median'], rel=0.05)
    assert report['clipped_pixels'] == 0
    assert {'read', 'fit', 'write', 'total'} <= set(report['timings'])
    assert set(report['outputs']) == {'subtracted', 'model', 'report'}


def test_missing_file_is_one_line_error(tmp_path):
    run = run_cli('nothere.fits', cwd=tmp_path)
    assert run.returncode == 1
    assert stderr_lines(run.stderr) == ["astrobgopt: error: input file 'nothere.fits' does not "
                                        "exist"]
    assert 'Traceback' not in run.stderr


def test_unsupported_extension_and_bad_option(tmp_path):
    (tmp_path / 'notes.txt').write_text('not an image')
    run = run_cli('notes.txt', cwd=tmp_path)
    assert run.returncode == 1
    [line] = stderr_lines(run.stderr)
    assert line.startswith("astrobgopt: error: 'notes.txt' is not a supported image")

    run = run_cli('image.fits', '-e', 'many', cwd=tmp_path)
    assert run.returncode == 2
    assert stderr_lines(run.stderr) == ["astrobgopt: error: argument -e/--epochs: must be an "
                                        "integer; got 'many' (see astrobgopt --help)"]


def test_unreadable_file_debug_shows_traceback(tmp_path):
    (tmp_path / 'broken.fits').write_bytes(b'SIMPLE  = garbage' * 10)
    run = run_cli('broken.fits', cwd=tmp_path)
    assert run.returncode == 1
    [line] = stderr_lines(run.stderr)
    assert line.startswith("astrobgopt: error: broken.fits: could not read fits file")
    run = run_cli('broken.fits', '--debug', cwd=tmp_path)
    assert run.returncode == 1 and 'Traceback' in run.stderr


def test_seed_short_flags_parse():
    args = build_parser().parse_args(
        ['in.xisf', '-dx', '8', '-df', 'mean', '-dq', '0.9', '-tm', '0.001', '-tM', '0.9',
         '-lr', '0.01', '-N', '64', '-O', '3', '-i', 'random', '-e', '500', '-a', '2',
         '-B', '256', '-m', 'mask.tif', '-c', '-p'])
    assert (args.downscaling_factor, args.downscaling_func, args.delinearization_quantile) == \
        (8, 'mean', 0.9)
    assert (args.threshold_min, args.threshold_max, args.learning_rate) == (0.001, 0.9, 0.01)
    assert (args.n_points, args.order, args.initializer, args.epochs) == (64, 3, 'random', 500)
    assert (args.alpha, args.batch_size, args.mask) == (2.0, 256, 'mask.tif')
    assert args.compress and args.preview
    defaults = build_parser().parse_args(['in.fits'])
    assert defaults.downscaling_factor == 'auto' and defaults.n_points is None


@pytest.mark.parametrize('argv, message', [
    (['a.fits', '-dx', '0'], 'argument -dx/--downscaling-factor: must be a positive integer'),
    (['a.fits', '-dq', '1.5'], 'argument -dq/--delinearization-quantile: must lie in (0, 1]'),
    (['a.fits', '-O', '7'], 'argument -O: invalid choice'),
    (['a.fits', '--pedestal', 'high'], "must be 'median', 'minimum', 'none' or a finite number"),
    (['a.fits', '--divide', '--pedestal', 'minimum'], '--pedestal applies to subtraction'),
    (['a.fits', '--points-only'], '--points-only needs --points FILE'),
    (['a.fits', '-d', '8'], 'ambiguous option: -d could match -dx, -df, -dq'),
    ([], 'give at least one INPUT image (or --demo)'),
])
def test_bad_command_lines(argv, message, cli_error):
    assert main(argv) == 2
    err = cli_error()
    assert message in err


def test_refuses_to_overwrite_input_even_with_overwrite(tmp_path, sky, cli_error):
    fits.writeto(tmp_path / 'm31.fits', sky.image)
    fits.writeto(tmp_path / 'm31_bgModel.fits', sky.image)
    before = (tmp_path / 'm31_bgModel.fits').read_bytes()
    # m31.fits would write m31_bgModel.fits, which is the other input.
    status = main([str(tmp_path / 'm31.fits'), str(tmp_path / 'm31_bgModel.fits'),
                   '-o', str(tmp_path), '--overwrite', *FAST])
    assert status == 1
    err = cli_error()
    assert 'refusing to write' in err and 'even with --overwrite' in err
    assert (tmp_path / 'm31_bgModel.fits').read_bytes() == before
    assert not (tmp_path / 'm31_bgSubtracted.fits').exists()


def test_existing_outputs_need_overwrite(tmp_path, sky, capsys):
    fits.writeto(tmp_path / 'm31.fits', sky.image)
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'm31_bgModel.fits').write_bytes(b'precious')
    argv = [str(tmp_path / 'm31.fits'), '-o', str(tmp_path / 'out'), *FAST]
    assert main(argv) == 1
    assert 'already exists; use --overwrite' in capsys.readouterr().err
    assert (tmp_path / 'out' / 'm31_bgModel.fits').read_bytes() == b'precious'
    assert main(argv + ['--overwrite']) == 0
    assert read_image(tmp_path / 'out' / 'm31_bgModel.fits').data.shape == SHAPE


def test_preview_writes_png_without_fitting(tmp_path, sky, monkeypatch, capsys):
    import astrobgopt.background
    import astrobgopt.optimize

    def no_fit(*args, **kwargs):
        raise AssertionError('the preview must not fit')

    monkeypatch.setattr(astrobgopt.optimize, 'fit_spline', no_fit)
    monkeypatch.setattr(astrobgopt.background.SplineOptBackground, '__call__', no_fit)
    write_image(tmp_path / 'm42.tif', sky.image)
    status = main([str(tmp_path / 'm42.tif'), '-p', '-dq', '0.9', '--stretch', 'mtf',
                   '-tM', '0.8', '-o', str(tmp_path / 'out'), '--report',
                   str(tmp_path / 'preview.json')])
    assert status == 0
    assert (tmp_path / 'out' / 'm42_bgPreview.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert sorted(path.name for path in (tmp_path / 'out').iterdir()) == ['m42_bgPreview.png']
    report = json.loads((tmp_path / 'preview.json').read_text())
    assert report['mode'] == 'preview'
    # -tM 0.8 in stretched units masks the nebula core and the brightest stars.
    assert 0.005 < report['masked_fraction'] < 0.5
    assert len(report['initial_control_points']) == 32
    assert 'm42_bgPreview.png' in capsys.readouterr().out


def test_points_only_recovers_a_plane(tmp_path, sky):
    y, x = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    plane = (0.05 + 0.02 * x / SHAPE[1] + 0.01 * y / SHAPE[0]).astype(np.float32)
    noise = sky.image - sky.background - sky.nebula - sky.stars
    fits.writeto(tmp_path / 'plane.fits', plane + sky.stars + noise)
    points = tmp_path / 'samples.txt'
    points.write_text(''.join(f'{x}, {y}\n' for x in (20, 100, 200, 280) for y in (20, 100, 180)))
    assert main([str(tmp_path / 'plane.fits'), '--points', str(points), '--points-only',
                 '-o', str(tmp_path), *FAST]) == 0
    model = fits.getdata(tmp_path / 'plane_bgModel.fits')
    assert np.max(np.abs(model - plane)) < 0.03 * np.ptp(plane)


def test_isoline_points_take_their_anchor_value(tmp_path, sky):
    """Isoline points carry a level into a bright area where nothing can be measured."""
    y, x = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    background = (0.05 + 0.02 * y / SHAPE[0]).astype(np.float32)  # horizontal isolines
    blob = 0.05 * np.exp(-0.5 * ((x - 230) ** 2 + (y - 100) ** 2) / 40 ** 2)
    noise = sky.image - sky.background - sky.nebula - sky.stars
    fits.writeto(tmp_path / 'blob.fits', (background + blob + noise).astype(np.float32))
    anchors_x, isoline_x = 30, (150, 230, 280)
    isolines, plain = [], []
    for level in (20, 60, 100, 140, 180):
        isolines += [f'{anchors_x} {level}'] + [f'-{far} -{level}' for far in isoline_x]
        plain += [f'{far} {level}' for far in (anchors_x, *isoline_x)]
    for name, rows in (('iso', isolines), ('plain', plain)):
        points = tmp_path / f'{name}.txt'
        points.write_text('# x y\n' + '\n'.join(rows) + '\n')
        (tmp_path / name).mkdir()
        assert main([str(tmp_path / 'blob.fits'), '--points', str(points), '--points-only',
                     '-o', str(tmp_path / name), *FAST]) == 0
    iso = fits.getdata(tmp_path / 'iso' / 'blob_bgModel.fits')
    plain = fits.getdata(tmp_path / 'plain' / 'blob_bgModel.fits')
    assert abs(iso[100, 230] - background[100, 230]) < 0.001
    # Sampled there, the blob (0.05 at its peak) is taken for background.
    assert plain[100, 230] - background[100, 230] > 0.005


def test_demo_writes_fits_and_figure(tmp_path, monkeypatch, capsys):
    import astrobgopt.cli

    # The real demo is 1000 x 1500; the same code on a smaller frame.
    monkeypatch.setattr(astrobgopt.cli, '_DEMO_SHAPE', SHAPE)
    assert main(['--demo', '-o', str(tmp_path / 'demo'), '-e', '30']) == 0
    names = sorted(path.name for path in (tmp_path / 'demo').iterdir())
    assert names == ['demo.fits', 'demo_bgModel.fits', 'demo_bgPlot.png',
                     'demo_bgSubtracted.fits']
    out = capsys.readouterr().out
    match = re.search(r'matches the true background to \S+ RMS, ([\d.]+)% of', out)
    assert match and float(match.group(1)) < 15
    assert fits.getheader(tmp_path / 'demo' / 'demo_bgModel.fits')['OBJECT'] == \
        'astrobgopt demo'
    # A second run refuses to replace the first one's files.
    assert main(['--demo', '-o', str(tmp_path / 'demo'), '-e', '30', '--quiet']) == 1


def test_validate_subcommand_is_wired(capsys):
    assert main(['validate', '--help']) == 0
    assert 'astrobgopt validate' in capsys.readouterr().out


def test_seed_positional_output_directory(tmp_path, sky):
    """bgoptimizer's form: 'INPUT OUTPUT_PATH' with an existing directory."""
    fits.writeto(tmp_path / 'm1.fits', sky.image)
    (tmp_path / 'results').mkdir()
    assert main([str(tmp_path / 'm1.fits'), str(tmp_path / 'results'), *FAST]) == 0
    assert sorted(path.name for path in (tmp_path / 'results').iterdir()) == \
        ['m1_bgModel.fits', 'm1_bgSubtracted.fits']
