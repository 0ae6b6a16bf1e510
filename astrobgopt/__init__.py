"""
astrobgopt: sky-background models for astronomical images.

A polyharmonic spline whose control points are fitted by gradient descent in
TensorFlow, exposed as a photutils-style background estimator.
"""

try:
    from ._version import version as __version__
except ImportError:  # not installed: running from a bare source tree
    __version__ = '0.0.0'

from .background import SplineOptBackground, SplineOptBackgroundResult  # noqa: E402
from .ccd import subtract_background  # noqa: E402
from .interpolator import SplineOptInterpolator, spline_background  # noqa: E402
from .io import read_image, write_image  # noqa: E402
from .masks import regions_to_mask  # noqa: E402

__all__ = ['SplineOptBackground', 'SplineOptBackgroundResult', 'SplineOptInterpolator',
           'spline_background', 'subtract_background', 'regions_to_mask', 'read_image',
           'write_image']
