"""
Loading the numerical core (TensorFlow) without its native start-up log.

TensorFlow's C++ runtime writes lines such as "Could not find cuda drivers
on your machine" or "failed call to cuInit" straight to file descriptor 2
when it is imported, before ``TF_CPP_MIN_LOG_LEVEL`` takes effect (TensorFlow
2.21). On a CPU-only machine they are normal, but to an astrophotographer
running the command line they read as errors.
"""

import contextlib
import gc
import importlib
import os
import sys
import tempfile

__all__ = ['load_numerical_core', 'import_tensorflow', 'native_log_held']

# Set by ``load_numerical_core(show_log=True)`` (the command line's --debug).
_show_native_log = False


def load_numerical_core(*, show_log=False):
    """
    Import the numerical core and find its device now, holding back
    TensorFlow's native log.

    The log is written to stderr after all if the import fails, or at once
    with ``show_log=True``. Once imported, later imports are free, so the
    command line and each batch worker call this first.

    Parameters
    ----------
    show_log : bool, optional
        Let the native log through (``--debug``).

    Returns
    -------
    device : str
        ``'CPU'`` or ``'GPU (name)'``, see `astrobgopt.optimize.compute_device`.
    """
    global _show_native_log
    _show_native_log = _show_native_log or show_log
    importing = 'tensorflow' not in sys.modules
    device = importlib.import_module('.optimize', __package__).compute_device()
    # The rest of the core: SciPy's image filters (extended-object masking,
    # the RMS map), half a second to import that would land on the first fit,
    # and the handle on NumPy's BLAS threads.
    importlib.import_module('scipy.ndimage')
    importlib.import_module('.spline', __package__).blas_controller()
    if importing:
        # Importing TensorFlow leaves some 400,000 new objects for Python's
        # collector, whose first full pass over them (0.17 s) otherwise falls
        # in the first fit: it is part of the import's cost, paid here.
        gc.collect()
    return device


def import_tensorflow():
    """TensorFlow, imported the first time with its native log held back."""
    if 'tensorflow' not in sys.modules:
        with native_log_held():
            importlib.import_module('tensorflow')
    return sys.modules['tensorflow']


def native_log_held():
    """
    A context in which TensorFlow's native log (file descriptor 2) is held
    back, unless ``load_numerical_core(show_log=True)`` asked for it.
    """
    return contextlib.nullcontext() if _show_native_log else _native_stderr_held()


@contextlib.contextmanager
def _native_stderr_held():
    """Send file descriptor 2 to a temporary file; replay it if the block fails."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (a detached process): nothing to hold
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors='replace'))
            sys.stderr.flush()
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
