"""
Polyharmonic splines with a polynomial tail, solved and applied in NumPy or
in TensorFlow (differentiably).

This replaces ``tensorflow_addons.image.interpolate_spline`` (which no longer
imports with Keras 3). The interpolant through control points :math:`c_i` with
values :math:`f_i` is

.. math::

    s(x) = \\sum_i w_i \\, \\phi(\\lVert x - c_i \\rVert) + \\sum_j a_j p_j(x),

with :math:`\\phi(r) = \\pm r^k` for odd order :math:`k` and
:math:`\\phi(r) = \\pm r^k \\log r` for even order (order 2 is the thin-plate
spline), and :math:`p_j` the monomials up to the tail's degree: 1 (a plane)
for orders 1 to 3 and 2 (a quadratic) for order 4, the least degree for which
:math:`r^4 \\log r` is conditionally positive definite. The sign is the one
that makes :math:`\\phi` conditionally positive definite (minus for orders 1
and 4, as SciPy's ``'linear'`` kernel :math:`-r`), so that the bending energy
:math:`w^T K w` is never negative and smoothing regularizes for every order.
The weights solve

.. math::

    \\begin{pmatrix} K + \\lambda I & P \\\\ P^T & 0 \\end{pmatrix}
    \\begin{pmatrix} w \\\\ a \\end{pmatrix} =
    \\begin{pmatrix} f \\\\ 0 \\end{pmatrix},

where :math:`K_{ij} = \\phi(\\lVert c_i - c_j \\rVert)`, :math:`P_{ij} = p_j(c_i)`
and :math:`\\lambda` is the smoothing (regularization) term. This is the
system that `scipy.interpolate.RBFInterpolator` solves with kernels
``'linear'``, ``'thin_plate_spline'`` and ``'cubic'`` and ``degree=1``.

Every function takes NumPy arrays or TensorFlow tensors and computes with
what it is given: one definition of the kernel and of the system serves both
(written against the small namespaces ``_NUMPY`` and ``_TENSORFLOW``). The
TensorFlow path is differentiable with respect to both the control-point
positions and their values, which is what the background fit optimizes
(with the gradient in closed form, `spline_at_points_with_gradient`); the
NumPy path evaluates fitted models without TensorFlow (so it is safe in a
forked process).

The module is about 700 lines because one kernel and one linear system
serve NumPy and TensorFlow alike, the fit's gradient is written out, and
the fast grid evaluation (bands of rows, separable resampling) must use
exactly that kernel.
"""

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
# Imported here, not on first use: it costs a third of a second, which would
# otherwise land on the first evaluation of a model.
from scipy import sparse

from ._choices import SUPPORTED_ORDERS, TAIL_DEGREE, tail_size
from ._startup import import_tensorflow

tf = import_tensorflow()

__all__ = ['interpolate_spline', 'solve_spline', 'apply_spline', 'apply_spline_grid',
           'spline_at_points_with_gradient', 'SplineAtPoints',
           'SplineGrid', 'SeparableResampler', 'linear_interpolation_matrix',
           'bending_energy', 'tail_size', 'SUPPORTED_ORDERS']


# Floor on squared distances under sqrt(): keeps its gradient finite where a
# query point sits exactly on a control point (odd orders).
_MIN_SQUARED_DISTANCE = {np.dtype(np.float32): 1e-20, np.dtype(np.float64): 1e-60}

# Sign making each kernel conditionally positive definite: (-1)**m for
# conditional order m (1 for r, 2 for r^2 log r and r^3, 3 for r^4 log r).
_KERNEL_SIGN = {1: -1.0, 2: 1.0, 3: 1.0, 4: -1.0}

# Working memory for one chunk of a full-image evaluation, in array elements
# (the kernel values of rows x width x n_points); 1 Mi elements is 8 MB in
# float64, a few such temporaries exist at once. Larger chunks were slower
# and erratic (4 Mi: 0.06-0.20 s for the exact 512 x 512 grid of 132 points,
# 1 Mi: 0.035-0.044 s), as fresh large temporaries page-fault.
_GRID_CHUNK_ELEMENTS = 1024 * 1024
# Output elements per sparse product of a resampling (2 MB of float64): the
# product's result is a temporary beside the output.
_RESAMPLE_BAND_ELEMENTS = 256 * 1024


@functools.cache
def blas_controller():
    """
    The `threadpoolctl.ThreadpoolController` of the BLAS libraries loaded
    (made once: finding them takes 0.02 s, so the numerical core's loading
    makes it, not the first fit).
    """
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def single_threaded_blas(func):
    """
    Run ``func`` with NumPy's BLAS limited to one thread.

    The fit's matrices are small (about 12,000 x 256): a multithreaded
    OpenBLAS spends more time waking and spin-waiting its threads than
    multiplying, and with TensorFlow's threads (or other processes) on the
    same cores it was measured 10-50 times slower than one thread. The
    parallelism that pays is coarser: row chunks of an image evaluate in
    parallel threads, each with one BLAS thread.
    """
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with blas_controller().limit(limits=1, user_api='blas'):
            return func(*args, **kwargs)

    return wrapper


def _xlogy_numpy(x, y):
    """``x * log(y)`` for ``y >= 0`` that is 0 where ``x`` and ``y`` are: the kernel's
    only use (scipy.special.xlogy, general, is three times slower)."""
    # In place: the grid evaluation is bound by memory traffic and page faults.
    result = np.maximum(y, np.finfo(y.dtype).tiny)
    np.log(result, out=result)
    result *= x
    return result


# The array functions the spline needs, by library (same call signatures).
_NUMPY = SimpleNamespace(concat=np.concatenate, expand_dims=np.expand_dims, eye=np.eye,
                         matmul=np.matmul, maximum=np.maximum, ones_like=np.ones_like,
                         pad=np.pad, shape=np.shape, solve=np.linalg.solve, sqrt=np.sqrt,
                         stack=np.stack, sum=np.sum, transpose=np.transpose,
                         unstack=lambda array, axis: np.moveaxis(array, axis, 0),
                         xlogy=_xlogy_numpy, zeros=np.zeros)
_TENSORFLOW = SimpleNamespace(concat=tf.concat, expand_dims=tf.expand_dims, eye=tf.eye,
                              matmul=tf.matmul, maximum=tf.maximum, ones_like=tf.ones_like,
                              pad=tf.pad, shape=tf.shape, solve=tf.linalg.solve, sqrt=tf.sqrt,
                              stack=tf.stack, sum=tf.reduce_sum, transpose=tf.transpose,
                              unstack=tf.unstack, xlogy=tf.math.xlogy, zeros=tf.zeros)


def _is_tensor(item):
    # NumPy arrays answered first: tf.is_tensor checks a runtime protocol,
    # slow beside the small NumPy evaluations a fit makes by the hundred.
    return not isinstance(item, np.ndarray) and (tf.is_tensor(item)
                                                 or isinstance(item, tf.Variable))


def _ops(*items):
    """TensorFlow's functions when any item is a tensor, else NumPy's."""
    return _TENSORFLOW if any(_is_tensor(item) for item in items) else _NUMPY


def _check_order(order):
    if order not in SUPPORTED_ORDERS:
        raise ValueError(f'order must be one of {SUPPORTED_ORDERS}; got {order!r}')


def _kernel(squared_distance, order, ops):
    """Polyharmonic radial basis function evaluated from squared distances."""
    r2 = squared_distance
    sign = _KERNEL_SIGN[order]
    if order % 2 == 0:
        # r^k log r == 0.5 * r2^(k/2) * log(r2). xlogy is 0 at r2 == 0 with
        # zero gradients there, and one pass over the array instead of three
        # (the grid evaluation is memory-bound).
        return ops.xlogy((0.5 * sign) * (r2 if order == 2 else r2 * r2), r2)
    # Integer powers as products: pow is several times slower on CPU. The
    # floor keeps the gradient of sqrt finite where a point sits on a centre.
    dtype = np.dtype(getattr(r2.dtype, 'as_numpy_dtype', r2.dtype))
    r = ops.sqrt(ops.maximum(r2, _MIN_SQUARED_DISTANCE[dtype]))
    return sign * r if order == 1 else r2 * r


def _kernel_slope(squared_distance, kernel, order):
    """
    The derivative of `_kernel` with respect to the squared distance, from
    the squared distances and the kernel's values (TensorFlow; no second
    logarithm), finite where a point sits on a centre.
    """
    sign = _KERNEL_SIGN[order]
    floor = _MIN_SQUARED_DISTANCE[np.dtype(squared_distance.dtype.as_numpy_dtype)]
    r2 = tf.maximum(squared_distance, floor)
    if order == 2:  # 0.5 r2 log r2 -> 0.5 (log r2 + 1)
        slope = kernel / r2 + 0.5 * sign
    elif order == 4:  # 0.5 r2^2 log r2 -> r2 log r2 + 0.5 r2
        slope = 2.0 * kernel / r2 + (0.5 * sign) * r2
    else:  # r -> 1 / (2 r); r^3 -> 1.5 r
        r = tf.sqrt(r2)
        slope = (0.5 * sign) / r if order == 1 else 1.5 * r
    # On a centre, zero: what automatic differentiation of `_kernel` gives
    # (xlogy's gradient at 0, the floor's below it).
    return tf.where(squared_distance > floor, slope, tf.zeros_like(slope))


def _squared_distance(points_a, points_b, ops):
    """Pairwise squared Euclidean distances, shape (len(a), len(b))."""
    # A sum of per-axis squares: no (len(a), len(b), d) temporary to reduce.
    # Whole columns (unstacked, not sliced): in a compiled fit every slice is
    # four operations to trace and run.
    total = 0
    for column_a, column_b in zip(ops.unstack(points_a, axis=1), ops.unstack(points_b, axis=1)):
        difference = ops.expand_dims(column_a, 1) - column_b
        total = total + difference * difference
    return total


def _polynomial_basis(points, order, ops):
    """The tail's monomials at each point: 1, x, y, ... then x^2, xy, y^2, ..."""
    # Whole columns at once: in a compiled fit every slice is operations to
    # trace and run.
    linear = ops.pad(points, [[0, 0], [1, 0]], constant_values=1)
    if TAIL_DEGREE[order] == 1:
        return linear
    coordinates = ops.unstack(points, axis=1)
    return ops.concat([linear, ops.stack([x_i * x_j for i, x_i in enumerate(coordinates)
                                          for x_j in coordinates[i:]], axis=1)], axis=1)


def _squared_distance_gradient(d_distances, points, centers):
    """
    The gradient with respect to ``centers`` (n, d) of
    ``sum(d_distances * _squared_distance(points, centers))`` (TensorFlow):
    ``-2 sum_i h_ij (p_i - c_j)`` for centre ``j``.
    """
    return 2.0 * (centers * tf.expand_dims(tf.reduce_sum(d_distances, axis=0), 1)
                  - tf.matmul(d_distances, points, transpose_a=True))


def _polynomial_basis_gradient(points, d_basis, order):
    """
    The gradient with respect to ``points`` of
    ``sum(d_basis * _polynomial_basis(points, order))`` (TensorFlow).
    """
    n_dims = points.shape[1]
    gradient = d_basis[:, 1:1 + n_dims]
    if TAIL_DEGREE[order] == 2:
        # The column of x_i x_j moves with x_i by x_j and with x_j by x_i.
        terms = [[] for _ in range(n_dims)]
        column = 1 + n_dims
        for i in range(n_dims):
            for j in range(i, n_dims):
                terms[i].append(d_basis[:, column] * points[:, j])
                terms[j].append(d_basis[:, column] * points[:, i])
                column += 1
        gradient += tf.stack([tf.add_n(term) for term in terms], axis=1)
    return gradient


def _determines_tail(centers, order):
    """Whether control points (n, d) determine the polynomial tail uniquely."""
    basis = _polynomial_basis(np.asarray(centers, dtype=np.float64), order, _NUMPY)
    return np.linalg.matrix_rank(basis) == basis.shape[1]


def solve_spline(centers, values, *, order=2, regularization=0.0):
    """
    Solve for the weights of the polyharmonic spline through control points.

    Parameters
    ----------
    centers : `~numpy.ndarray` or `tf.Tensor`, shape (n, d)
        Control-point coordinates.
    values : `~numpy.ndarray` or `tf.Tensor`, shape (n, k)
        Values at the control points (``k`` independent channels), of the
        same dtype as ``centers``.
    order : int, optional
        Spline order, one of `SUPPORTED_ORDERS`.
    regularization : float, optional
        Smoothing added to the diagonal of the kernel matrix; 0 interpolates.

    Returns
    -------
    weights : `~numpy.ndarray` or `tf.Tensor`, shape (n, k)
        Radial-basis weights :math:`w` (tensors when any input is one).
    polynomial : `~numpy.ndarray` or `tf.Tensor`, shape (`tail_size`, k)
        Coefficients :math:`a` of the polynomial tail.
    """
    _check_order(order)
    ops = _ops(centers, values)
    kernel = _kernel(_squared_distance(centers, centers, ops), order, ops)
    if regularization:
        kernel += regularization * ops.eye(ops.shape(centers)[0], dtype=centers.dtype)
    _, weights, polynomial = _solve_system(centers, values, kernel, order, ops)
    return weights, polynomial


def _solve_system(centers, values, kernel, order, ops):
    """
    The spline's linear system for control points with ``kernel`` (their
    kernel matrix) and ``values``: its matrix, and its solution's weights
    and tail coefficients.
    """
    poly = _polynomial_basis(centers, order, ops)
    n_tail = poly.shape[1]
    top = ops.concat([kernel, poly], axis=1)
    bottom = ops.concat([ops.transpose(poly),
                         ops.zeros((n_tail, n_tail), dtype=centers.dtype)], axis=1)
    lhs = ops.concat([top, bottom], axis=0)
    solution = ops.solve(lhs, ops.pad(values, [[0, n_tail], [0, 0]]))
    # Split from the end: the tail's size is static, the number of points
    # not (compiled callers leave it open).
    return lhs, solution[:-n_tail], solution[-n_tail:]


def apply_spline(centers, weights, polynomial, query_points, *, order=2):
    """
    Evaluate a solved polyharmonic spline at arbitrary points.

    Parameters
    ----------
    centers : `~numpy.ndarray` or `tf.Tensor`, shape (n, d)
        Control-point coordinates.
    weights, polynomial : `~numpy.ndarray` or `tf.Tensor`
        The output of `solve_spline`.
    query_points : `~numpy.ndarray` or `tf.Tensor`, shape (m, d)
        Where to evaluate.
    order : int, optional
        Spline order used in `solve_spline`.

    Returns
    -------
    values : `~numpy.ndarray` or `tf.Tensor`, shape (m, k)
        A tensor when any input is one.
    """
    ops = _ops(centers, weights, polynomial, query_points)
    tail = ops.matmul(_polynomial_basis(query_points, order, ops), polynomial)
    kernel = _kernel(_squared_distance(query_points, centers, ops), order, ops)
    return ops.matmul(kernel, weights) + tail


class SplineAtPoints(NamedTuple):
    """
    A spline solved and evaluated at sample points by
    `spline_at_points_with_gradient` (TensorFlow).

    Attributes
    ----------
    weights, polynomial : `tf.Tensor`
        As `solve_spline` returns them.
    fitted : `tf.Tensor`, shape (m, k)
        The spline at the points.
    gradient : callable
        ``gradient(d_fitted, energy_weight)``: the gradient, with respect to
        the control points and their values, of
        ``loss(fitted) + energy_weight * sum(weights * values)`` (the second
        term is the bending energy, see `bending_energy`), given
        ``d_fitted``, the gradient of ``loss`` with respect to ``fitted``.
        Returns ``(d_centers, d_values)``.
    """

    weights: object
    polynomial: object
    fitted: object
    gradient: object


def spline_at_points_with_gradient(centers, values, points, *, order=2):
    """
    Solve the spline through control points, evaluate it at sample points,
    and give the gradient of a loss of those evaluations in closed form
    (TensorFlow).

    This is the fit's step. With the system ``A u = (values, 0)`` and
    ``f = B u`` at the points, a loss gradient ``g = dL/df`` gives the
    adjoint ``lam = A^-1 (B^T g)`` (``A`` is symmetric), ``dL/dvalues``
    (``lam``'s first rows) and ``dL/dA = -lam u^T``, which the kernel's
    slope carries to the control points. Automatic differentiation of
    `solve_spline` and `apply_spline` adds some 230 operations to a
    compiled program, this about 70; every new process traces and first
    runs the fit's program, and with this and the closed forms of the data
    terms (`astrobgopt.optimize`) that took 0.16 s instead of 0.22 s on a
    CPU.

    Parameters
    ----------
    centers : `tf.Tensor`, shape (n, d)
        Control-point coordinates.
    values : `tf.Tensor`, shape (n, k)
        Values at the control points.
    points : `tf.Tensor`, shape (m, d)
        Where to evaluate.
    order : int, optional
        Spline order, one of `SUPPORTED_ORDERS`.

    Returns
    -------
    spline : `SplineAtPoints`
    """
    _check_order(order)
    ops = _TENSORFLOW
    center_distances = _squared_distance(centers, centers, ops)
    center_kernel = _kernel(center_distances, order, ops)
    lhs, weights, polynomial = _solve_system(centers, values, center_kernel, order, ops)
    point_distances = _squared_distance(points, centers, ops)
    point_kernel = _kernel(point_distances, order, ops)
    point_tail = _polynomial_basis(points, order, ops)
    fitted = tf.matmul(point_kernel, weights) + tf.matmul(point_tail, polynomial)

    def gradient(d_fitted, energy_weight):
        d_solution = tf.concat([tf.matmul(point_kernel, d_fitted, transpose_a=True)
                                + energy_weight * values,
                                tf.matmul(point_tail, d_fitted, transpose_a=True)], axis=0)
        adjoint = tf.linalg.solve(lhs, d_solution)
        n_tail = tail_size(order, centers.shape[1])
        adjoint_weights, adjoint_tail = adjoint[:-n_tail], adjoint[-n_tail:]
        # dL/dA = -adjoint solution^T, by block: the control points' kernel
        # (symmetrized, as K_ij and K_ji both move with c_i) and their tail.
        d_center_kernel = -(tf.matmul(adjoint_weights, weights, transpose_b=True)
                            + tf.matmul(weights, adjoint_weights, transpose_b=True))
        d_center_tail = -(tf.matmul(adjoint_weights, polynomial, transpose_b=True)
                          + tf.matmul(weights, adjoint_tail, transpose_b=True))
        d_point_kernel = tf.matmul(d_fitted, weights, transpose_b=True)
        d_centers = (
            _squared_distance_gradient(
                d_center_kernel * _kernel_slope(center_distances, center_kernel, order),
                centers, centers)
            + _squared_distance_gradient(
                d_point_kernel * _kernel_slope(point_distances, point_kernel, order),
                points, centers)
            + _polynomial_basis_gradient(centers, d_center_tail, order))
        return d_centers, adjoint_weights + energy_weight * weights

    return SplineAtPoints(weights, polynomial, fitted, gradient)


def bending_energy(centers, weights, *, order=2):
    """
    Bending energy ``sum_k w_k^T K w_k`` of a solved spline.

    For the thin-plate spline this is proportional to the integral of the
    squared second derivatives over the plane: a measure of how far the
    surface departs from a plane. It is zero for a surface the tail
    reproduces, and never negative (the kernel's sign is chosen for that).

    Parameters
    ----------
    centers : `~numpy.ndarray` or `tf.Tensor`, shape (n, d)
        Control-point coordinates.
    weights : `~numpy.ndarray` or `tf.Tensor`, shape (n, k)
        Radial-basis weights from `solve_spline`.
    order : int, optional
        Spline order.

    Returns
    -------
    energy : float or `tf.Tensor`, scalar
    """
    ops = _ops(centers, weights)
    kernel = _kernel(_squared_distance(centers, centers, ops), order, ops)
    return ops.sum(weights * ops.matmul(kernel, weights))


def _grid_rows(y, x, centers, weights, polynomial, order):
    """Spline values on the grid rows ``y`` x columns ``x`` (2-D centers), NumPy."""
    # Squared distances separate into row and column terms, so the
    # (rows, width, n) array is built from two small ones by broadcasting.
    dy2 = np.square(y[:, None] - centers[None, :, 1])
    dx2 = np.square(x[:, None] - centers[None, :, 0])
    kernel = _kernel(dy2[:, None, :] + dx2[None, :, :], order, _NUMPY)
    yy, xx = np.meshgrid(y, x, indexing='ij')
    tail = _polynomial_basis(np.stack([xx.ravel(), yy.ravel()], axis=1), order, _NUMPY)
    values = kernel.reshape(-1, len(centers)) @ weights + tail @ polynomial
    return values.reshape(len(y), len(x), -1)


def _cubic_convolution_matrix(n_out, step, n_nodes):
    """
    Sparse (n_out, n_nodes) weights of cubic convolution (Catmull-Rom) from
    nodes at ``(j - 1) * step`` to outputs at ``0 .. n_out - 1``.
    """
    position = np.arange(n_out) / step + 1.0
    base = np.floor(position).astype(int)
    t = position - base
    weights = np.stack([(-t ** 3 + 2 * t ** 2 - t) / 2, (3 * t ** 3 - 5 * t ** 2 + 2) / 2,
                        (-3 * t ** 3 + 4 * t ** 2 + t) / 2, (t ** 3 - t ** 2) / 2], axis=1)
    columns = base[:, None] + np.arange(-1, 3)[None, :]
    rows = np.repeat(np.arange(n_out), 4)
    return sparse.csr_matrix((weights.ravel(), (rows, columns.ravel())),
                             shape=(n_out, n_nodes))


def _exact_grid(centers, weights, polynomial, x, y, order, out, offset, scale):
    """``offset + scale *`` the spline at every (y, x) of the grid, rows in chunks
    of bounded size, written into ``out``: the spline in ``out``'s precision
    (float32 costs a fraction of float64's time), the offset added in float64."""
    precision = np.float32 if out.dtype == np.float32 else np.float64
    centers, weights, polynomial, x, y = (item.astype(precision, copy=False) for item in
                                          (centers, weights, polynomial, x, y))
    rows_per_chunk = max(1, _GRID_CHUNK_ELEMENTS // max(1, len(x) * len(centers)))

    def evaluate_chunk(start):
        stop = min(start + rows_per_chunk, len(y))
        out[start:stop] = offset + scale * _grid_rows(y[start:stop], x, centers, weights,
                                                      polynomial, order)

    starts = range(0, len(y), rows_per_chunk)
    if len(starts) == 1:
        evaluate_chunk(0)
    else:
        # NumPy releases the GIL in its loops: chunks run in parallel threads.
        with ThreadPoolExecutor(min(len(starts), os.cpu_count() or 1)) as pool:
            list(pool.map(evaluate_chunk, starts))
    return out


class SeparableResampler:
    """
    A (ny, nx, k) grid of nodes resampled to a finer grid by sparse
    separable weights, a band of output rows at a time.

    Parameters
    ----------
    nodes : `~numpy.ndarray`, shape (ny, nx, k)
        Values at the nodes.
    along_y, along_x : `scipy.sparse.csr_matrix`
        Weights from node rows to output rows (height, ny) and from node
        columns to output columns (width, nx).

    Notes
    -----
    The columns are resampled once, on the few node rows; each band of
    output rows is then one sparse product. Memory beyond the output band
    is ``ny * width * k`` values.
    """

    def __init__(self, nodes, along_y, along_x):
        self.shape = (along_y.shape[0], along_x.shape[0])
        self._along_y = along_y
        # (k, ny, width): node rows already resampled along x, C-contiguous:
        # a sparse product flattens its dense operand, which copies a
        # transposed one on every band (0.6 s of a 24-megapixel evaluation).
        self._node_rows = np.ascontiguousarray(np.stack([(along_x @ nodes[..., channel].T).T
                                                         for channel in range(nodes.shape[2])]))

    def rows(self, start=0, stop=None, *, dtype=np.float32, out=None):
        """
        Output rows ``start:stop`` as (stop - start, width, k) of ``dtype``,
        written into ``out`` when given.
        """
        stop = self.shape[0] if stop is None else stop
        if out is None:
            out = np.empty((stop - start, self.shape[1], len(self._node_rows)), dtype=dtype)
        band = max(1, _RESAMPLE_BAND_ELEMENTS // self.shape[1])
        for channel, node_rows in enumerate(self._node_rows):
            for first in range(start, stop, band):
                last = min(first + band, stop)
                out[first - start:last - start, :, channel] = self._along_y[first:last] @ node_rows
        return out


def linear_interpolation_matrix(n_out, n_nodes, first, spacing):
    """
    Sparse (n_out, n_nodes) weights of linear interpolation between nodes at
    ``first + j * spacing`` to the outputs 0 to ``n_out - 1``, constant beyond
    the first and last node.
    """
    position = np.clip((np.arange(n_out) - first) / spacing, 0, n_nodes - 1)
    base = np.minimum(np.floor(position).astype(int), max(n_nodes - 2, 0))
    t = position - base
    upper = np.minimum(base + 1, n_nodes - 1)
    rows = np.repeat(np.arange(n_out), 2)
    return sparse.csr_matrix((np.stack([1 - t, t], axis=1).ravel(),
                              (rows, np.stack([base, upper], axis=1).ravel())),
                             shape=(n_out, n_nodes))


class SplineGrid:
    """
    A 2-D spline on a regular grid, evaluated in NumPy a band of rows at a
    time, in bounded memory (see `apply_spline_grid` for the parameters).

    With ``step > 1`` the exact evaluations at the nodes are made once, on
    construction; `rows` then costs a sparse product per band, so an image
    larger than memory is evaluated band by band at the cost of one pass.
    """

    @single_threaded_blas
    def __init__(self, centers, weights, polynomial, x, y, *, order=2, step=1, offset=0.0,
                 scale=1.0):
        _check_order(order)
        centers, weights, polynomial, x, y = (np.asarray(item, dtype=np.float64) for item in
                                              (centers, weights, polynomial, x, y))
        self._spline = (centers, weights, polynomial, order)
        self._x, self._y = x, y
        self._offset = np.asarray(offset, dtype=np.float64)
        self._scale = np.asarray(scale, dtype=np.float64)
        self.shape = (len(y), len(x))
        self._resampler = None
        if step == 1 or len(x) < 2 or len(y) < 2:
            return
        node_x, node_y = (axis[0] + (np.arange(int(np.ceil((len(axis) - 1) / step)) + 4) - 1)
                          * step * (axis[1] - axis[0]) for axis in (x, y))
        nodes = _exact_grid(*self._spline[:3], node_x, node_y, order,
                            np.empty((len(node_y), len(node_x), weights.shape[1])),
                            self._offset, self._scale)
        self._resampler = SeparableResampler(
            nodes, _cubic_convolution_matrix(len(y), step, len(node_y)),
            _cubic_convolution_matrix(len(x), step, len(node_x)))

    @single_threaded_blas
    def rows(self, start=0, stop=None, *, dtype=np.float32, out=None):
        """
        Grid rows ``start:stop``: ``offset + scale * spline`` as
        (stop - start, len(x), k) of ``dtype``, written into ``out`` when given.
        """
        stop = self.shape[0] if stop is None else stop
        if self._resampler is not None:
            return self._resampler.rows(start, stop, dtype=dtype, out=out)
        centers, weights, polynomial, order = self._spline
        if out is None:
            out = np.empty((stop - start, len(self._x), weights.shape[1]), dtype=dtype)
        return _exact_grid(centers, weights, polynomial, self._x, self._y[start:stop], order,
                           out, self._offset, self._scale)


def apply_spline_grid(centers, weights, polynomial, x, y, *, order=2, step=1,
                      dtype=np.float32, offset=0.0, scale=1.0):
    """
    Evaluate a 2-D spline on a full regular grid in bounded memory, in NumPy.

    With ``step=1`` every grid point is evaluated exactly, in blocks of rows
    so that the kernel array never exceeds a few tens of megabytes. With
    ``step > 1`` the spline is evaluated exactly on every ``step``-th point of
    the grid, extended by a node beyond each edge, and interpolated in
    between by separable cubic convolution (Catmull-Rom): ``step**2`` times
    less kernel work. A spline varies on the scale of its control-point
    spacing; `SplineModel.evaluate_image
    <astrobgopt.optimize.SplineModel.evaluate_image>` chooses ``step`` from
    it. The exact evaluations are in float64, or in float32 when ``dtype`` is
    float32 and ``step=1``; the offset is added in float64. `SplineGrid`
    evaluates the same grid a band of rows at a time.

    Parameters
    ----------
    centers : array-like, shape (n, 2)
        Control points as (x, y), in the same coordinates as ``x`` and ``y``.
    weights, polynomial : array-like
        The output of `solve_spline` (shapes (n, k) and (`tail_size`, k)).
    x, y : 1-D array-like
        Column and row coordinates of the grid (evenly spaced when
        ``step > 1``).
    order : int, optional
        Spline order.
    step : int, optional
        Grid points between exact evaluations (1: all exact).
    dtype : dtype, optional
        dtype of the result.
    offset, scale : float or array-like of shape (k,), optional
        The result is ``offset + scale * spline``, formed in float64: a
        spline fitted to standardized values is returned in data units
        without losing precision to a large offset.

    Returns
    -------
    values : `~numpy.ndarray`, shape (len(y), len(x), k)
    """
    return SplineGrid(centers, weights, polynomial, x, y, order=order, step=step, offset=offset,
                      scale=scale).rows(dtype=dtype)


def interpolate_spline(train_points, train_values, query_points, *, order=2,
                       regularization=0.0):
    """
    Interpolate scattered data with a polyharmonic spline.

    Parameters
    ----------
    train_points : array-like or `tf.Tensor`, shape (n, d)
        Control-point coordinates.
    train_values : array-like or `tf.Tensor`, shape (n,) or (n, k)
        Values at the control points; a 2-D array holds ``k`` channels that
        share the control points.
    query_points : array-like or `tf.Tensor`, shape (m, d)
        Points at which to evaluate the spline.
    order : {1, 2, 3, 4}, optional
        Polyharmonic order: 1 is :math:`r`, 2 the thin-plate spline
        :math:`r^2 \\log r`, 3 is :math:`r^3`, 4 is :math:`r^4 \\log r` (with
        a quadratic tail).
    regularization : float, optional
        Smoothing: 0 interpolates exactly; larger values trade fidelity at the
        control points for a smoother surface (as ``smoothing`` in
        `scipy.interpolate.RBFInterpolator`).

    Returns
    -------
    values : `~numpy.ndarray` or `tf.Tensor`, shape (m,) or (m, k)
        A NumPy array computed in NumPy when every input was NumPy (or a
        sequence); a tensor computed in TensorFlow when any input was a
        tensor, so that gradients flow to the control points and their
        values. The dtype is float64 when any input is float64, otherwise
        float32.

    Examples
    --------
    >>> import numpy as np
    >>> from astrobgopt.spline import interpolate_spline
    >>> points = np.array([[0., 0.], [1., 0.], [0., 1.], [1., 1.], [0.5, 0.5]])
    >>> values = np.array([0., 1., 1., 2., 1.5])
    >>> interpolate_spline(points, values, points).round(6) + 0.0  # + 0.0 turns -0.0 into 0.0
    array([0. , 1. , 1. , 2. , 1.5])
    """
    _check_order(order)
    inputs = (train_points, train_values, query_points)
    return_tensor = any(_is_tensor(item) for item in inputs)
    dtypes = {np.dtype(getattr(item.dtype, 'as_numpy_dtype', item.dtype))
              if hasattr(item, 'dtype') else np.dtype(np.float64) for item in inputs}
    dtype = np.float64 if np.dtype(np.float64) in dtypes else np.float32
    if return_tensor:
        centers, values, queries = (tf.cast(tf.convert_to_tensor(item), dtype)
                                    for item in inputs)
    else:
        centers, values, queries = (np.asarray(item, dtype=dtype) for item in inputs)
    if len(centers.shape) != 2:
        raise ValueError(f'train_points must have shape (n, d); got {tuple(centers.shape)}')
    if len(queries.shape) != 2 or queries.shape[1] != centers.shape[1]:
        raise ValueError(f'query_points must have shape (m, {centers.shape[1]}); '
                         f'got {tuple(queries.shape)}')
    squeeze = len(values.shape) == 1
    if squeeze:
        values = values[:, None]
    if len(values.shape) != 2 or values.shape[0] != centers.shape[0]:
        raise ValueError(f'train_values must have shape ({centers.shape[0]},) or '
                         f'({centers.shape[0]}, k); got {tuple(values.shape)}')
    n_tail = tail_size(order, centers.shape[1])
    if centers.shape[0] < n_tail:
        raise ValueError(f'at least {n_tail} control points are needed for the polynomial '
                         f'tail of order {order} in {centers.shape[1]} dimensions')

    weights, polynomial = solve_spline(centers, values, order=order,
                                       regularization=regularization)
    result = apply_spline(centers, weights, polynomial, queries, order=order)
    return result[:, 0] if squeeze else result
