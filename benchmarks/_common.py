"""Helpers shared by the benchmark scripts: timing, memory, scores, tables."""
import os
import subprocess
import sys
import threading
import time
import warnings

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import numpy as np  # noqa: E402


def timed(func, *args, repeat=1, **kwargs):
    """
    Return (result, wall seconds) of a call: the median over ``repeat``
    calls, since a shared machine's speed drifts from one call to the next.
    """
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = func(*args, **kwargs)
        seconds.append(time.perf_counter() - start)
    return result, float(np.median(seconds))


class PeakMemory:
    """
    Peak resident memory above the level at entry, sampled every 5 ms.

    The process's lifetime peak (``ru_maxrss``) is useless here: importing
    TensorFlow peaks higher than a fit does, so it is sampled instead.
    """

    def __enter__(self):
        import psutil

        self._process = psutil.Process()
        self.baseline = self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(0.005)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def increase(self):
        """Bytes above the level at entry."""
        return self.peak - self.baseline


def run_isolated(module_function, *args):
    """
    Run ``module_function(*args)`` in a fresh Python process and return what
    it prints on its last line, parsed as a Python literal.

    Memory peaks are per process, so each measurement gets its own.
    """
    module, function = module_function.rsplit('.', 1)
    code = (f'import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); '
            f'import {module}; print(repr({module}.{function}(*{args!r})))')
    output = subprocess.run([sys.executable, '-c', code], check=True, capture_output=True,
                            text=True).stdout
    return eval(output.strip().splitlines()[-1])  # our own repr of numbers and strings


def background2d(data, box_size, **kwargs):
    """photutils Background2D, silencing only its deprecation of ``interpolator=``."""
    from photutils.background import Background2D

    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*interpolator.*')
        return Background2D(data, box_size, **kwargs)


def offset_free_rms(background, truth):
    """RMS of (background - truth) after removing the constant offset."""
    residual = np.asarray(background, dtype=np.float64) - truth
    return float(np.std(residual))


def print_table(title, header, rows):
    """Print an aligned plain-text table."""
    print(f'\n{title}')
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    for row in [header] + rows:
        print('  '.join(str(cell).rjust(width) for cell, width in zip(row, widths)))
