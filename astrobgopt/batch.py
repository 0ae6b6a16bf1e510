"""
Background removal for many image files in parallel.

`process_batch` runs the per-file pipeline (`astrobgopt.frame.process_file`)
on many files, on local worker processes or an existing Dask cluster, one
task per frame, and returns a summary table in which a failed frame is a row,
not an exception.
"""

import contextlib
import dataclasses
import glob
import math
import os
import signal
import threading
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

from .frame import (_OUTPUT_STEM_SUFFIXES, FrameOptions, _check_outputs, _process, _split_name,
                    check_input, check_output_dir, output_paths, remove_incomplete_outputs)

__all__ = ['process_batch', 'expand_inputs', 'error_message']

# Columns of the batch summary table.
_SUMMARY_COLUMNS = ('file', 'status', 'seconds', 'residual_rms', 'message')


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


@contextlib.contextmanager
def _workers_ignore_ctrl_c():
    """
    Start processes that ignore SIGINT. Ctrl-C reaches the whole process
    group; the workers inherit the ignored signal (Python leaves an ignored
    SIGINT alone), so that this process alone stops, and stops them.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)


def _run_on_dask(jobs, output_dir, options, *, workers, scheduler, client, on_result):
    """Run `_run_frame` on every job, one Dask task each; rows in job order."""
    import logging

    from dask.distributed import Client, LocalCluster, as_completed
    from distributed.utils import silence_logging_cmgr

    from ._startup import load_numerical_core

    with contextlib.ExitStack() as stack:
        # Entered first, so closed last: what it holds outlives the cluster.
        on_interrupt = stack.enter_context(contextlib.ExitStack())
        if client is None and scheduler is not None:
            client = stack.enter_context(Client(scheduler))
        elif client is None:
            n_workers = min(workers or _cpu_count(), len(jobs))
            with _workers_ignore_ctrl_c():
                cluster = stack.enter_context(LocalCluster(
                    n_workers=n_workers, processes=True, threads_per_worker=1,
                    # Any free port: with another cluster on 8787 the default warns.
                    dashboard_address=':0', silence_logs=logging.ERROR,
                    env=_worker_environment(n_workers)))
            client = stack.enter_context(Client(cluster))
            # Our workers share this terminal's stderr: keep TensorFlow's
            # start-up log off it, as the command line does.
            client.run(load_numerical_core)
        # Absolute paths: remote workers need not share our working directory.
        futures = {client.submit(_run_frame, str(path.resolve()), str(output_dir.resolve()),
                                 options, pure=False): path for path in jobs}
        rows = {}
        try:
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
        except KeyboardInterrupt:
            # Closing mid-task, the scheduler logs the tasks it drops as
            # errors; the caller says "interrupted" once.
            on_interrupt.enter_context(silence_logging_cmgr(logging.CRITICAL))
            raise
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
        Local worker processes, a positive integer (default: one per core,
        at most one per frame). Unlike joblib, -1 does not mean all cores:
        values below 1 are refused.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); its
        workers need astrobgopt installed.
    client : `dask.distributed.Client`, optional
        A client to submit to (a notebook's own cluster); it is not closed.
    on_result : callable, optional
        Called with each frame's row (a dict) as soon as it is done.
    **options
        Keyword options of each frame, see `~astrobgopt.frame.FrameOptions`
        and `~astrobgopt.frame.process_file`. Progress bars are off on workers.

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
    FileNotFoundError, FileExistsError, NotADirectoryError, ValueError, TypeError
        Before any frame is processed: a missing or unsupported input, a
        pattern that matches nothing, outputs that exist, collide or would
        replace an input, an ``output_dir`` that is a file, or ``workers``
        below 1.

    Examples
    --------
    >>> from astrobgopt.batch import process_batch
    >>> summary = process_batch('lights/*.fits', 'out', workers=4,
    ...                         estimator_options={'n_points': 64})  # doctest: +SKIP
    >>> summary[summary['status'] == 'failed']  # doctest: +SKIP
    """
    from astropy.table import Table

    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)):
            raise TypeError(f'workers must be a positive integer or None; got {workers!r}')
        if workers < 1:
            raise ValueError(f'workers must be a positive integer (None: one per core); '
                             f'got {workers}')
    frame_options = FrameOptions(**options)
    output_dir = Path(output_dir)
    check_output_dir(output_dir)
    jobs = expand_inputs(inputs)
    if not jobs:
        raise ValueError('no input files')
    for path in jobs:
        check_input(path)
    plan = {path: output_paths(path, output_dir, options=frame_options) for path in jobs}
    _check_outputs(plan, frame_options.overwrite)
    output_dir.mkdir(parents=True, exist_ok=True)

    try:
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
    except KeyboardInterrupt:
        # The workers are stopped by now: what they left half-written goes.
        for targets in plan.values():
            remove_incomplete_outputs(targets)
        raise

    summary = Table(rows=[[row[name] for name in _SUMMARY_COLUMNS] for row in rows],
                    names=_SUMMARY_COLUMNS, dtype=[str, str, float, float, str])
    summary['file'].format = summary['message'].format = '<'
    summary['seconds'].format = '.1f'
    summary['residual_rms'].format = '.4g'
    summary.meta['tracebacks'] = {row['file']: row['traceback'] for row in rows
                                  if row['traceback']}
    summary.meta['warnings'] = {row['file']: row['warnings'] for row in rows if row['warnings']}
    return summary
