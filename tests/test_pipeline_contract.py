"""
The estimator inside a photometry pipeline (issue 14): the contract exactly
as such a pipeline uses it, photutils parity of the result, a quiet library.
"""

import concurrent.futures
import csv
import functools
import inspect
import multiprocessing
import os
import subprocess
import sys

import astropy.units as u
import matplotlib.pyplot as plt
import numpy as np
import pytest
from numpy.testing import assert_allclose
from photutils.background import Background2D
from photutils.segmentation import detect_sources

from astrobgopt import SplineOptBackground, SplineOptBackgroundResult
from astrobgopt.datasets import make_light_pollution_sky

# Seconds the pool may take (a forked worker starts a helper process that
# imports TensorFlow before its fit): a hang fails the test, not the run.
TIMEOUT = 300
NOISE = 0.002


@pytest.fixture(scope='module')
def sky():
    return make_light_pollution_sky((256, 256), noise_sigma=NOISE, nebula_amplitude=0,
                                    star_density=1e-3, seed=11)


def _frame_products(estimator, image, csv_path=None):
    """What the pipeline does with one frame; returns what it keeps."""
    bkg = estimator(image)
    subtracted = image - bkg.background
    again = bkg.background
    threshold = 5 * bkg.background_rms
    segments = detect_sources(subtracted, threshold, 5)  # npixels (n_pixels in photutils 3)
    row = [float(bkg.background_median), float(bkg.background_rms_median)]
    if csv_path is not None:
        with open(csv_path, 'w', newline='') as stream:
            csv.writer(stream).writerow(row)
    fig, ax = plt.subplots()
    ax.imshow(image, origin='lower')
    bkg.plot_meshes(ax=ax, outlines=True, marker='.', color='red', alpha=0.3)
    plt.close(fig)
    labels = np.zeros(image.shape, int) if segments is None else segments.data
    return again, labels, row


def _frame_products_in_byte_order(estimator, image_and_dtype):
    """`_frame_products` of an image in a dtype: made in the worker, since
    pickling (protocol 4, which pools use) makes a big-endian array native."""
    image, dtype = image_and_dtype
    return _frame_products(estimator, image.astype(dtype))


def _run_process_map(task, frames):
    """tqdm's process_map (a fork pool on Linux before Python 3.14) if
    available, else a multiprocessing fork pool, under the timeout."""
    try:
        from tqdm.contrib.concurrent import process_map
    except ImportError:
        with multiprocessing.get_context('fork').Pool(2) as pool:
            return pool.map_async(task, frames).get(timeout=TIMEOUT)
    with concurrent.futures.ThreadPoolExecutor(1) as runner:
        future = runner.submit(process_map, task, frames, max_workers=2, disable=True)
        try:
            return future.result(timeout=TIMEOUT)
        except concurrent.futures.TimeoutError:
            for process in multiprocessing.active_children():  # process_map's workers
                process.kill()
            raise


def test_the_pipeline_contract(sky, tmp_path):
    image = sky.image.astype(np.float64)
    estimator = SplineOptBackground()
    native = _frame_products(estimator, image, tmp_path / 'frame.csv')
    background, labels, row = native

    # The background is read twice: the same values.
    assert_allclose(estimator(image).background, background)
    assert_allclose(background, sky.background, atol=3 * NOISE)
    # The medians as numbers in the CSV.
    with open(tmp_path / 'frame.csv', newline='') as stream:
        assert [float(value) for value in next(csv.reader(stream))] == row
    # (The RMS's accuracy is the robustness suite's: here, its scale.)
    assert_allclose(row[0], np.median(sky.background), rtol=0.01)
    assert_allclose(row[1], NOISE, rtol=0.25)

    # Big-endian float64 (what fits.getdata returns) gives the same answer.
    swapped = _frame_products(estimator, image.astype('>f8'))
    assert_allclose(swapped[0], background, rtol=1e-6)
    assert_allclose(swapped[2], row, rtol=1e-5)

    # Other frames go to a fork pool, the estimator pickled in a partial,
    # after the fit above started TensorFlow in this process.
    results = _run_process_map(functools.partial(_frame_products_in_byte_order, estimator),
                               [(image, '<f8'), (image, '>f8')])
    for (got_background, got_labels, got_row), want in zip(results, (native, swapped)):
        np.testing.assert_array_equal(got_background, want[0])
        np.testing.assert_array_equal(got_labels, want[1])
        assert got_row == want[2]


def test_five_times_background_rms_finds_the_stars(sky):
    image = sky.image.astype(np.float64)
    _, labels, _ = _frame_products(SplineOptBackground(), image)
    assert np.mean(labels[sky.stars > 20 * NOISE] > 0) > 0.95
    assert np.mean(labels[sky.stars < 0.1 * NOISE] > 0) < 0.01


@pytest.fixture(scope='module')
def results(sky):
    """Ours and photutils' for the same float64 frame, with and without a unit."""
    image = sky.image.astype(np.float64)
    frames = {unit: image if unit is None else image * unit for unit in (None, u.adu)}
    return {unit: (SplineOptBackground()(frame), Background2D(frame, 16))
            for unit, frame in frames.items()}


ATTRIBUTES = ('background', 'background_rms', 'background_mesh', 'background_rms_mesh',
              'background_median', 'background_rms_median')


@pytest.mark.parametrize('unit', [None, u.adu])
def test_attributes_match_background2d(results, unit):
    ours, theirs = results[unit]
    for name in ATTRIBUTES:
        mine, reference = getattr(ours, name), getattr(theirs, name)
        assert type(mine) is type(reference), name
        assert np.ndim(mine) == np.ndim(reference), name
        assert np.asarray(mine).dtype == np.asarray(reference).dtype, name
        assert getattr(mine, 'unit', None) == getattr(reference, 'unit', None), name
        if np.ndim(mine) == 2 and name.startswith('background') and 'mesh' not in name:
            assert mine.shape == reference.shape, name
    # Both agree on the numbers (a smooth sky without nebula).
    assert_allclose(u.Quantity(ours.background_median).value,
                    u.Quantity(theirs.background_median).value, rtol=0.02)
    assert_allclose(u.Quantity(ours.background_rms_median).value,
                    u.Quantity(theirs.background_rms_median).value, rtol=0.25)


def test_plot_meshes_takes_photutils_keywords_with_their_meaning(results):
    ours, theirs = results[None]
    signature = inspect.signature(Background2D.plot_meshes).parameters
    mine = inspect.signature(SplineOptBackgroundResult.plot_meshes).parameters
    for name, parameter in signature.items():
        assert name in mine
        assert (mine[name].kind, mine[name].default) == (parameter.kind, parameter.default)
    for result in (ours, theirs):
        fig, ax = plt.subplots()
        result.plot_meshes(ax=ax, outlines=True, marker='.', markersize=30, color='red',
                           alpha=0.3, linewidth=2)
        markers = ax.collections[0]
        # markersize is matplotlib's s, in points**2, as given.
        assert_allclose(markers.get_sizes(), [30])
        assert_allclose(markers.get_facecolor()[0], [1, 0, 0, 0.3])
        outlines = ax.patches
        assert outlines and all(patch.get_linewidth() == 2 and patch.get_alpha() == 0.3
                                for patch in outlines)
        plt.close(fig)


def test_big_endian_input_keeps_its_precision(sky):
    result = SplineOptBackground(n_points=16, epochs=20)(sky.image.astype('>f8'))
    for name in ('background', 'background_rms', 'background_median'):
        value = np.asarray(getattr(result, name))
        assert value.dtype == np.float64 and value.dtype.isnative


QUIET_SCRIPT = """
import functools, multiprocessing
import numpy as np
import astrobgopt
from astrobgopt import SplineOptBackground
image = 1 + np.random.default_rng(0).normal(0, 0.01, (128, 160))
estimator = SplineOptBackground(n_points=16, epochs=30)
estimator(image).background_rms
with multiprocessing.get_context('fork').Pool(1) as pool:
    pool.map_async(functools.partial(estimator), [image]).get(timeout=240)
"""


def test_library_is_quiet_in_a_fresh_process_and_its_forked_workers():
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(('TF_', 'PYTHONWARNINGS'))}
    env['PYTHONPATH'] = os.pathsep.join(p for p in [os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), env.get('PYTHONPATH')] if p)
    done = subprocess.run([sys.executable, '-c', QUIET_SCRIPT], capture_output=True, text=True,
                          env=env, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ('', '')
