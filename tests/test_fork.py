"""
Fork safety: the estimators in process pools started after TensorFlow ran
in the parent (issue 14). TensorFlow hangs in a forked child, so every pool
call has a timeout: a hang fails the test instead of the run.
"""

import concurrent.futures
import functools
import multiprocessing
import os
import warnings

import numpy as np
import pytest

from astrobgopt import SplineOptBackground, SplineOptInterpolator, _isolation, subtract_background
from astrobgopt.datasets import make_light_pollution_sky

# Seconds a pool call may take: a helper process imports TensorFlow (several
# seconds on a loaded machine) before its first fit.
TIMEOUT = 240


@pytest.fixture(scope='module')
def image():
    return make_light_pollution_sky((96, 128), seed=3).image


@pytest.fixture(scope='module')
def estimator():
    return SplineOptBackground(n_points=16, epochs=40, downscale_factor=4)


@pytest.fixture(scope='module')
def parent_background(estimator, image):
    # The fit in the parent starts TensorFlow before any pool forks.
    return estimator(image).background


def _background(estimator, image):
    result = estimator(image)
    return result.background, result.meta['device'], _isolation.fit_needs_helper()


def _other_entry_points(image):
    from astropy.nddata import CCDData

    interpolated, _ = SplineOptInterpolator(n_points=9, epochs=20).interpolate(
        image[::8, ::8], shape=image.shape, box_size=8)
    ccd = subtract_background(CCDData(image, unit='adu'), n_points=16, epochs=20,
                              downscale_factor=4)
    return interpolated, ccd.data


def _helper_pid_and_replays():
    """Calls through the helper of a tainted child: two, a warning, an error,
    the helper's death and one more."""
    pids = [_isolation.call(os.getpid) for _ in range(2)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        _isolation.call(warnings.warn, 'from the helper', UserWarning)
    try:
        _isolation.call(int, 'not a number')
    except ValueError as exc:
        error = str(exc)
    try:  # the helper dies: an error that says so, and a new helper next time
        _isolation.call(os._exit, 3)
    except RuntimeError as exc:
        death = str(exc)
    pids.append(_isolation.call(os.getpid))
    return pids, os.getpid(), [str(item.message) for item in caught], error, death


@pytest.mark.parametrize('method', ['fork', 'forkserver', 'spawn'])
def test_pool_after_fit_in_parent_gives_the_parents_result(
        method, estimator, image, parent_background):
    task = functools.partial(_background, estimator)
    with multiprocessing.get_context(method).Pool(2) as pool:
        results = pool.map_async(task, [image, image]).get(timeout=TIMEOUT)
    for background, device, needed_helper in results:
        np.testing.assert_array_equal(background, parent_background)
        assert device == 'CPU' or device.startswith('GPU (')
        # Only a forked child inherits TensorFlow and needs the helper.
        assert needed_helper == (method == 'fork')


def test_concurrent_futures_fork_pool_interpolator_and_ccd(image, parent_background):
    expected = _other_entry_points(image)
    executor = concurrent.futures.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context('fork'))
    try:
        result = executor.submit(_other_entry_points, image).result(timeout=TIMEOUT)
    finally:
        processes = list(executor._processes.values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:  # a hung worker would block shutdown
            process.kill()
    for got, want in zip(result, expected):
        np.testing.assert_array_equal(got, want)


def test_helper_serves_a_child_for_its_lifetime_and_replays_warnings_and_errors(
        parent_background):
    with multiprocessing.get_context('fork').Pool(1) as pool:
        pids, child_pid, messages, error, death = pool.apply_async(
            _helper_pid_and_replays).get(timeout=TIMEOUT)
    assert pids[0] == pids[1] != child_pid
    assert messages == ['from the helper']
    assert 'not a number' in error
    assert 'exit status 3' in death
    assert pids[2] not in (pids[0], child_pid)


def test_a_process_that_was_not_forked_runs_the_fit_itself(parent_background):
    assert not _isolation.fit_needs_helper()
    assert _isolation.call(os.getpid) == os.getpid()
