"""Tests of astrobgopt.batch, .frame and .points: frames, output policy, sample points and
Dask batches."""

import math
import os
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest
from astropy.io import fits
from dask.distributed import LocalCluster

from astrobgopt.batch import expand_inputs, process_batch
from astrobgopt.frame import FrameOptions, output_paths, process_file
from astrobgopt.points import read_points, sample_points
from astrobgopt.datasets import make_light_pollution_sky

SHAPE = (200, 300)
FAST = {'epochs': 30, 'progress': False}


@pytest.fixture(scope='module')
def starfield():
    return make_light_pollution_sky(SHAPE, seed=2, nebula_amplitude=0.0)


@pytest.mark.slow  # starts Dask worker processes, each importing TensorFlow
def test_batch_on_local_cluster_reports_broken_file(tmp_path, starfield):
    """Three frames on a two-worker LocalCluster; the broken one fails alone."""
    for index in range(2):
        fits.writeto(tmp_path / f'light_{index}.fits', starfield.image * (1 + 0.1 * index))
    (tmp_path / 'light_2.fits').write_bytes(b'this is not a FITS file' * 100)
    rows = []
    summary = process_batch(str(tmp_path / 'light_*.fits'), tmp_path / 'out', workers=2,
                            on_result=rows.append, estimator_options=FAST,
                            report=str(tmp_path / 'reports' / '{name}.json'))
    assert list(summary.colnames) == ['file', 'status', 'seconds', 'residual_rms', 'message']
    assert [os.path.basename(name) for name in summary['file']] == \
        ['light_0.fits', 'light_1.fits', 'light_2.fits']
    assert list(summary['status']) == ['ok', 'ok', 'failed']
    assert 'could not read fits file' in summary['message'][2]
    assert 'Traceback' in summary.meta['tracebacks'][str(tmp_path / 'light_2.fits')]
    assert math.isnan(summary['residual_rms'][2])
    # The residual RMS is the pixel noise (the second frame is 10% brighter).
    noise = starfield.noise_sigma
    assert summary['residual_rms'][0] == pytest.approx(noise, rel=0.25)
    assert summary['residual_rms'][1] == pytest.approx(1.1 * noise, rel=0.25)
    assert np.all(summary['seconds'] > 0)
    assert len(rows) == 3
    for index in range(2):
        for suffix in ('_bgSubtracted', '_bgModel'):
            assert (tmp_path / 'out' / f'light_{index}{suffix}.fits').is_file()
        assert (tmp_path / 'reports' / f'light_{index}.json').is_file()
    assert not (tmp_path / 'out' / 'light_2_bgModel.fits').exists()
    # A second pass is refused before any work: outputs exist.
    with pytest.raises(FileExistsError, match='already exists'):
        process_batch(str(tmp_path / 'light_*.fits'), tmp_path / 'out', workers=2)


@pytest.mark.slow  # starts Dask worker processes, each importing TensorFlow
def test_cli_batch_on_a_running_scheduler(tmp_path, starfield):
    """``--scheduler``: the command submits to a cluster it did not start."""
    for index in range(2):
        fits.writeto(tmp_path / f'light_{index}.fits', starfield.image)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        run = subprocess.run(
            [sys.executable, '-m', 'astrobgopt.cli', 'light_*.fits', '-o', 'out', '-e', '30',
             '--scheduler', cluster.scheduler_address],
            cwd=tmp_path, capture_output=True, text=True, timeout=300)
        prefixes = cluster.scheduler.task_prefixes
    assert run.returncode == 0, run.stderr
    assert '[2/2]' in run.stdout
    for index in range(2):
        model = fits.getdata(tmp_path / 'out' / f'light_{index}_bgModel.fits')
        assert np.std(model - starfield.background) < 0.5 * starfield.noise_sigma
    # The frames were computed on this cluster (Dask drops the underscore
    # of _run_frame from the task prefix).
    assert prefixes['run_frame'].state_counts['memory'] == 2


def frame_sets(directory):
    """The names left in ``directory``, and the frames with only some of their outputs."""
    names = sorted(path.name for path in directory.iterdir())
    stems = {name.split('_bg')[0] for name in names}
    partial = [stem for stem in stems if not {f'{stem}_bgModel.fits',
                                              f'{stem}_bgSubtracted.fits'} <= set(names)]
    return names, partial


@pytest.mark.slow
def test_ctrl_c_during_a_batch_is_one_line_and_leaves_no_partial_outputs(tmp_path):
    # Finding B5: Ctrl-C printed 75 lines with 5 Dask tracebacks. Ctrl-C
    # signals the terminal's whole process group: so does this test. Frames
    # the workers finish while the cluster closes are whole and kept: with
    # 12 of them (0.2 s each on 2 workers) some are still to do.
    for index in range(12):
        sky = make_light_pollution_sky((600, 900), seed=index)
        fits.writeto(tmp_path / f'light_{index}.fits', sky.image)
    process = subprocess.Popen(
        [sys.executable, '-m', 'astrobgopt.cli', 'light_*.fits', '-o', 'out', '--workers', '2'],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        first = process.stdout.readline()  # a frame is done, others are under way
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert first.startswith('[1/12] '), stderr
    assert process.returncode == 130
    assert stderr.splitlines() == ['astrobgopt: interrupted']
    names, partial = frame_sets(tmp_path / 'out')
    assert partial == [] and 1 <= len(names) // 2 < 12
    assert not [name for name in names if name.startswith('.')]  # temporaries or markers


_KILLED_DURING_THE_MODEL_WRITE = """
import os, sys
import astrobgopt.frame as frame
write = frame.write_image
def write_then_die(path, *args, **kwargs):
    if 'bgModel' in str(path):
        os._exit(9)
    return write(path, *args, **kwargs)
frame.write_image = write_then_die
frame.process_file(sys.argv[1], 'out', estimator_options={'epochs': 30, 'progress': False})
"""


def test_rerun_after_a_crash_replaces_the_incomplete_set(tmp_path, starfield):
    # Leftovers: after a kill during the model write, a rerun refused to
    # replace the subtracted image.
    fits.writeto(tmp_path / 'light.fits', starfield.image)
    crash = subprocess.run([sys.executable, '-c', _KILLED_DURING_THE_MODEL_WRITE, 'light.fits'],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert crash.returncode == 9, crash.stderr
    assert (tmp_path / 'out' / 'light_bgSubtracted.fits').exists()
    assert not (tmp_path / 'out' / 'light_bgModel.fits').exists()
    process_file(tmp_path / 'light.fits', tmp_path / 'out', estimator_options=FAST)
    names, partial = frame_sets(tmp_path / 'out')
    assert names == ['light_bgModel.fits', 'light_bgSubtracted.fits'] and partial == []
    model = fits.getdata(tmp_path / 'out' / 'light_bgModel.fits')
    assert np.std(model - starfield.background) < 0.5 * starfield.noise_sigma
    # The set is complete now: a third run needs overwrite.
    with pytest.raises(FileExistsError, match='already exists'):
        process_file(tmp_path / 'light.fits', tmp_path / 'out', estimator_options=FAST)


def test_a_failed_write_leaves_no_partial_set(tmp_path, starfield, monkeypatch):
    import astrobgopt.frame as frame

    fits.writeto(tmp_path / 'light.fits', starfield.image)
    write = frame.write_image

    def write_then_fail(path, *args, **kwargs):
        if 'bgModel' in str(path):
            raise OSError('No space left on device')
        return write(path, *args, **kwargs)

    monkeypatch.setattr(frame, 'write_image', write_then_fail)
    with pytest.raises(OSError, match='No space left'):
        process_file(tmp_path / 'light.fits', tmp_path / 'out', estimator_options=FAST)
    assert list((tmp_path / 'out').iterdir()) == []


def test_expand_inputs(tmp_path):
    for name in ('b.fits', 'a.fits', 'a_bgModel.fits', 'a_bgSubtracted.fits', 'x[1].tif'):
        (tmp_path / name).touch()
    pattern = str(tmp_path / '*.fits')
    # Sorted, without earlier outputs, duplicates dropped.
    assert expand_inputs([pattern, str(tmp_path / 'a.fits')]) == \
        [tmp_path / 'a.fits', tmp_path / 'b.fits']
    # An existing name is taken literally even if it looks like a pattern.
    assert expand_inputs(str(tmp_path / 'x[1].tif')) == [tmp_path / 'x[1].tif']
    with pytest.raises(FileNotFoundError, match='no file matches'):
        expand_inputs(str(tmp_path / '*.xisf'))


def test_output_paths_and_templates(tmp_path):
    paths = output_paths('raw/m42.fits.gz', tmp_path)
    assert paths == {'subtracted': tmp_path / 'm42_bgSubtracted.fits.gz',
                     'model': tmp_path / 'm42_bgModel.fits.gz'}
    options = FrameOptions(plot='figs/{name}-fit.png', report=f'{tmp_path}/')
    paths = output_paths('m42.xisf', 'out', options=options)
    assert paths['plot'].as_posix() == 'figs/m42-fit.png'
    assert paths['report'] == tmp_path / 'm42_bgReport.json'
    preview = output_paths('m42.tif', 'out', options=FrameOptions(preview=True))
    assert set(preview) == {'plot'} and preview['plot'].name == 'm42_bgPreview.png'


def test_batch_refuses_colliding_outputs(tmp_path):
    for folder in ('night1', 'night2'):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / 'm42.fits').touch()
    with pytest.raises(ValueError, match='would both write'):
        process_batch([tmp_path / 'night1' / 'm42.fits', tmp_path / 'night2' / 'm42.fits'],
                      tmp_path / 'out')
    # One report file for two frames.
    (tmp_path / 'night1' / 'm43.fits').touch()
    with pytest.raises(ValueError, match="would both write '.*one.json'"):
        process_batch(str(tmp_path / 'night1' / '*.fits'), tmp_path / 'out',
                      report=str(tmp_path / 'one.json'))


def test_read_points_isolines_and_errors(tmp_path):
    path = tmp_path / 'points.txt'
    path.write_text('# background samples\n100 250\n750, 600\n200 400\n-300 -360\n'
                    '-0 -310  # an isoline point on the border column\n800 720\n')
    points, source = read_points(path)
    assert points.tolist() == [[100, 250], [750, 600], [200, 400], [300, 360], [0, 310],
                               [800, 720]]
    assert source.tolist() == [0, 1, 2, 2, 2, 5]
    for text, message in (('-5 -5\n', 'needs a sample point'), ('5 -5\n', 'both coordinates'),
                          ('5 5 5\n', 'expected two numbers'), ('# nothing\n', 'holds no')):
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            read_points(path)


def test_sample_points_gaussian_mean_skips_masked_pixels():
    image = np.full((60, 80, 2), 3.0)
    image[:, 40:] = 7.0
    weights = np.ones((60, 80))
    values, n_effective = sample_points(image, weights, np.array([[20.0, 30.0]]), sigma=4)
    assert values[0] == pytest.approx([3.0, 3.0])
    # A Gaussian averages about 4 pi sigma^2 pixels.
    assert n_effective[0] == pytest.approx(4 * np.pi * 16, rel=0.05)
    # On the step the mean is half-way, unless one side is masked.
    values, _ = sample_points(image, weights, np.array([[39.5, 30.0]]), sigma=4)
    assert values[0, 0] == pytest.approx(5.0, abs=0.01)
    weights[:, 40:] = 0
    values, _ = sample_points(image, weights, np.array([[39.5, 30.0]]), sigma=4)
    assert values[0, 0] == pytest.approx(3.0)
    with pytest.raises(ValueError, match='only masked pixels'):
        sample_points(image, weights, np.array([[75.0, 30.0]]), sigma=2)
    with pytest.raises(ValueError, match='outside the image'):
        sample_points(image, weights, np.array([[80.0, 30.0]]), sigma=2)


def write_adu_frame(path, starfield, *, bias):
    adu = np.round(starfield.image * 20000 + bias).astype(np.uint16)
    fits.writeto(path, adu)
    return adu


@pytest.mark.parametrize('pedestal', ['median', 'minimum', 0.0, 1000.0])
def test_pedestal_policies(tmp_path, starfield, pedestal):
    data = write_adu_frame(tmp_path / 'frame.fits', starfield, bias=500)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        report = process_file(tmp_path / 'frame.fits', tmp_path, pedestal=pedestal,
                              estimator_options=FAST)
    model = fits.getdata(tmp_path / 'frame_bgModel.fits').astype(float)
    result = fits.getdata(tmp_path / 'frame_bgSubtracted.fits')
    assert result.dtype == np.uint16
    expected_level = {'median': np.median(model), 'minimum': model.min()}.get(pedestal, pedestal)
    assert report['level'][0] == pytest.approx(expected_level, abs=1)
    if pedestal == 0.0:
        # Half the sky noise is below zero: clipped to 0 (never wrapped to
        # 65535) and reported.
        assert result.max() < 30000 and np.mean(result == 0) > 0.3
        assert report['clipped_pixels'] == pytest.approx(np.sum(data - model < -0.5), rel=0.01)
        assert any('clipped' in str(warning.message) for warning in caught)
    else:
        assert report['clipped_pixels'] == 0
        assert np.allclose(result, data - model + expected_level, atol=1.01)


def test_divide_removes_vignetting(tmp_path):
    y, x = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    vignetting = 1 - 0.3 * ((x / SHAPE[1] - 0.5) ** 2 + (y / SHAPE[0] - 0.5) ** 2) / 0.5
    rng = np.random.default_rng(3)
    flat_sky = 0.2 * (1 + 0.01 * rng.standard_normal(SHAPE))
    fits.writeto(tmp_path / 'vignetted.fits', (flat_sky * vignetting).astype(np.float32))
    report = process_file(tmp_path / 'vignetted.fits', tmp_path, divide=True,
                          estimator_options=FAST)
    result = fits.getdata(tmp_path / 'vignetted_bgSubtracted.fits')
    assert report['mode'] == 'divide'
    # The corrected frame is flat at the model's median, with the noise kept
    # proportional (1%), not the 30% vignetting.
    assert np.std(result) / np.mean(result) < 0.012
    assert np.mean(result) == pytest.approx(report['level'][0], rel=0.01)
    assert 'mode=divide' in fits.getheader(tmp_path / 'vignetted_bgSubtracted.fits')['BGOPTPAR']


def test_mask_file_soft_and_integer(tmp_path, starfield):
    """A mask keeps a bright blob out of the fit; float masks in [0, 1] are weights."""
    y, x = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    blob = 0.05 * np.exp(-0.5 * ((x - 150) ** 2 + (y - 100) ** 2) / 15 ** 2)
    image = (starfield.image + blob).astype(np.float32)
    fits.writeto(tmp_path / 'blob.fits', image)
    covered = blob > 0.02 * blob.max()
    fits.writeto(tmp_path / 'mask_int.fits', covered.astype(np.uint8) * 255)
    fits.writeto(tmp_path / 'mask_soft.fits', covered.astype(np.float32))
    fits.writeto(tmp_path / 'mask_bad.fits', covered.astype(np.float32) * 2)
    options = {'estimator_options': {**FAST, 'mask_extended': False}}
    errors = {}
    for name in ('int', 'soft', 'none'):
        mask = None if name == 'none' else tmp_path / f'mask_{name}.fits'
        process_file(tmp_path / 'blob.fits', tmp_path / name, mask=mask, **options)
        errors[name] = fits.getdata(tmp_path / name / 'blob_bgModel.fits')[100, 150] - \
            starfield.background[100, 150]
    assert errors['int'] == pytest.approx(errors['soft'])
    assert abs(errors['int']) < 0.02 * blob.max()
    assert abs(errors['int']) < 0.5 * abs(errors['none'])
    with pytest.raises(ValueError, match=r"mask_bad.fits' values must lie in \[0, 1\]"):
        process_file(tmp_path / 'blob.fits', tmp_path / 'bad', mask=tmp_path / 'mask_bad.fits',
                     **options)


def test_frame_options_validation(tmp_path):
    with pytest.raises(ValueError, match='points_only needs a points file'):
        FrameOptions(points_only=True)
    with pytest.raises(FileNotFoundError, match="mask file 'nope.fits' does not exist"):
        FrameOptions(mask='nope.fits')
    with pytest.raises(ValueError, match='pedestal must be one of'):
        FrameOptions(pedestal='high')
    with pytest.raises(ValueError, match='n_points'):
        FrameOptions(estimator_options={'n_points': 2})


@pytest.mark.parametrize('workers, error', [
    (0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_workers_below_one_are_refused_at_once(tmp_path, workers, error):
    # Finding B4: workers=-1 hung at 0 % CPU.
    fits.writeto(tmp_path / 'a.fits', np.ones((20, 30), np.float32))
    fits.writeto(tmp_path / 'b.fits', np.ones((20, 30), np.float32))
    with pytest.raises(error, match='workers must be a positive integer'):
        process_batch([tmp_path / 'a.fits', tmp_path / 'b.fits'], tmp_path, workers=workers)
    assert sorted(path.name for path in tmp_path.iterdir()) == ['a.fits', 'b.fits']


def test_output_dir_naming_a_file_is_refused(tmp_path):
    fits.writeto(tmp_path / 'a.fits', np.ones((20, 30), np.float32))
    (tmp_path / 'out').write_text('')
    with pytest.raises(NotADirectoryError, match="'.*out' is an existing file: name a dir"):
        process_batch(tmp_path / 'a.fits', tmp_path / 'out')
    with pytest.raises(NotADirectoryError, match='is an existing file'):
        process_file(tmp_path / 'a.fits', tmp_path / 'out')


def test_regions_are_masked_in_preview(tmp_path, starfield):
    fits.writeto(tmp_path / 'frame.fits', starfield.image)
    # ds9 pixel coordinates are 1-based: a circle of radius 40 around (150, 100).
    (tmp_path / 'hole.reg').write_text('image\ncircle(151,101,40)\n')
    report = process_file(tmp_path / 'frame.fits', tmp_path, preview=True,
                          regions=tmp_path / 'hole.reg')
    assert report['masked_fraction'] == pytest.approx(np.pi * 40 ** 2 / np.prod(SHAPE),
                                                      rel=0.02)
    assert (tmp_path / 'frame_bgPreview.png').is_file()


def test_points_join_the_block_samples(tmp_path, starfield):
    fits.writeto(tmp_path / 'frame.fits', starfield.image)
    (tmp_path / 'points.txt').write_text('50 50\n250 150\n-250 -50\n')
    report = process_file(tmp_path / 'frame.fits', tmp_path, points=tmp_path / 'points.txt',
                          estimator_options=FAST)
    assert 'points=points.txt' in fits.getheader(tmp_path / 'frame_bgModel.fits')['BGOPTPAR']
    # Block samples still constrain the whole frame: 32 control points, a
    # model that follows the true background.
    assert report['fit']['n_control_points'] == 32
    model = fits.getdata(tmp_path / 'frame_bgModel.fits')
    assert np.std(model - starfield.background) < 0.1 * np.std(starfield.background)


def test_points_mode_goes_through_the_estimator_stages(tmp_path, starfield):
    """Points mode gets the estimator's checks: an image too small for its blocks fails."""
    fits.writeto(tmp_path / 'small.fits', starfield.image[:30, :30])
    (tmp_path / 'points.txt').write_text('5 5\n25 5\n5 25\n25 25\n15 15\n10 20\n20 10\n')
    with pytest.raises(ValueError, match='too small for downscale factor 20'):
        process_file(tmp_path / 'small.fits', tmp_path, points=tmp_path / 'points.txt',
                     points_only=True, estimator_options={**FAST, 'downscale_factor': 20})


def test_fits_provenance_holds_the_full_estimator_repr(tmp_path, starfield):
    fits.writeto(tmp_path / 'frame.fits', starfield.image)
    options = {**FAST, 'threshold_max': 5.0, 'mask_extended': False, 'n_points': 9}
    report = process_file(tmp_path / 'frame.fits', tmp_path, estimator_options=options)
    header = fits.getheader(tmp_path / 'frame_bgModel.fits')['BGOPTPAR']
    assert report['fit']['estimator'] in header
    for given in ('threshold_max=5.0', 'mask_extended=False', 'n_points=9',
                  'delinearization_quantile=0.95'):
        assert given in header
