"""
The vocabularies of the fit's options, importable without TensorFlow (the
command line validates its arguments before loading the numerical core).
"""

#: Spline orders implemented: 1 (r), 2 (r^2 log r), 3 (r^3), 4 (r^4 log r).
SUPPORTED_ORDERS = (1, 2, 3, 4)
#: Loss names understood by the fit.
LOSSES = ('robust', 'asymmetric')
#: Control-point initializers understood by the fit.
INITIALIZERS = ('grid', 'random')
