"""
Fit a polyharmonic spline background to weighted samples by gradient descent.

The fit runs in two stages:

1. **Initialization.** Control points are placed on a grid or at random
   (seeded). For fixed positions the spline is linear in the control-point
   values, so the values are solved by (iteratively reweighted) weighted least
   squares on the samples, with the chosen loss's weights. The optimizer
   therefore starts close to the answer rather than from raw pixel values.
2. **Optimization.** Adam moves the control points and changes their values to
   minimize the loss. Steps run in chunks inside a compiled `tf.function`
   (`tf.while_loop`), with early stopping (the best parameters are kept) and
   a learning rate halved on plateaus.

Coordinates are divided by the longest image side and values are
standardized by a robust offset and, after the initialization, by the noise
of its residuals, so the learning rate means the same thing for every image
and adding a smooth gradient to the data does not change the optimization.

Losses
------
``'robust'`` (default)
    Tukey's biweight of the noise-normalized residual,
    :math:`\\rho(u) = \\frac{c^2}{6}[1 - (1 - (u/c)^2)^3]` for
    :math:`|u| < c` and :math:`c^2/6` beyond, with
    :math:`u = \\sqrt{f}\\,(y - s)/\\sigma`, :math:`f` the usable fraction of a
    block and :math:`\\sigma` the robust (MAD) scatter of full blocks. It is
    quadratic for noise, so it has no offset bias, and gives zero weight to
    residuals beyond :math:`c = 4\\sigma`: stars, galaxies and nebulae are
    rejected as outliers. The initialization reaches it through a graduated
    sequence (least squares, then a stiff biweight fit relaxed to the final
    smoothness) so that a large, bright structure is peeled away instead of
    being absorbed. Use it for photometry and for most astrophotographs.
``'asymmetric'``
    The seed tool's loss,
    :math:`\\log(L_1 + V_c + \\alpha (O + N))`, where :math:`L_1` is the weighted
    mean absolute residual, :math:`V_c` the variance across colour channels of
    the mean residual (colour balance; 0 for one channel), :math:`O` the
    weighted mean of :math:`\\max(s - y, 0)` (background overshooting the
    image) and :math:`N` that of :math:`\\max(-s, 0)` (negative background).
    It hugs the lower envelope of the data and expects a non-negative
    background, so use it on stretched data (``stretch='mtf'``) as the seed
    tool does.

Both losses add a bending-energy penalty ``smoothing * trace(W^T K W)`` that
keeps the surface smooth where no data constrain it.

This module is long (about 850 lines) on purpose: the initialization, the
compiled Adam loop and the final re-solve share the losses, the
standardization and the noise model, and must change together; split
across modules they would drift apart.
"""

import atexit
import contextlib
import copy
import functools
import math
import os
import threading
from dataclasses import dataclass, field

import numpy as np
from astropy import config as _config
from astropy.stats import mad_std

from . import _program_cache
from ._choices import BIWEIGHT_CUTOFF, INITIALIZERS, LOSSES
from ._startup import import_tensorflow, native_log_held
from .config import FitConfig
from .spline import (_NUMPY, SplineGrid, _determines_tail, _squared_distance, apply_spline,
                     single_threaded_blas, solve_spline, spline_at_points_with_gradient,
                     tail_size)

tf = import_tensorflow()

__all__ = ['SplineDesign', 'SplineModel', 'fit_spline', 'make_design', 'conf', 'LOSSES',
           'INITIALIZERS', 'compute_device', 'grid_control_points', 'initial_control_points']


class Conf(_config.ConfigNamespace):
    """
    Configuration of the fit (astropy's configuration system: the
    ``[optimize]`` section of ``astrobgopt.cfg``, or ``conf.set_temp``).
    """

    cache_compiled_program = _config.ConfigItem(
        True,
        "Keep the optimizer's compiled TensorFlow program in astrobgopt's cache "
        'directory, so that a new process loads and instantiates it (about 0.14 s) '
        'instead of compiling it (about 0.15 s on a 2-core CPU, more beside a fit).')


conf = Conf()

# Samples per block of rows in which `_design` evaluates the kernel.
_DESIGN_ROWS = 1024
# The MAD of a normal distribution times this is its standard deviation
# (1 / Phi^-1(0.75), astropy's mad_std).
_MAD_TO_SIGMA = 1.482602218505602
# Reweighting iterations of the initialization (graduated, then final).
_IRLS_GRADUATED = 5
_IRLS_FINAL = 3
# Factor by which the graduated initialization starts stiffer than asked.
_GRADUATED_STIFFNESS = 1e4
# A step improves on the best parameters only when it lowers the monitored
# loss by more than this fraction. Smaller gains are at the level of the
# fit's noise, and chasing them let the control points wander differently
# with and without a smooth gradient added to the data: on the crowded real
# frame m13 the equivariance error was 0.08-0.19 sigma with 1e-6 to 1e-4,
# 0.006 with 1e-3, at the same accuracy on the scene suite
# (benchmarks/bench_scenes.py).
_MIN_IMPROVEMENT = 1e-3
# Steps run per call of the compiled optimization loop.
_STEPS_PER_CHUNK = 25
_ADAM_BETA1, _ADAM_BETA2, _ADAM_EPSILON = 0.9, 0.999, 1e-7
# Working precision of the Adam stage: float32 halves its cost on CPUs and
# GPUs; the initialization and the final re-solve of the values run in
# float64, so the answer keeps full precision.
_OPTIMIZER_DTYPE = tf.float32
# Full-image evaluation: exact every (mean control-point spacing / 16) pixels,
# and at most every (closest pair's distance / 8), cubic convolution in
# between (accuracy tested in tests/test_spline.py and tests/test_background.py).
_EXACT_STEP_PER_SPACING = 16
_EXACT_STEP_PER_CLOSEST = 8
# Fewest held-out (and training) samples for validation-based early stopping.
_MIN_VALIDATION_SAMPLES = 50
# The Adam stage works on values in units of this many times the noise the
# initialization leaves: a step of the default learning rate (1e-3) moves a
# value by 0.03 sigma, so the default 300 steps can move it by 9 sigma.
_NOISE_UNITS = 30.0


def _limit_tensorflow_threads():
    """
    One intra-op and one inter-op thread for TensorFlow, unless the user chose.

    A step of the fit is a chain of small operations (about 12,000 x 256):
    split over threads, each waits (spinning) for the others more than it
    computes, which doubled the CPU time of a fit and tripled it beside a
    competing process, for no gain in wall time. The pools can only be
    sized before TensorFlow's runtime starts; if it already has, or
    ``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS`` or
    `tf.config.threading` set them, they are left alone.
    """
    threading = tf.config.threading
    for name, get, set_ in (
            ('TF_NUM_INTRAOP_THREADS', threading.get_intra_op_parallelism_threads,
             threading.set_intra_op_parallelism_threads),
            ('TF_NUM_INTEROP_THREADS', threading.get_inter_op_parallelism_threads,
             threading.set_inter_op_parallelism_threads)):
        if name not in os.environ and get() == 0:
            try:
                set_(1)
            except RuntimeError:  # the runtime has started: its pools are fixed
                return


with native_log_held():
    _limit_tensorflow_threads()


@contextlib.contextmanager
def _without_graph_rewrites():
    """
    Run compiled functions without TensorFlow's graph optimizer (Grappler),
    in this thread, on a CPU.

    Grappler rewrites a compiled function the first time it runs. For the
    optimizer loop that took 0.15 to 0.3 s once per process, as long as a
    whole warm fit of a 512 x 512 frame, and the rewritten loop ran no
    faster on a CPU (``benchmarks/bench_pipeline.py``). The option is read
    from this thread's call options when a function first runs, so the rest
    of the program keeps TensorFlow's defaults. On a GPU, where Grappler's
    fusions may pay, nothing changes.

    Grappler is skipped (a minimum graph size no program reaches), not
    disabled (``disable_meta_optimizer``): disabled, a first run took the
    GIL once per operation, and beside a busy Python thread the program's
    first run took 1.5 s instead of 0.065 s (0.071 s skipped).
    """
    try:
        from tensorflow.python.eager import context
        eager = context.context()
        saved = eager.function_call_options
    except (ImportError, AttributeError):  # TensorFlow's internals moved: keep its defaults
        yield
        return
    if compute_device() != 'CPU':
        yield
        return
    config = tf.compat.v1.ConfigProto()
    config.ParseFromString(saved.config_proto_serialized)
    config.graph_options.rewrite_options.min_graph_nodes = 2 ** 30
    options = copy.copy(saved)
    options.config_proto_serialized = config
    eager.function_call_options = options
    try:
        yield
    finally:
        eager.function_call_options = saved


@functools.cache
def compute_device():
    """
    Where the fit runs: ``'GPU (name)'`` for the first GPU TensorFlow sees,
    else ``'CPU'`` (TensorFlow's devices are fixed once it has started).
    """
    # Looking for GPUs initialises CUDA, which logs on a machine without one.
    with native_log_held():
        gpus = tf.config.list_physical_devices('GPU')
    if not gpus:
        return 'CPU'
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"GPU ({details.get('device_name', gpus[0].name)})"


def grid_control_points(shape, n_points):
    """
    Control points on a regular grid matching the image's aspect ratio.

    The grid has ``nx * ny`` points with ``nx / ny`` close to the width/height
    ratio; when ``n_points`` factors into such a grid (e.g. 256 = 16 x 16 on a
    square image) exactly ``n_points`` are used, otherwise the nearest count
    whose grid fits the aspect ratio within a factor 1.5. The outer points lie
    on the image border, so corners are constrained.

    Parameters
    ----------
    shape : tuple of int
        Image shape (height, width).
    n_points : int
        Requested number of control points.

    Returns
    -------
    points : `~numpy.ndarray`, shape (nx * ny, 2)
        (x, y) pixel coordinates.
    """
    height, width = shape
    aspect = width / height
    best = None
    for ny in range(2, n_points // 2 + 1):
        nx = n_points // ny
        if nx < 2:
            break
        mismatch = abs(math.log((nx / ny) / aspect))
        exact = nx * ny == n_points
        key = (not (exact and mismatch <= math.log(1.5)), abs(nx * ny - n_points), mismatch)
        if best is None or key < best[0]:
            best = (key, nx, ny)
    if best is None or best[0][0]:
        # No exact factorization near the aspect ratio: round a grid instead.
        ny = max(2, round(math.sqrt(n_points / aspect)))
        nx = max(2, round(n_points / ny))
    else:
        nx, ny = best[1], best[2]
    xs = np.linspace(0, width - 1, nx)
    ys = np.linspace(0, height - 1, ny)
    yy, xx = np.meshgrid(ys, xs, indexing='ij')
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def initial_control_points(shape, config):
    """
    Control points before optimization: on a grid (`grid_control_points`) or
    uniformly at random with ``config.seed``.

    Parameters
    ----------
    shape : tuple of int
        Image shape (height, width).
    config : `~astrobgopt.config.FitConfig`
        Uses ``initializer``, ``n_points`` and ``seed``.

    Returns
    -------
    points : `~numpy.ndarray`, shape (n, 2)
        (x, y) pixel coordinates.
    """
    if config.initializer == 'grid':
        return grid_control_points(shape, config.n_points)
    height, width = shape
    rng = np.random.default_rng(config.seed)
    return rng.uniform([0, 0], [width - 1, height - 1], size=(config.n_points, 2))


@dataclass
class SplineModel:
    """
    A fitted spline background: control points and how to evaluate them.

    Attributes
    ----------
    control_points : `~numpy.ndarray`, shape (n, 2)
        Final (x, y) positions in full-resolution pixel coordinates.
    control_values : `~numpy.ndarray`, shape (n, k)
        Spline values at the control points, in the data units of the fit.
    initial_control_points : `~numpy.ndarray`, shape (n, 2)
        Positions before optimization.
    order : int
        Polyharmonic order.
    loss_history : `~numpy.ndarray`, shape (n_steps + 1, 2)
        Training and held-out loss at the initialization (first row) and at
        each step.
    noise_sigma : `~numpy.ndarray`, shape (k,)
        Robust scatter of full-block residuals after the fit, in data units.
    stop_reason : str
        Why the optimization ended.
    sample_values : `~numpy.ndarray`, shape (m, k)
        The fitted surface at the samples it was fitted to.
    value_offset, value_scale : `~numpy.ndarray`, shape (k,)
        The standardization of the fit: data values were fitted as
        ``(value - value_offset) / value_scale`` (float64).
    value_covariance : `~numpy.ndarray`, shape (k, n, n)
        Covariance of the control values (data units squared) from the
        noise of the samples, at the final positions (computed on first use).

    Notes
    -----
    A model is evaluated in NumPy and SciPy only, never in TensorFlow, and
    pickles (it holds arrays only): a fitted model can be used in a forked
    or a spawned process. The surface is evaluated in the standardized units
    of the fit (values relative to ``value_offset`` in units of
    ``value_scale``), and the offset added in float64, so that a large
    pedestal costs no precision.
    """

    control_points: np.ndarray
    control_values: np.ndarray
    initial_control_points: np.ndarray
    order: int
    loss_history: np.ndarray
    noise_sigma: np.ndarray
    stop_reason: str
    sample_values: np.ndarray = field(repr=False, default=None)
    value_offset: np.ndarray = field(repr=False, default=0.0)
    value_scale: np.ndarray = field(repr=False, default=1.0)
    _sample_noise: object = field(repr=False, default=None)
    _length_scale: float = field(repr=False, default=1.0)
    _weights: np.ndarray = field(init=False, repr=False)
    _polynomial: np.ndarray = field(init=False, repr=False)
    _grids: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self):
        self.value_offset = np.broadcast_to(np.asarray(self.value_offset, dtype=np.float64),
                                            self.control_values.shape[1:]).copy()
        self.value_scale = np.broadcast_to(np.asarray(self.value_scale, dtype=np.float64),
                                           self.control_values.shape[1:]).copy()
        standardized = (self.control_values - self.value_offset) / self.value_scale
        self._weights, self._polynomial = solve_spline(self._scaled(self.control_points),
                                                       standardized, order=self.order)

    def _scaled(self, points):
        """Pixel coordinates in the fit's units (of the longest image side)."""
        return np.asarray(points, dtype=np.float64) / self._length_scale

    @functools.cached_property
    def value_covariance(self):
        """Covariance of the control values, (k, n, n), computed on first use."""
        if self._sample_noise is None:
            raise ValueError('this model carries no noise model for its control values')
        return (self._sample_noise.value_covariance(self._scaled(self.control_points),
                                                    self.order)
                * (self.value_scale ** 2)[:, None, None])

    def evaluate(self, points):
        """Evaluate at (x, y) points of shape (m, 2); returns (m, k) float64."""
        standardized = apply_spline(self._scaled(self.control_points), self._weights,
                                    self._polynomial, self._scaled(points), order=self.order)
        return self.value_offset + self.value_scale * standardized

    @single_threaded_blas
    def standard_error(self, points):
        """
        Standard error of the fitted surface at (x, y) points (m, 2): the
        propagated noise of the samples, shape (m, k).
        """
        basis, _ = _design(self._scaled(self.control_points), self._scaled(points), self.order)
        variance = np.stack([np.sum((basis @ cov) * basis, axis=1)
                             for cov in self.value_covariance], axis=1)
        return np.sqrt(np.maximum(variance, 0))

    def _exact_step(self, shape):
        """Pixels between exact evaluations: a fraction of the mean control-point
        spacing and of the closest pair's distance (local detail lives there)."""
        spacing = math.sqrt(shape[0] * shape[1] / len(self.control_points))
        squared = _squared_distance(self.control_points, self.control_points, _NUMPY)
        closest = math.sqrt(np.min(squared + np.diag(np.full(len(squared), np.inf))))
        return max(1, int(min(spacing / _EXACT_STEP_PER_SPACING,
                              closest / _EXACT_STEP_PER_CLOSEST)))

    def evaluate_image(self, shape, *, dtype=np.float32, exact=False, rows=None):
        """
        Evaluate on every pixel of an image of ``shape`` (height, width).

        Parameters
        ----------
        shape : tuple of int
            Image shape (height, width).
        dtype : dtype, optional
            dtype of the result; the arithmetic is float64 whatever it is.
        exact : bool, optional
            Evaluate the spline at every pixel instead of interpolating
            between exact evaluations.
        rows : slice, optional
            Only these rows (a band of an image too large for memory); the
            values are those of the whole image's evaluation.

        Returns
        -------
        image : `~numpy.ndarray`, shape (height, width, k)
            Or (rows, width, k) for a band.

        Notes
        -----
        Memory stays bounded (rows are processed in chunks). By default the
        spline is evaluated exactly every ``step`` pixels, with ``step`` 1/16
        of the mean control-point spacing and at most 1/8 of the distance
        between the two closest control points, and interpolated in between
        by cubic convolution (see `~astrobgopt.spline.apply_spline_grid`):
        a spline varies on the scale of its control-point spacing, so the
        interpolation error is a small fraction of the surface's range. Its
        accuracy against ``exact=True`` is tested in ``tests/test_spline.py``
        and ``tests/test_background.py``; its speed is measured by the
        benchmarks.
        """
        start, stop, _ = (slice(None) if rows is None else rows).indices(shape[0])
        return self.grid(shape, exact=exact).rows(start, stop, dtype=dtype)

    def grid(self, shape, *, exact=False):
        """
        The `~astrobgopt.spline.SplineGrid` of an image of ``shape`` (height,
        width) in data units, made once per shape: `evaluate_image` bands of
        one image share its exact evaluations.
        """
        key = (tuple(shape), exact)
        grid = self._grids.get(key)
        if grid is None:
            height, width = shape
            step = 1 if exact else self._exact_step(shape)
            grid = SplineGrid(self._scaled(self.control_points), self._weights, self._polynomial,
                              self._scaled(np.arange(width)), self._scaled(np.arange(height)),
                              order=self.order, step=step, offset=self.value_offset,
                              scale=self.value_scale)
            # Keep the latest only (a grid can hold megabytes); replaced in one
            # assignment, so threads evaluating bands never see it half made.
            self._grids = {key: grid}
        return grid

    def __getstate__(self):
        # Grids are a cache, rebuilt on demand: not shipped to other processes.
        return {**self.__dict__, '_grids': {}}


@dataclass(frozen=True)
class SplineDesign:
    """
    Initial control points and the linear map from their values to samples.

    Build it with `make_design`; pass it to `fit_spline` to refit the same
    samples (with other weights) without recomputing it.

    Attributes
    ----------
    initial_control_points : `~numpy.ndarray`, shape (n, 2)
        (x, y) pixel positions from the initializer.
    basis : `~numpy.ndarray`, shape (m, n)
        Spline values at the samples per unit value at each control point.
    bending : `~numpy.ndarray`, shape (n, n)
        Bending energy as a quadratic form in the control values.
    """

    initial_control_points: np.ndarray
    basis: np.ndarray
    bending: np.ndarray


@single_threaded_blas
def make_design(points, shape, config):
    """
    The `SplineDesign` of samples at ``points`` (m, 2) in an image of ``shape``.
    """
    initial = initial_control_points(shape, config)
    length_scale = float(max(shape))
    if not _determines_tail(initial / length_scale, config.order):
        raise ValueError(f'{len(initial)} control points cannot determine the polynomial '
                         f'tail of order {config.order} ({tail_size(config.order)} '
                         'coefficients; a grid needs '
                         'at least 3 columns and 3 rows for order 4): use more control '
                         'points (n_points) or another order')
    basis, bending = _design(initial / length_scale,
                             np.asarray(points, dtype=np.float64) / length_scale, config.order)
    return SplineDesign(initial, basis, bending)


@dataclass(frozen=True)
class _SampleNoise:
    """
    What the covariance of the control values needs from a fit, in the fit's
    standardized units: the samples' scaled positions, residuals and usable
    fractions, the noise per channel, the loss, the smoothing and the
    samples' biweight cut-offs (see `_biweight`).
    """

    points: np.ndarray
    residual: np.ndarray
    fraction: np.ndarray
    sigma: np.ndarray
    loss: str
    smoothing: float
    cutoff: np.ndarray | float = BIWEIGHT_CUTOFF

    @single_threaded_blas
    def value_covariance(self, centers, order):
        """Covariance (k, n, n) of the values at scaled control points ``centers``."""
        basis, bending = _design(centers, self.points, order)
        return _value_covariance(basis, bending, self.residual, self.fraction, self.sigma,
                                 self.loss, self.smoothing, self.cutoff)


def _robust_sigma(residual, fraction):
    """MAD scatter of residuals scaled to a full block, per channel (weighted samples)."""
    used = fraction > 0
    return _mad_sigma(residual[used].T * np.sqrt(fraction[used]))


def _mad_sigma(scaled):
    """
    MAD scatter of each row of ``scaled`` (a channel per row, so that each
    median partitions one contiguous row); the standard deviation, only
    computed where the MAD is 0, or else 1.
    """
    centre = np.median(scaled, axis=1, keepdims=True)
    sigma = _MAD_TO_SIGMA * np.median(np.abs(scaled - centre), axis=1)
    if not np.all(sigma > 0):
        sigma = np.where(sigma > 0, sigma, np.std(scaled, axis=1))
    return np.where(sigma > 0, sigma, 1.0)


def _biweight(u, cutoff=BIWEIGHT_CUTOFF):
    """IRLS weights psi(u)/u of Tukey's biweight with ``cutoff`` (broadcast against ``u``)."""
    # (1 - (u/c)^2)^2 inside the cut-off, 0 beyond it: one clipped square.
    inside = 1 - np.square(u / cutoff)
    np.maximum(inside, 0.0, out=inside)
    return np.square(inside, out=inside)


def _design(centers, points, order):
    """
    Matrix mapping control values to sample values, and the bending matrix,
    for scaled control points ``centers`` (n, 2) and samples ``points`` (m, 2).
    """
    weights, polynomial = solve_spline(centers, np.eye(len(centers)), order=order)
    # In row blocks: the kernel's temporaries then stay small enough for the
    # allocator to reuse, where arrays of every sample (megabytes) are mapped
    # fresh each time and their page faults tripled the time (12,000 x 32).
    basis = np.empty((len(points), len(centers)))
    for start in range(0, len(points), _DESIGN_ROWS):
        rows = slice(start, start + _DESIGN_ROWS)
        basis[rows] = apply_spline(centers, weights, polynomial, points[rows], order=order)
    # For an interpolating spline, w^T K w == v^T A11 v with A11 the weights
    # per unit value: the bending energy as a quadratic form in the values.
    return basis, 0.5 * (weights + weights.T)


def _gram(rows):
    """``rows.T @ rows``: NumPy computes a product of an array's transpose with
    itself as one symmetric rank-k update, half the work of a general product."""
    return rows.T @ rows


def _normal_equations(basis, bending, row_weights, stiffness, workspace=None):
    """
    Weighted normal matrix plus the bending penalty, relative to its trace,
    and the basis rows scaled by the square roots of the (non-negative)
    weights that formed it (written into ``workspace``, an array shaped
    like ``basis``, when one is given).
    """
    root_weights = np.sqrt(row_weights)
    scaled = np.multiply(basis, root_weights[:, None], out=workspace)
    normal = _gram(scaled)
    scale = np.trace(normal) / max(np.trace(bending), 1e-300)
    return scaled, root_weights, normal + stiffness * scale * bending


def _solve_values(basis, bending, target, row_weights, stiffness, workspace=None):
    """
    Weighted least squares for control values, one channel per column
    (``workspace``: see `_normal_equations`).
    """
    values = np.empty((basis.shape[1], target.shape[1]))
    for channel in range(target.shape[1]):
        scaled, root_weights, lhs = _normal_equations(basis, bending, row_weights[:, channel],
                                                      stiffness, workspace)
        rhs = scaled.T @ (root_weights * target[:, channel])
        try:
            values[:, channel] = np.linalg.solve(lhs, rhs)
        except np.linalg.LinAlgError:  # no data and no smoothing constrain some values
            values[:, channel] = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    return values


def _value_covariance(basis, bending, residual, fraction, sigma, loss, smoothing, cutoff):
    """
    Covariance of the control values, (k, n, n), in standardized units.

    At fixed positions the values are a weighted least-squares solution
    ``L^-1 B^T W y`` with ``L = B^T W B + penalty``; a block of usable
    fraction f has noise variance sigma^2 / f, so the covariance is
    ``sigma^2 L^-1 B^T diag(f psi^2) B L^-1`` with the robust weights psi.
    """
    n_channels = residual.shape[1]
    covariance = np.empty((n_channels, basis.shape[1], basis.shape[1]))
    for channel in range(n_channels):
        if loss == 'robust':
            psi = _biweight(residual[:, channel] * np.sqrt(fraction) / sigma[channel], cutoff)
        else:
            psi = np.ones(len(fraction))
        *_, lhs = _normal_equations(basis, bending, fraction * psi, smoothing)
        middle = _gram(basis * (np.sqrt(fraction) * psi)[:, None])
        try:
            inverse = np.linalg.inv(lhs)
        except np.linalg.LinAlgError:  # values no data or smoothing constrain
            inverse = np.linalg.pinv(lhs)
        covariance[channel] = sigma[channel] ** 2 * inverse @ middle @ inverse.T
    return covariance


def _initial_values(basis, bending, target, fraction, config, start=None, cutoff=None):
    """
    Control values from the loss's reweighted least squares (see module notes).

    ``start`` (control values already close to the answer) skips the
    graduated stage and only polishes; ``cutoff`` (per sample, see
    `fit_spline`) replaces the biweight's.
    """
    # Every solve scales the basis into one workspace (see
    # `_normal_equations`) rather than a fresh array of that size, which the
    # allocator maps anew (see `_design`); what depends on the fractions
    # alone is computed once.
    workspace = np.empty_like(basis)
    column_cutoff = BIWEIGHT_CUTOFF if cutoff is None else cutoff[:, None]
    used = fraction > 0
    root_fraction = np.sqrt(fraction)[:, None]

    def scaled_residual(values):
        """The residuals of ``values`` scaled to full blocks, and their noise."""
        scaled = (target - basis @ values) * root_fraction
        return scaled, _mad_sigma(scaled[used].T)

    def biweight_solve(values, stiffness):
        scaled, sigma = scaled_residual(values)
        return _solve_values(basis, bending, target,
                             fraction[:, None] * _biweight(scaled / sigma, column_cutoff),
                             stiffness, workspace)

    if start is None:
        weights = np.repeat(fraction[:, None], target.shape[1], axis=1)
        start = _solve_values(basis, bending, target, weights, config.smoothing, workspace)
        if config.loss == 'asymmetric':
            # Iteratively reweighted L1: starts at the median surface.
            for _ in range(_IRLS_FINAL):
                residual = np.abs(target - basis @ start)
                floor = 1e-3 * np.median(residual) + 1e-12
                start = _solve_values(basis, bending, target,
                                      fraction[:, None] / np.maximum(residual, floor),
                                      config.smoothing, workspace)
            return start, scaled_residual(start)[1]
        # Graduated biweight: begin stiff so large bright structures stand out
        # as outliers, then relax geometrically to the requested smoothness.
        stiffness = config.smoothing * _GRADUATED_STIFFNESS + 1e-6
        for stiffness in np.geomspace(stiffness, max(config.smoothing, 1e-12), _IRLS_GRADUATED):
            start = biweight_solve(start, stiffness)
    values = start
    for _ in range(_IRLS_FINAL):
        values = biweight_solve(values, config.smoothing)
    return values, scaled_residual(values)[1]


def _data_loss(loss, model, target, fraction, constants, *, with_gradient=False):
    """
    The loss's data term for a fitted ``model`` at samples ``target``,
    ``fraction``; with ``with_gradient``, ``(term, its gradient with respect
    to model)``, in closed form (automatic differentiation of these few
    lines built some fifty operations more for the fit's program to trace).
    """
    sigma, offset, spread, alpha, _ = constants
    if loss == 'robust':
        # Tukey's biweight of the residual in noise units: rho(u) =
        # c^2/6 (1 - (1 - u^2/c^2)^3) inside the cut-off c, with rho'(u) =
        # u (1 - u^2/c^2)^2. Unusable samples (fraction 0) have u = 0.
        root_fraction = tf.expand_dims(tf.sqrt(fraction), 1) / sigma
        u = (target - model) * root_fraction
        c2 = BIWEIGHT_CUTOFF ** 2
        inside = tf.nn.relu(1.0 - tf.square(u) / c2)
        n_usable = tf.reduce_sum(tf.cast(fraction > 0, model.dtype))
        term = tf.reduce_sum(c2 / 6.0 * (1.0 - inside * tf.square(inside))) / n_usable
        if not with_gradient:
            return term
        return term, -(u * tf.square(inside) * root_fraction) / n_usable
    # The seed tool's asymmetric loss, in the data units of the fit: in
    # float64 (offset and spread are), as data near the float32 limit
    # overflow it in float32. With the weighted means W(t) over samples of
    # each channel (k channels) and their mean over channels <.>,
    # L = log(Q), Q = <W(|r|)> + var(W(r)) + alpha (<W(relu(-r))> +
    # <W(relu(-model))>) for the residual r = spread (target - model).
    dtype = model.dtype
    model = tf.cast(model, offset.dtype)
    fraction = tf.cast(fraction, offset.dtype)
    model_units = offset + spread * model
    residual = spread * (tf.cast(target, offset.dtype) - model)
    weight = tf.expand_dims(fraction / tf.reduce_sum(fraction), 1)

    def weighted_mean(term):
        return tf.reduce_sum(term * weight, axis=0)

    means = weighted_mean(residual)
    overshoot = tf.nn.relu(-residual)
    negative = tf.nn.relu(-model_units)
    quantity = (tf.reduce_mean(weighted_mean(tf.abs(residual))) + tf.math.reduce_variance(means)
                + tf.cast(alpha, offset.dtype) * tf.reduce_mean(weighted_mean(overshoot + negative))
                + 1e-30)
    term = tf.cast(tf.math.log(quantity), dtype)
    if not with_gradient:
        return term
    below = tf.cast(residual < 0, offset.dtype) - tf.cast(model_units < 0, offset.dtype)
    n_channels = tf.cast(tf.size(means), offset.dtype)
    gradient = (weight * spread / (n_channels * quantity)
                * (tf.cast(alpha, offset.dtype) * below - tf.sign(residual)
                   - 2.0 * (means - tf.reduce_mean(means))))
    return term, tf.cast(gradient, dtype)


def _objective(loss, order, centers, values, train, monitor, constants):
    """
    The loss of control points ``centers`` with ``values`` on the training
    and on the monitored samples (``(points, target, fraction)`` tuples),
    from one solve of the spline, and the training loss's gradient with
    respect to the centres and the values: ``(loss, monitored, d_centers,
    d_values)``.
    """
    smoothing_scale = constants[4]
    spline = spline_at_points_with_gradient(centers, values, train[0], order=order)
    data_loss, d_fitted = _data_loss(loss, spline.fitted, *train[1:], constants,
                                     with_gradient=True)
    d_centers, d_values = spline.gradient(d_fitted, smoothing_scale)
    # The bending energy w^T K w of an interpolating spline equals w^T v
    # (K w + P a = v and P^T w = 0), as a function of the centres and values:
    # no second kernel matrix to build.
    bending = smoothing_scale * tf.reduce_sum(spline.weights * values)
    monitor_fitted = apply_spline(centers, spline.weights, spline.polynomial, monitor[0],
                                  order=order)
    return (data_loss + bending, _data_loss(loss, monitor_fitted, *monitor[1:], constants)
            + bending, d_centers, d_values)


def _spec(*shape, dtype=_OPTIMIZER_DTYPE):
    return tf.TensorSpec(shape, dtype)


# The compiled function's arguments, flat (nested lists and tuples cost
# tracing time) and with every size left open (samples, control points,
# channels), so that a new image shape, number of samples or of channels
# runs the same graph instead of tracing anew.
#: The optimizer's state: the parameters (each control point's position
#: and values, side by side: one Adam update and fewer loop variables to
#: trace), Adam's two moments of them, the best monitored loss with its
#: parameters, the counters [steps done, steps since improvement, steps
#: since the learning rate changed] and the learning rate.
_STATE_SPEC = (_spec(None, None), _spec(None, None), _spec(None, None), _spec(),
               _spec(None, None), _spec(3), _spec())
# Where the best parameters and the counters sit in the state.
_BEST_PARAMETERS = 4
_COUNTERS = 5
_SAMPLES_SPEC = (_spec(None, 2), _spec(None, None), _spec(None))
_CONSTANTS_SPEC = (_spec(None), _spec(None, dtype=tf.float64), _spec(None, dtype=tf.float64),
                   _spec(), _spec())


def _initial_state(centers, control_values, learning_rate):
    """
    The optimizer's state (`_STATE_SPEC`) before its first step. The best
    monitored loss starts at the largest float (infinity would make the
    relative improvement test NaN): the first step evaluates the
    initialization and keeps it as the best so far.
    """
    dtype = _OPTIMIZER_DTYPE
    parameters = tf.concat([centers, control_values], axis=1)
    return (parameters, *[tf.zeros_like(parameters)] * 2, tf.constant(dtype.max, dtype),
            parameters, tf.zeros(3, dtype), tf.constant(learning_rate, dtype))


@functools.lru_cache(maxsize=None)
def _program_name(loss, order, batch_size):
    """
    The name under which `_program_cache` keeps a `_compiled_chunk`: once per
    process, as the program's loading and storing both ask for it (it reads
    the sources and probes the device), and so of the sources as they were
    when the program was built.
    """
    return _program_cache.program_name('optimizer', loss, order, batch_size,
                                       device=compute_device())


@functools.lru_cache(maxsize=None)
def _compiled_chunk(loss, order, batch_size):
    """
    The optimizer's program (`_traced_chunk`): loaded from `_program_cache`
    where an earlier process stored it and `conf` allows, else traced.
    """
    if conf.cache_compiled_program:
        stored = _program_cache.load(_program_name(loss, order, batch_size))
        if stored is not None:
            return stored
    return _traced_chunk(loss, order, batch_size)


def _traced_chunk(loss, order, batch_size):
    """
    Compile up to ``n_steps`` Adam steps with early-stopping bookkeeping.

    One compiled function serves every fit with the same loss, order and
    batching; everything else arrives as tensors, so refits do not retrace.
    The monitored loss is the loss on the held-out samples (``monitor``).
    Arguments and results are flat: the state (`_STATE_SPEC`), then the
    training and the monitored samples and the constants, the seed, the
    number of steps and the two patiences; it returns the new state and the
    losses of the steps run.
    """

    # autograph=False: the loop is an explicit tf.while_loop and the Python
    # branches are static, so source conversion would only add tracing time.
    @tf.function(autograph=False, input_signature=[
        *_STATE_SPEC, *_SAMPLES_SPEC, *_SAMPLES_SPEC, *_CONSTANTS_SPEC,
        _spec(dtype=tf.int32), _spec(dtype=tf.int32), _spec(), _spec()])
    def run_chunk(*arguments):
        state = arguments[:len(_STATE_SPEC)]
        rest = arguments[len(_STATE_SPEC):]
        train, monitor = rest[:3], rest[3:6]
        constants = rest[6:11]
        seed, n_steps, patience, plateau_patience = rest[11:]
        n_samples = tf.shape(train[0])[0]
        zero = tf.zeros((), _OPTIMIZER_DTYPE)

        def body(i, parameters, m, v, best_loss, best_parameters, counters, lr, losses):
            done, wait, plateau = tf.unstack(counters)
            step = tf.cast(done, tf.int32)
            if batch_size is None:
                batch = train
            else:
                index = tf.random.stateless_uniform([batch_size], seed=tf.stack([seed, step]),
                                                    maxval=n_samples, dtype=tf.int32)
                batch = tuple(tf.gather(item, index) for item in train)
            centers, values = tf.split(parameters, [2, -1], axis=1)
            loss_value, monitored, grad_centers, grad_values = _objective(
                loss, order, centers, values, batch, monitor, constants)
            improved = monitored < best_loss - _MIN_IMPROVEMENT * tf.abs(best_loss)
            best_loss = tf.where(improved, monitored, best_loss)
            best_parameters = tf.where(improved, parameters, best_parameters)
            t = tf.cast(step + 1, _OPTIMIZER_DTYPE)
            step_size = lr * tf.sqrt(1 - _ADAM_BETA2 ** t) / (1 - _ADAM_BETA1 ** t)
            # Adam.
            gradient = tf.concat([grad_centers, grad_values], axis=1)
            m = _ADAM_BETA1 * m + (1 - _ADAM_BETA1) * gradient
            v = _ADAM_BETA2 * v + (1 - _ADAM_BETA2) * tf.square(gradient)
            parameters = parameters - step_size * m / (tf.sqrt(v) + _ADAM_EPSILON)
            wait = tf.where(improved, zero, wait + 1)
            plateau = tf.where(improved, zero, plateau + 1)
            reduce_lr = plateau >= plateau_patience
            lr = tf.where(reduce_lr, 0.5 * lr, lr)
            plateau = tf.where(reduce_lr, zero, plateau)
            counters = tf.stack([done + 1, wait, plateau])
            return (i + 1, parameters, m, v, best_loss, best_parameters, counters, lr,
                    losses.write(i, tf.stack([loss_value, monitored])))

        def cond(i, *loop_state):
            counters = loop_state[_COUNTERS]
            return tf.logical_and(i < n_steps, counters[1] < patience)

        losses = tf.TensorArray(_OPTIMIZER_DTYPE, size=0, dynamic_size=True, element_shape=[2])
        _, *state, losses = tf.while_loop(cond, body, (tf.constant(0), *state, losses))
        return (*state, losses.stack())

    return run_chunk


# Background compilations of `_compiled_chunk` by its arguments (see
# `compile_optimizer_in_background`), and the lock that starts each once.
_COMPILING = {}
_COMPILING_LOCK = threading.Lock()


def _optimizer_key(config, n_train):
    """`_compiled_chunk`'s arguments for a fit of ``config`` on ``n_train`` samples."""
    batch_size = (config.batch_size if config.batch_size is not None
                  and config.batch_size < n_train else None)
    return config.loss, config.order, batch_size


def _run_once(key):
    """
    Compile the optimizer's program and run it once, on a few samples, one
    step; a program traced here is kept in `_program_cache` when this
    process exits (where `conf` allows). Best effort: should it fail, the
    fit compiles the program itself and reports what goes wrong.
    """
    dtype = _OPTIMIZER_DTYPE
    n_points, n_samples = 4, max(8, key[2] or 8)
    try:
        run_chunk = _compiled_chunk(*key)
        centers = tf.random.stateless_uniform((n_points, 2), seed=(0, 0), dtype=dtype)
        samples = (tf.random.stateless_uniform((n_samples, 2), seed=(0, 1), dtype=dtype),
                   tf.zeros((n_samples, 1), dtype), tf.ones(n_samples, dtype))
        constants = (tf.ones(1, dtype), tf.zeros(1, tf.float64), tf.ones(1, tf.float64),
                     tf.constant(0.0, dtype), tf.constant(0.0, dtype))
        with _without_graph_rewrites():
            run_chunk(*_initial_state(centers, tf.zeros((n_points, 1), dtype), 1e-3),
                      *samples, *samples, *constants, tf.constant(0, tf.int32),
                      tf.constant(1), tf.constant(1.0, dtype), tf.constant(1.0, dtype))
    except Exception:  # noqa: BLE001 (the fit's own call raises it, with context)
        return
    if conf.cache_compiled_program and _program_name(*key) not in _program_cache.loaded:
        # At exit (0.1 s, once per machine and version), not now: storing
        # here would delay this fit, and a thread storing after it would
        # outlive the fit into any pool forked next.
        atexit.register(_store_at_exit, os.getpid(), _program_name(*key), run_chunk)


def _store_at_exit(pid, name, run_chunk):
    """`_program_cache.store`, in the process that traced the program only
    (a child forked from it inherits the exit handler, not TensorFlow)."""
    if os.getpid() == pid and conf.cache_compiled_program:
        _program_cache.store(name, run_chunk)


def compile_optimizer_in_background(config, n_train):
    """
    Start compiling the optimizer's program for a fit of ``config`` on
    ``n_train`` samples in a thread, once per process, so that its first
    call (about 0.15 s on a 2-core CPU: tracing, then TensorFlow
    instantiating the program; about 0.14 s loaded from `_program_cache`)
    overlaps the work before the fit's first step; `fit_spline` waits for
    it.
    """
    key = _optimizer_key(config, n_train)
    with _COMPILING_LOCK:
        if key in _COMPILING:
            return
        # Started under the lock: a fit in another thread may join it at once.
        thread = _COMPILING[key] = threading.Thread(target=_run_once, args=(key,), daemon=True,
                                                    name='astrobgopt-compile')
        thread.start()


def _compiled_optimizer(config, n_train):
    """`_compiled_chunk` for the fit, once any background compilation of it is done."""
    key = _optimizer_key(config, n_train)
    compiling = _COMPILING.get(key)
    if compiling is not None:
        compiling.join()
    return _compiled_chunk(*key)


def _split_validation(n_samples, fraction, seed):
    """Boolean flags of the held-out samples (none when too few to be useful)."""
    n_held = int(round(fraction * n_samples))
    if n_held < _MIN_VALIDATION_SAMPLES or n_samples - n_held < _MIN_VALIDATION_SAMPLES:
        return np.zeros(n_samples, dtype=bool)
    held = np.zeros(n_samples, dtype=bool)
    held[np.random.default_rng(seed).choice(n_samples, n_held, replace=False)] = True
    return held


@single_threaded_blas
def fit_spline(points, values, usable_fraction, shape, config=FitConfig(), *, design=None,
               initial_values=None, outlier_cutoff=None, progress=None,
               progress_desc='spline fit'):
    """
    Fit a spline surface to weighted samples of an image.

    Parameters
    ----------
    points : `~numpy.ndarray`, shape (m, 2)
        Sample positions (x, y) in full-resolution pixel coordinates.
    values : `~numpy.ndarray`, shape (m,) or (m, k)
        Sample values (``k`` channels share the control points).
    usable_fraction : `~numpy.ndarray`, shape (m,)
        The usable fraction of each sample in [0, 1] (of a block's pixels,
        or a user sample's share of a block); 0 leaves a sample out.
    shape : tuple of int
        Full-resolution image shape (height, width): the domain of the
        control points.
    config : `~astrobgopt.config.FitConfig`, optional
        Fit options.
    design : `SplineDesign`, optional
        `make_design` of these points, shape and config, when refitting.
    initial_values : `~numpy.ndarray`, shape (n, k), optional
        Control values (data units) of an earlier fit with the same initial
        control points, to start the robust initialization from.
    outlier_cutoff : `~numpy.ndarray`, shape (m,), optional
        Each sample's cut-off of the robust loss (Tukey's biweight), in
        units of the samples' noise: 4 by default. The linear solves of the
        robust loss give no weight to a residual beyond it. Samples known
        to be background (a glow's, see
        `astrobgopt.extended.sky_light_cutoff`) take a larger one, so that
        the spline follows the glow's steep part instead of leaving it out.
    progress : bool or None, optional
        Show a progress bar: True always, False never, None only when the
        optimization runs longer than two seconds.
    progress_desc : str, optional
        Label of the progress bar.

    Returns
    -------
    model : `SplineModel`

    Raises
    ------
    ValueError
        If fewer samples are usable than the control points and the tail
        need, or ``outlier_cutoff`` is not one positive value per sample.

    Notes
    -----
    A fraction ``config.validation_fraction`` of the samples (chosen with
    ``config.seed``) is held out of the optimization; early stopping watches
    the loss on them, so the optimizer stops when moving the control points
    no longer generalizes (with many control points it would otherwise fit
    noise and faint sources). With the robust loss the values are finally
    re-solved on all samples at the chosen positions.
    """
    from tqdm.auto import tqdm

    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    points = np.asarray(points, dtype=np.float64)
    fraction = np.asarray(usable_fraction, dtype=np.float64)
    if config.epochs > 0:
        compile_optimizer_in_background(config, len(points))
    n_usable = np.count_nonzero(fraction > 0)
    if n_usable < config.n_points + tail_size(config.order):
        raise ValueError(
            f'only {n_usable} usable samples for {config.n_points} control points: '
            'use fewer control points (n_points), a smaller downscale factor, or mask less')

    design = make_design(points, shape, config) if design is None else design
    initial = design.initial_control_points
    length_scale = float(max(shape))

    # Standardize: values in units of their robust spread around the median
    # (float64, so that neither a large pedestal nor values near the float32
    # limit lose precision or overflow in the float32 optimization).
    used = values[fraction > 0]
    offset = np.median(used, axis=0)
    spread = mad_std(used, axis=0)
    spread = np.where(spread > 0, spread, np.where(np.ptp(used, axis=0) > 0,
                                                   np.ptp(used, axis=0), 1.0))
    target = (values - offset) / spread
    scaled_points = points / length_scale
    start = None if initial_values is None else (initial_values - offset) / spread

    held = (_split_validation(len(points), config.validation_fraction, config.seed)
            if config.epochs > 0 else np.zeros(len(points), dtype=bool))
    train = ~held
    basis, bending = design.basis, design.bending
    cutoff = None if outlier_cutoff is None else np.asarray(outlier_cutoff, dtype=np.float64)
    if cutoff is not None and (cutoff.shape != (len(points),) or not np.all(cutoff > 0)):
        raise ValueError(f'outlier_cutoff must hold one positive cut-off per sample '
                         f'({len(points)}); got shape {cutoff.shape}')
    # A slice where nothing is held out: no copy of the basis.
    rows = train if held.any() else slice(None)
    control, sigma = _initial_values(basis[rows], bending, target[rows], fraction[rows],
                                     config, start=start,
                                     cutoff=None if cutoff is None else cutoff[rows])
    # From here on, values are in units of the noise the initialization
    # leaves (times _NOISE_UNITS), not of the values' spread: that spread
    # grows when a smooth gradient is added to the data, the noise does not,
    # so the optimizer's steps (and its early stopping) mean the same on d
    # and on d + gradient.
    spread = spread * sigma * _NOISE_UNITS
    target, control = target / (sigma * _NOISE_UNITS), control / (sigma * _NOISE_UNITS)
    sigma = np.full_like(sigma, 1 / _NOISE_UNITS)

    history = np.full((1, 2), np.nan)
    stop_reason = 'no optimizer steps: robust initialization only'
    final_centers = initial / length_scale
    if config.epochs > 0:
        # The bending penalty is expressed relative to the data term, as in
        # the initialization, so `smoothing` means the same in both stages.
        normal_scale = (np.trace(basis.T @ (basis * fraction[:, None])) / len(fraction))
        smoothing_scale = config.smoothing * normal_scale / max(np.trace(bending), 1e-300)
        if config.loss == 'robust':
            smoothing_scale *= 0.5 / float(np.mean(sigma)) ** 2
        run_chunk = _compiled_optimizer(config, int(train.sum()))
        dtype = _OPTIMIZER_DTYPE
        # The offset and spread only enter the asymmetric loss, in float64.
        constants = (tf.constant(sigma, dtype), tf.constant(offset, tf.float64),
                     tf.constant(spread, tf.float64), tf.constant(config.alpha, dtype),
                     tf.constant(smoothing_scale, dtype))
        train_samples, monitor_samples = [
            tuple(tf.constant(item[rows], dtype) for item in (scaled_points, target, fraction))
            for rows in (train, held if held.any() else train)]
        centers = tf.constant(initial / length_scale, dtype)
        control_values = tf.constant(control, dtype)
        state = _initial_state(centers, control_values, config.learning_rate)
        fixed = (*train_samples, *monitor_samples, *constants, tf.constant(config.seed, tf.int32))
        patience = tf.constant(config.patience, dtype)
        plateau_patience = tf.constant(config.plateau_patience, dtype)
        bar = tqdm(total=config.epochs, desc=progress_desc, unit='step',
                   disable=progress is False, delay=0 if progress else 2.0, leave=False)
        history = []
        counters = np.zeros(3)
        with bar, _without_graph_rewrites():
            while True:
                n_steps = min(_STEPS_PER_CHUNK, config.epochs - int(counters[0]))
                *state, losses = run_chunk(*state, *fixed, tf.constant(n_steps), patience,
                                           plateau_patience)
                history.extend(losses.numpy().tolist())
                bar.update(len(losses))
                counters = state[_COUNTERS].numpy()
                if counters[1] >= config.patience:
                    monitored = 'held-out' if held.any() else 'training'
                    stop_reason = (f'early stop: {monitored} loss did not improve in '
                                   f'{config.patience} steps')
                    break
                if int(counters[0]) >= config.epochs:
                    stop_reason = f'reached epochs={config.epochs}'
                    break
        best_parameters = state[_BEST_PARAMETERS].numpy().astype(np.float64)
        # Each step records the losses of the parameters it started from, so
        # the first step's are the initialization's (the history's first row).
        history = [history[0], *history]
        final_centers, control = best_parameters[:, :2], best_parameters[:, 2:]
        basis, bending = _design(final_centers, scaled_points, config.order)
        if config.loss == 'robust' and held.any():
            control, _ = _initial_values(basis, bending, target, fraction, config, start=control,
                                         cutoff=cutoff)
        sigma = _robust_sigma(target - basis @ control, fraction)

    fitted = basis @ control
    noise = _SampleNoise(points=scaled_points, residual=target - fitted, fraction=fraction,
                         sigma=sigma, loss=config.loss, smoothing=config.smoothing,
                         cutoff=BIWEIGHT_CUTOFF if cutoff is None else cutoff)
    return SplineModel(control_points=final_centers * length_scale,
                       control_values=offset + spread * control,
                       initial_control_points=initial,
                       order=config.order,
                       loss_history=np.asarray(history),
                       noise_sigma=sigma * spread,
                       stop_reason=stop_reason,
                       sample_values=offset + spread * fitted,
                       value_offset=offset,
                       value_scale=spread,
                       _sample_noise=noise,
                       _length_scale=length_scale)
