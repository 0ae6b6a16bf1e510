"""
astrobgopt: sky-background models for astronomical images.

A polyharmonic spline whose control points are fitted by gradient descent in
TensorFlow, exposed as a photutils-style background estimator.

The public names below are loaded on first use, so that ``import astrobgopt``
(and the command line's argument checks) do not pay for importing
TensorFlow.
"""

import importlib

try:
    from ._version import version as __version__
except ImportError:  # not installed: running from a bare source tree
    __version__ = '0.0.0'

# Public name -> submodule that defines it.
_EXPORTS = {
    'SplineOptBackground': 'background',
    'SplineOptBackgroundResult': 'result',
    'SplineOptInterpolator': 'interpolator',
    'spline_background': 'interpolator',
    'subtract_background': 'ccd',
    'regions_to_mask': 'masks',
    'read_image': 'io',
    'write_image': 'io',
    'process_file': 'frame',
    'process_batch': 'batch',
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(f'.{_EXPORTS[name]}', __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
