"""
The vocabularies and the non-fit defaults of the options, importable without
TensorFlow (the command line validates its arguments before loading the
numerical core). The fit's own defaults are those of
`astrobgopt.config.FitConfig`.
"""

import math


#: Spline orders implemented: 1 (r), 2 (r^2 log r), 3 (r^3), 4 (r^4 log r).
SUPPORTED_ORDERS = (1, 2, 3, 4)
#: Loss names understood by the fit.
LOSSES = ('robust', 'asymmetric')
#: Control-point initializers understood by the fit.
INITIALIZERS = ('grid', 'random')
#: Block statistics of the downscaled image.
DOWNSCALE_FUNCTIONS = ('median', 'clipped_mean', 'mean')
#: Stretches the fit can run in: None (the linear data) or 'mtf'.
STRETCHES = (None, 'mtf')
#: Tukey biweight cut-off of the robust loss, in units of the samples' noise:
#: 4 sigma keeps ~99.99% of Gaussian noise in play while rejecting anything
#: brighter.
BIWEIGHT_CUTOFF = 4.0
#: Fewest control points a fit accepts (a fit also needs `tail_size` more samples).
MIN_CONTROL_POINTS = 4
#: Named pedestal levels added back after subtraction (or a number).
PEDESTALS = ('median', 'minimum')

#: Block size of the downscaled image: 'auto' or a positive integer.
DEFAULT_DOWNSCALE_FACTOR = 'auto'
#: Block statistic.
DEFAULT_DOWNSCALE_FUNC = 'median'
#: Stretch of the fit.
DEFAULT_STRETCH = None
#: Quantile the 'mtf' stretch (and figures) map to 1.
DEFAULT_DELINEARIZATION_QUANTILE = 0.95
#: Level added back after subtraction.
DEFAULT_PEDESTAL = 'median'
#: rmgradient's default Gaussian sigma for sample points, in pixels.
DEFAULT_POINTS_SIGMA = 8.0

#: Degree of the polynomial tail of each spline order: r and r^3 need at
#: least 0 and 1, r^2 log r 1, r^4 log r 2 (the order of conditional positive
#: definiteness minus one); 1 is kept for order 1 so that it matches SciPy's
#: ``RBFInterpolator(degree=1)``.
TAIL_DEGREE = {1: 1, 2: 1, 3: 1, 4: 2}


def tail_size(order, n_dims=2):
    """
    Number of polynomial-tail coefficients of a spline of ``order`` in
    ``n_dims`` dimensions: the fewest control points that can determine it.
    """
    if order not in SUPPORTED_ORDERS:
        raise ValueError(f'order must be one of {SUPPORTED_ORDERS}; got {order!r}')
    return math.comb(n_dims + TAIL_DEGREE[order], n_dims)
