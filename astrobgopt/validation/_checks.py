"""
Input checks shared by the validation kit (one place for each error message);
the package-wide ones come from `astrobgopt._checks`.
"""

import numpy as np

from ..masks import validate_mask

__all__ = []


def as_image(data, name):
    """Return ``data`` as a finite 2-D float array (no copy when possible) or raise."""
    array = np.asanyarray(data)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f'{name} must be a numeric array, got dtype {array.dtype}')
    if array.ndim != 2:
        raise ValueError(f'{name} must be 2-D, got shape {array.shape}')
    array = np.asarray(array, dtype=np.result_type(array.dtype, np.float32))
    if not np.isfinite(array).all():
        raise ValueError(f'{name} contains NaN or infinite values; mask them instead')
    return array


def as_mask(mask, shape, name='mask'):
    """Return ``mask`` as a boolean array of ``shape`` (all False when None) or raise."""
    if mask is None:
        return np.zeros(shape, dtype=bool)
    return validate_mask(mask, shape, name=name)


def check_same_shape(reference, other, reference_name, other_name):
    """Raise ValueError when two arrays differ in shape."""
    if np.shape(other) != np.shape(reference):
        raise ValueError(f'{other_name} has shape {np.shape(other)} but {reference_name} '
                         f'has shape {np.shape(reference)}')


def check_widths(widths):
    """Return ``widths`` as a 1-D array of ints >= 1 or raise."""
    widths = np.atleast_1d(np.asarray(widths))
    if widths.ndim != 1 or widths.size == 0:
        raise ValueError('widths must be a non-empty 1-D sequence of ints')
    if not np.issubdtype(widths.dtype, np.integer):
        if not np.issubdtype(widths.dtype, np.number) or np.any(widths != np.round(widths)):
            raise TypeError(f'widths must be integers, got {widths!r}')
        widths = widths.astype(int)
    if widths.min() < 1:
        raise ValueError(f'widths must be >= 1, got minimum {widths.min()}')
    return widths
