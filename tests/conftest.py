"""Test-session settings (quiet TensorFlow, headless matplotlib) and shared fixtures."""
import os

import pytest

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('MPLBACKEND', 'agg')


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
