"""
The optimizer's compiled TensorFlow program, kept on disk between processes.

Tracing the optimizer's `tf.function` and running it the first time takes
about 0.15 s on a 2-core CPU: the first call of every new process pays it
(each worker of a process pool, the helper process of a forked worker),
where a warm fit of a 512 x 512 frame takes 0.04-0.2 s. A program saved
once (`tf.saved_model`, some 55 kB, 0.1 s) loads in 0.04 s and first runs
in 0.09 s: what is left is TensorFlow instantiating it, which no file
carries. Alone that saves little (0.14 s against 0.15 s), but beside the
fit that runs meanwhile (`astrobgopt.optimize.compile_optimizer_in_background`)
tracing, all Python, competes for the interpreter: with the program
loaded, ``benchmarks/bench_pipeline.py``'s first call on a glow took
0.03-0.09 s less. Numba's ``cache=True`` and JAX's persistent compilation cache keep
compiled code the same way.

A program is kept under astropy's cache directory for astrobgopt
(``astropy.config.get_cache_dir('astrobgopt')``: ``~/.cache/astrobgopt`` on
Linux with astropy 8), in ``compiled/``, named by its arguments and a
digest of what it was built from: TensorFlow's version, the device kind and
the source of the modules the program's code lives in. A program of other
code is never loaded. Every step is best effort: where the directory cannot
be written or a stored program cannot be read, the program is traced as
without the cache (and an unreadable one is removed, so that the next
process stores it again). The process that traced a program stores it as
it exits (`astrobgopt.optimize` registers that), so no fit waits for the
store and no thread outlives a fit. `astrobgopt.optimize.conf` turns the
cache off.
"""

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from ._startup import import_tensorflow, native_log_held

__all__ = ['program_name', 'load', 'store']

# The modules whose source the program is built from: its loop and losses,
# the spline, and the shared constants.
_SOURCES = ('optimize.py', 'spline.py', '_choices.py')

# Programs loaded by this process, by name; the loaded module objects are
# kept alive with their functions.
loaded = {}


def program_name(kind, *arguments, device):
    """
    The directory name of a program: ``kind``, its ``arguments`` and a
    digest of TensorFlow's version, the ``device`` and the sources, after
    the last hyphen.
    """
    digest = hashlib.sha256()
    digest.update(f'{import_tensorflow().__version__}|{device}'.encode())
    here = Path(__file__).parent
    for source in _SOURCES:
        digest.update((here / source).read_bytes())
    return '-'.join([kind, *(str(argument) for argument in arguments), digest.hexdigest()[:20]])


def _directory():
    """The cache's directory (created), or None where there is none to write."""
    from astropy.config import get_cache_dir

    try:
        directory = Path(get_cache_dir(rootname='astrobgopt')) / 'compiled'
        directory.mkdir(exist_ok=True)
    except OSError:
        return None
    return directory


def load(name):
    """The stored program's function ``run``, or None (nothing stored, or unreadable)."""
    directory = _directory()
    path = None if directory is None else directory / name
    if path is None or not path.is_dir():
        return None
    tf = import_tensorflow()
    try:
        with native_log_held():
            module = tf.saved_model.load(str(path))
        function = module.run
    except Exception:  # noqa: BLE001 (damaged or partial: traced instead, stored anew)
        shutil.rmtree(path, ignore_errors=True)
        return None
    loaded[name] = module
    return function


def store(name, function):
    """
    Keep ``function`` (a `tf.function` with an input signature) as ``name``
    unless it is stored already. Written to a temporary directory and renamed
    into place, so a reader never sees a partial program and, of processes
    storing at once, one wins. The same program of other code (another
    digest) is then removed: it is of an earlier version.
    """
    directory = _directory()
    if directory is None or (directory / name).is_dir():
        return
    tf = import_tensorflow()
    try:
        staging = tempfile.mkdtemp(prefix=f'.{name}-', dir=directory)
    except OSError:
        return
    try:
        module = tf.Module()
        module.run = function
        with native_log_held():
            # No serving signature (the function is restored as an attribute)
            # and no custom gradients (the program takes its gradients inside):
            # saving either traces the functions anew, through AutoGraph.
            tf.saved_model.save(module, staging, signatures={}, options=tf.saved_model.SaveOptions(
                experimental_custom_gradients=False))
        os.rename(staging, directory / name)
    except Exception:  # noqa: BLE001 (best effort: the program is traced next time)
        shutil.rmtree(staging, ignore_errors=True)
        return
    for other in directory.glob(name.rsplit('-', 1)[0] + '-*'):
        if other.name != name and not other.name.startswith('.'):
            shutil.rmtree(other, ignore_errors=True)
