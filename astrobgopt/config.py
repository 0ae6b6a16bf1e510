"""
The options of the spline fit, and the repr that records them.

`FitConfig` holds the fit's defaults, the one place they are set: the
estimator's and the interpolator's signatures and the command line read them
from here. The module imports no TensorFlow, so that the command line can
check its arguments before loading the numerical core.
"""

import inspect
from dataclasses import asdict, dataclass

import numpy as np

from ._checks import check_count, check_non_negative
from ._choices import INITIALIZERS, LOSSES, MIN_CONTROL_POINTS, SUPPORTED_ORDERS
from ._docs import insert_fit_parameter_docs

__all__ = ['FitConfig', 'make_repr']

_MAX_SEED = 2**31 - 1


@insert_fit_parameter_docs('n_points', 'order', 'initializer', 'loss', 'alpha', 'smoothing',
                           'epochs', 'learning_rate', 'batch_size', 'patience')
@dataclass(frozen=True)
class FitConfig:
    """
    Options of the spline fit (validated on creation).

    Parameters
    ----------
    FIT_PARAMETERS
    plateau_patience : int, optional
        Steps without improvement before halving the learning rate.
    validation_fraction : float, optional
        Fraction of the samples held out of the optimization to decide when
        to stop (in [0, 0.5]; 0 monitors the training loss).
    seed : int, optional
        Seed for the random initializer, the held-out samples and the
        mini-batches, in [0, 2**31 - 1].
    """

    n_points: int = 32
    order: int = 2
    initializer: str = 'grid'
    loss: str = 'robust'
    alpha: float = 5.0
    smoothing: float = 1e-3
    epochs: int = 300
    learning_rate: float = 1e-3
    batch_size: int | None = None
    patience: int = 10
    plateau_patience: int = 5
    validation_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self):
        check_count(self.n_points, 'n_points', minimum=MIN_CONTROL_POINTS)
        check_count(self.epochs, 'epochs')
        check_count(self.patience, 'patience', minimum=1)
        check_count(self.plateau_patience, 'plateau_patience', minimum=1)
        # The fit's random streams take the seed as a 32-bit signed integer.
        check_count(self.seed, 'seed', maximum=_MAX_SEED)
        if self.batch_size is not None:
            check_count(self.batch_size, 'batch_size', minimum=1)
        if self.order not in SUPPORTED_ORDERS:
            raise ValueError(f'order must be one of {SUPPORTED_ORDERS}; got {self.order!r}')
        if self.initializer not in INITIALIZERS:
            raise ValueError(f'initializer must be one of {INITIALIZERS}; '
                             f'got {self.initializer!r}')
        if self.loss not in LOSSES:
            raise ValueError(f'loss must be one of {LOSSES}; got {self.loss!r}')
        for name in ('alpha', 'smoothing'):
            check_non_negative(getattr(self, name), name)
        if not 0 <= self.validation_fraction <= 0.5:
            raise ValueError(f'validation_fraction must lie in [0, 0.5]; '
                             f'got {self.validation_fraction!r}')
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f'learning_rate must be positive; got {self.learning_rate!r}')

    def to_dict(self):
        """The options as a plain dict (for provenance records)."""
        return asdict(self)


def make_repr(instance, *, fallback=None):
    """
    ``ClassName(name=value, ...)`` of every argument of the class's
    constructor (photutils' ``make_repr`` style): the provenance of a
    configured object.

    Each value is the instance's attribute of that name or, failing that,
    the ``fallback`` object's (e.g. its `FitConfig`).
    """
    def value(name):
        return getattr(instance if hasattr(instance, name) else fallback, name)

    names = [name for name, parameter in inspect.signature(type(instance)).parameters.items()
             if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)]
    options = ', '.join(f'{name}={value(name)!r}' for name in names)
    return f'{type(instance).__name__}({options})'
