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
