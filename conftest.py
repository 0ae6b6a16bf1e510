"""
Settings of every test run (the tests, the docs' pages, the docstrings): the
optimizer's compiled program is kept in a cache directory of the run's own.
"""
import atexit
import os
import shutil
import tempfile

# astrobgopt._program_cache keeps the program in astrobgopt's cache
# directory: the run, and the processes it starts, use one of their own
# rather than the user's. astropy takes $XDG_CACHE_HOME/astrobgopt where that
# exists (all versions), unless ASTROPY_CACHE_DIR says otherwise (astropy >=
# 7.1).
_CACHE_HOME = tempfile.mkdtemp(prefix='astrobgopt-test-cache-')
os.makedirs(os.path.join(_CACHE_HOME, 'astrobgopt'))
os.environ['XDG_CACHE_HOME'] = _CACHE_HOME
os.environ.pop('ASTROPY_CACHE_DIR', None)
# Removed at exit, after the programs the run's fits store as the process
# exits (exit handlers run last-registered first).
atexit.register(shutil.rmtree, _CACHE_HOME, ignore_errors=True)
