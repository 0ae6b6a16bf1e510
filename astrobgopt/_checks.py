"""
Argument checks shared across the package: one place for each error
message. NumPy only, so that light modules (`astrobgopt.config`,
`astrobgopt.datasets`) can use them without importing the validation kit.
"""

import numbers

import numpy as np

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


def check_non_negative(value, name):
    """Return ``value`` as a float, raising if it is not a finite number >= 0."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise TypeError(f'{name} must be a number, got {value!r}')
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f'{name} must be a number, got {value!r}') from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(f'{name} must be a finite number >= 0, got {value}')
    return value


def check_count(value, name, *, minimum=0, maximum=None):
    """Return ``value`` as an int >= ``minimum`` (and <= ``maximum``) or raise."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f'{name} must be an int, got {value!r}')
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f'>= {minimum}' if maximum is None else f'in [{minimum}, {maximum}]'
        raise ValueError(f'{name} must be {bounds}, got {value}')
    return int(value)
