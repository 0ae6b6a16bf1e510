"""Tests of astrobgopt._startup: TensorFlow's native log held back."""

import os

import pytest

from astrobgopt._startup import _native_stderr_held, load_numerical_core


def test_native_stderr_is_held_back_unless_the_block_fails(capfd):
    with _native_stderr_held():
        os.write(2, b'I0000 native start-up chatter\n')
    assert capfd.readouterr().err == ''

    with pytest.raises(ImportError, match='broken'):
        with _native_stderr_held():
            os.write(2, b'E0000 why it broke\n')
            raise ImportError('broken')
    assert capfd.readouterr().err == 'E0000 why it broke\n'
    # File descriptor 2 is the terminal's again.
    os.write(2, b'after\n')
    assert capfd.readouterr().err == 'after\n'


def test_load_numerical_core_names_the_device():
    device = load_numerical_core()
    assert device == 'CPU' or device.startswith('GPU (')


FIRST_FIT = """
import gc
from astrobgopt import SplineOptBackground
from astrobgopt._startup import load_numerical_core
from astrobgopt.datasets import make_light_pollution_sky

image = make_light_pollution_sky((256, 256), seed=3).image
load_numerical_core()
full = []
gc.callbacks.append(lambda phase, info: full.append(1)
                    if phase == 'start' and info['generation'] == 2 else None)
SplineOptBackground()(image).background_rms
print(len(full))
"""


def test_tensorflows_garbage_is_collected_with_its_import_not_in_the_first_fit():
    # Without the collection at import, the first fit in a new process ran
    # one full collection over TensorFlow's objects (0.17 s, a quarter of it).
    import subprocess
    import sys

    done = subprocess.run([sys.executable, '-c', FIRST_FIT], capture_output=True, text=True,
                          check=True, env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'},
                          timeout=300)
    assert done.stdout.split()[-1] == '0'


@pytest.mark.parametrize('statement', [
    'import astrobgopt.spline',
    'import astrobgopt.optimize as core; core.compute_device()',
])
def test_importing_a_numerical_module_directly_is_quiet(statement):
    # The modules of the numerical core import TensorFlow themselves, with
    # its native start-up log ("Could not find cuda drivers", "failed call
    # to cuInit") held back, as the estimators' own start does.
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != 'TF_CPP_MIN_LOG_LEVEL'}
    done = subprocess.run([sys.executable, '-c', statement], capture_output=True, text=True,
                          check=True, env=env, timeout=300)
    assert done.stderr == ''
