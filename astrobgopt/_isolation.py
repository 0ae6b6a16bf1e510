"""
Running the TensorFlow stage safely in a process forked after TensorFlow ran.

TensorFlow cannot run in a process forked after it started: its thread
pools exist in the parent only, and the child's first operation waits on
them forever. Pipelines fork process pools all the time (tqdm's
``process_map`` and ``multiprocessing`` fork by default on Linux before
Python 3.14), often after fitting a reference frame in the parent.

So a fork is detected with `os.register_at_fork`: a child that inherits an
imported TensorFlow runs every TensorFlow stage (`call`) in a helper process
that was not forked but started afresh (`astrobgopt._fitworker` in a new
interpreter with this process's import path; not ``multiprocessing``'s
spawn, which would re-import the user's script).
The helper talks pickle over pipes, stays alive for the child's later
calls, keeps its output (TensorFlow's start-up log) to itself unless it
fails, and ends when the child does. Everything else (evaluating the model,
the RMS map) stays in the child, in NumPy.
"""

import atexit
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import warnings

from ._startup import load_numerical_core

__all__ = ['call', 'fit_needs_helper', 'import_core']

# Bytes of the helper's held output quoted when it fails.
_OUTPUT_TAIL = 4000
# Seconds a helper may take to end after its input closes.
_CLOSE_SECONDS = 5


class _State:
    """Per-process state; a forked child resets it (see `_after_fork_in_child`)."""

    def __init__(self, tainted=False):
        self.tainted = tainted
        self.helper = None
        self.lock = threading.Lock()


_state = _State()


def _after_fork_in_child():
    global _state
    helper = _state.helper
    if helper is not None:
        # The parent's pipes: close this process's copies only, so that the
        # parent's helper still ends when the parent does.
        for stream in (helper.process.stdin, helper.process.stdout, helper.output):
            stream.close()
    _state = _State(tainted=_state.tainted or 'tensorflow' in sys.modules)


os.register_at_fork(after_in_child=_after_fork_in_child)


def fit_needs_helper():
    """Whether this process was forked after TensorFlow was imported."""
    return _state.tainted


class _Helper:
    """An `astrobgopt._fitworker` process and its pipes."""

    def __init__(self):
        # This process's import path, so that the helper imports the same
        # astrobgopt (and whatever the pickled arguments need).
        code = (f'import sys; sys.path[:] = {sys.path!r}; '
                f'from {__package__}._fitworker import main; main()')
        self.output = tempfile.TemporaryFile()
        self.process = subprocess.Popen([sys.executable, '-c', code], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.output)
        self.owner = os.getpid()
        atexit.register(self.close)

    def call(self, func, args, kwargs):
        # Pickled before anything is written: an argument that does not
        # pickle leaves the pipe clean.
        request = pickle.dumps((func, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.process.stdin.write(request)
            self.process.stdin.flush()
            return pickle.load(self.process.stdout)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            self.close()
            self.output.seek(max(0, self.output.seek(0, os.SEEK_END) - _OUTPUT_TAIL))
            tail = self.output.read().decode(errors='replace')
            raise RuntimeError(
                f'the fit helper process (needed because this process was forked after '
                f'TensorFlow started) failed with exit status {self.process.returncode}; its '
                f'output ends:\n{tail}') from exc

    def close(self):
        """End the helper (its input closed, then killed if it lingers)."""
        if os.getpid() != self.owner or self.process.returncode is not None:
            return
        try:
            self.process.stdin.close()
            self.process.wait(timeout=_CLOSE_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()


def import_core():
    """
    Import TensorFlow without its native start-up log (once), unless this
    process was forked after it started (then it is imported already, and
    finding its device would run it).
    """
    if not _state.tainted:
        load_numerical_core()


def call(func, *args, **kwargs):
    """
    ``func(*args, **kwargs)`` for a function that runs TensorFlow.

    In a process forked after TensorFlow was imported, the call runs in the
    helper process (``func``, its arguments and its result travel pickled;
    warnings it raises are raised again here); elsewhere it runs here, the
    first time after importing TensorFlow without its native start-up log.
    """
    if not _state.tainted:
        import_core()
        return func(*args, **kwargs)
    with _state.lock:
        if _state.helper is None:
            _state.helper = _Helper()
        try:
            succeeded, value, caught = _state.helper.call(func, args, kwargs)
        except (RuntimeError, KeyboardInterrupt):
            # Dead, or interrupted with its reply unread: the next call
            # starts a new one.
            _state.helper.close()
            _state.helper = None
            raise
    for message in caught:
        warnings.warn(message, stacklevel=2)
    if not succeeded:
        raise value
    return value
