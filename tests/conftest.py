"""Test-session settings (quiet TensorFlow, headless matplotlib) and shared fixtures."""
import os
import tempfile

import pytest

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('MPLBACKEND', 'agg')

# The optimizer's compiled program is kept in astrobgopt's cache directory
# (astrobgopt._program_cache): the tests, and the processes they start, use
# one of their own rather than the user's. astropy takes $XDG_CACHE_HOME/
# astrobgopt where that exists (all versions), unless ASTROPY_CACHE_DIR says
# otherwise (astropy >= 7.1).
_CACHE_HOME = tempfile.mkdtemp(prefix='astrobgopt-test-cache-')
os.makedirs(os.path.join(_CACHE_HOME, 'astrobgopt'))
os.environ['XDG_CACHE_HOME'] = _CACHE_HOME
os.environ.pop('ASTROPY_CACHE_DIR', None)


@pytest.fixture
def cli_error(capsys):
    """
    Read what the command line wrote to stderr: it must be exactly one line
    (an error says what was wrong in one line), which is returned.
    """
    def read():
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    return read


def pytest_sessionfinish(session, exitstatus):
    import shutil

    shutil.rmtree(_CACHE_HOME, ignore_errors=True)
