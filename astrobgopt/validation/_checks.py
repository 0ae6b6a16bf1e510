"""Input checks shared by the validation kit (one place for each error message)."""

import numbers

import numpy as np

from ..masks import validate_mask

__all__ = []


def check_shape(shape):
    """Return ``shape`` as a ``(ny, nx)`` tuple of positive ints or raise."""
    if isinstance(shape, numbers.Integral):
        shape = (shape, shape)
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f'shape must be an int or a pair of ints, got {shape!r}') from None
    if len(shape) != 2 or not all(isinstance(n, numbers.Integral) for n in shape):
        raise TypeError(f'shape must be a pair of ints (ny, nx), got {shape!r}')
    if min(shape) < 1:
        raise ValueError(f'shape must be positive, got {shape!r}')
    return int(shape[0]), int(shape[1])


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


def check_non_negative(value, name):
    """Return ``value`` as a float, raising ValueError if it is negative or not finite."""
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f'{name} must be a finite number >= 0, got {value}')
    return value


def check_count(value, name, *, minimum=0):
    """Return ``value`` as an int >= ``minimum`` or raise."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f'{name} must be an int, got {value!r}')
    if value < minimum:
        raise ValueError(f'{name} must be >= {minimum}, got {value}')
    return int(value)
