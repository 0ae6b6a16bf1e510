"""
Polyharmonic splines with a linear polynomial tail, solved and applied in
TensorFlow.

This replaces ``tensorflow_addons.image.interpolate_spline`` (which no longer
imports with Keras 3). The interpolant through control points :math:`c_i` with
values :math:`f_i` is

.. math::

    s(x) = \\sum_i w_i \\, \\phi(\\lVert x - c_i \\rVert) + a_0 + a^T x,

with :math:`\\phi(r) = r^k` for odd order :math:`k` and
:math:`\\phi(r) = r^k \\log r` for even order (order 2 is the thin-plate
spline). The weights solve

.. math::

    \\begin{pmatrix} K + \\lambda I & P \\\\ P^T & 0 \\end{pmatrix}
    \\begin{pmatrix} w \\\\ a \\end{pmatrix} =
    \\begin{pmatrix} f \\\\ 0 \\end{pmatrix},

where :math:`K_{ij} = \\phi(\\lVert c_i - c_j \\rVert)`, :math:`P = [1, c]` and
:math:`\\lambda` is the smoothing (regularization) term. This is the same
system that `scipy.interpolate.RBFInterpolator` solves with ``degree=1``.

Everything here is differentiable with respect to both the control-point
positions and their values, which is what the background fit optimizes.
"""

import numpy as np
import tensorflow as tf

from ._choices import SUPPORTED_ORDERS

__all__ = ['interpolate_spline', 'solve_spline', 'apply_spline', 'apply_spline_grid',
           'bending_energy', 'SUPPORTED_ORDERS']


# Floor on squared distances under sqrt(): keeps its gradient finite where a
# query point sits exactly on a control point (odd orders).
_MIN_SQUARED_DISTANCE = {tf.float32: 1e-20, tf.float64: 1e-60}

# Working memory for one chunk of a full-image evaluation, in array elements
# (the kernel values of rows x width x n_points); 4 Mi elements is 16 MB in
# float32, a few such temporaries exist at once.
_GRID_CHUNK_ELEMENTS = 4 * 1024 * 1024


def _check_order(order):
    if order not in SUPPORTED_ORDERS:
        raise ValueError(f'order must be one of {SUPPORTED_ORDERS}; got {order!r}')


def _kernel(squared_distance, order):
    """Polyharmonic radial basis function evaluated from squared distances."""
    r2 = squared_distance
    if order % 2 == 0:
        # r^k log r == 0.5 * r2^(k/2) * log(r2). xlogy is 0 at r2 == 0 with
        # zero gradients there, and one pass over the tensor instead of three
        # (the grid evaluation is memory-bound).
        return 0.5 * tf.math.xlogy(r2 if order == 2 else r2 * r2, r2)
    # Integer powers as products: tf.pow is several times slower on CPU. The
    # floor keeps the gradient of sqrt finite where a point sits on a centre.
    r = tf.sqrt(tf.maximum(r2, _MIN_SQUARED_DISTANCE[r2.dtype]))
    return r if order == 1 else r2 * r


def _squared_distance(points_a, points_b):
    """Pairwise squared Euclidean distances, shape (len(a), len(b))."""
    # A sum of per-axis squares: no (len(a), len(b), d) temporary to reduce.
    return tf.add_n([tf.square(points_a[:, axis, None] - points_b[None, :, axis])
                     for axis in range(points_a.shape[1])])


def _with_ones(points):
    """The linear polynomial basis [1, x, y, ...] at each point."""
    ones = tf.ones_like(points[:, :1])
    return tf.concat([ones, points], axis=1)


def solve_spline(centers, values, *, order=2, regularization=0.0):
    """
    Solve for the weights of the polyharmonic spline through control points.

    Parameters
    ----------
    centers : `tf.Tensor`, shape (n, d)
        Control-point coordinates.
    values : `tf.Tensor`, shape (n, k)
        Values at the control points (``k`` independent channels).
    order : int, optional
        Spline order, one of `SUPPORTED_ORDERS`.
    regularization : float, optional
        Smoothing added to the diagonal of the kernel matrix; 0 interpolates.

    Returns
    -------
    weights : `tf.Tensor`, shape (n, k)
        Radial-basis weights :math:`w`.
    polynomial : `tf.Tensor`, shape (d + 1, k)
        Coefficients :math:`(a_0, a)` of the linear tail.
    """
    _check_order(order)
    # Dynamic sizes: compiled callers relax the number of points to None.
    n_points = tf.shape(centers)[0]
    n_dims = centers.shape[1]
    kernel = _kernel(_squared_distance(centers, centers), order)
    if regularization:
        kernel += tf.cast(regularization, centers.dtype) * tf.eye(n_points, dtype=centers.dtype)
    poly = _with_ones(centers)
    top = tf.concat([kernel, poly], axis=1)
    bottom = tf.concat([tf.transpose(poly),
                        tf.zeros((n_dims + 1, n_dims + 1), dtype=centers.dtype)], axis=1)
    lhs = tf.concat([top, bottom], axis=0)
    tail_rows = tf.zeros(tf.stack([n_dims + 1, tf.shape(values)[1]]), dtype=values.dtype)
    rhs = tf.concat([values, tail_rows], axis=0)
    solution = tf.linalg.solve(lhs, rhs)
    return solution[:n_points], solution[n_points:]


def apply_spline(centers, weights, polynomial, query_points, *, order=2):
    """
    Evaluate a solved polyharmonic spline at arbitrary points.

    Parameters
    ----------
    centers : `tf.Tensor`, shape (n, d)
        Control-point coordinates.
    weights, polynomial : `tf.Tensor`
        The output of `solve_spline`.
    query_points : `tf.Tensor`, shape (m, d)
        Where to evaluate.
    order : int, optional
        Spline order used in `solve_spline`.

    Returns
    -------
    values : `tf.Tensor`, shape (m, k)
    """
    kernel = _kernel(_squared_distance(query_points, centers), order)
    return tf.matmul(kernel, weights) + tf.matmul(_with_ones(query_points), polynomial)


def bending_energy(centers, weights, *, order=2):
    """
    Bending energy ``sum_k w_k^T K w_k`` of a solved spline.

    For the thin-plate spline this is proportional to the integral of the
    squared second derivatives over the plane: a measure of how far the
    surface departs from a plane. It is zero for a linear surface.

    Parameters
    ----------
    centers : `tf.Tensor`, shape (n, d)
        Control-point coordinates.
    weights : `tf.Tensor`, shape (n, k)
        Radial-basis weights from `solve_spline`.
    order : int, optional
        Spline order.

    Returns
    -------
    energy : `tf.Tensor`, scalar
    """
    kernel = _kernel(_squared_distance(centers, centers), order)
    return tf.reduce_sum(weights * tf.matmul(kernel, weights))


@tf.function(reduce_retracing=True, autograph=False)
def _grid_rows(y, x, centers, weights, polynomial, order):
    """Spline values on the grid rows ``y`` x columns ``x`` (2-D centers)."""
    # Squared distances separate into row and column terms, so the
    # (rows, width, n) tensor is built from two small ones by broadcasting.
    dy2 = tf.square(y[:, None] - centers[None, :, 1])
    dx2 = tf.square(x[:, None] - centers[None, :, 0])
    kernel = _kernel(dy2[:, None, :] + dx2[None, :, :], order)
    radial = tf.einsum('rwn,nk->rwk', kernel, weights)
    linear = (polynomial[0][None, None, :]
              + x[None, :, None] * polynomial[1][None, None, :]
              + y[:, None, None] * polynomial[2][None, None, :])
    return radial + linear


def _cubic_convolution_matrix(n_out, step, n_nodes):
    """
    Sparse (n_out, n_nodes) weights of cubic convolution (Catmull-Rom) from
    nodes at ``(j - 1) * step`` to outputs at ``0 .. n_out - 1``.
    """
    from scipy import sparse

    position = np.arange(n_out) / step + 1.0
    base = np.floor(position).astype(int)
    t = position - base
    weights = np.stack([(-t ** 3 + 2 * t ** 2 - t) / 2, (3 * t ** 3 - 5 * t ** 2 + 2) / 2,
                        (-3 * t ** 3 + 4 * t ** 2 + t) / 2, (t ** 3 - t ** 2) / 2], axis=1)
    columns = base[:, None] + np.arange(-1, 3)[None, :]
    rows = np.repeat(np.arange(n_out), 4)
    return sparse.csr_matrix((weights.ravel(), (rows, columns.ravel())),
                             shape=(n_out, n_nodes))


def _exact_grid(centers, weights, polynomial, x, y, order, dtype):
    """The spline at every (y, x) of the grid, rows in chunks of bounded size."""
    tf_dtype = tf.as_dtype(np.dtype(dtype))
    centers = tf.constant(np.asarray(centers), dtype=tf_dtype)
    weights = tf.constant(np.asarray(weights), dtype=tf_dtype)
    polynomial = tf.constant(np.asarray(polynomial), dtype=tf_dtype)
    out = np.empty((len(y), len(x), weights.shape[1]), dtype=dtype)
    x_tensor = tf.constant(x, dtype=tf_dtype)
    rows_per_chunk = max(1, _GRID_CHUNK_ELEMENTS // max(1, len(x) * centers.shape[0]))
    for start in range(0, len(y), rows_per_chunk):
        stop = min(start + rows_per_chunk, len(y))
        y_chunk = tf.constant(y[start:stop], dtype=tf_dtype)
        out[start:stop] = _grid_rows(y_chunk, x_tensor, centers, weights, polynomial,
                                     order).numpy()
    return out


def apply_spline_grid(centers, weights, polynomial, x, y, *, order=2, step=1,
                      dtype=np.float32):
    """
    Evaluate a 2-D spline on a full regular grid in bounded memory.

    With ``step=1`` every grid point is evaluated exactly, in blocks of rows
    so that the kernel tensor never exceeds a few tens of megabytes. With
    ``step > 1`` the spline is evaluated exactly (in float64) on every
    ``step``-th point of the grid, extended by a node beyond each edge, and
    interpolated in between by separable cubic convolution (Catmull-Rom):
    ``step**2`` times less kernel work. A spline varies on the scale of its
    control-point spacing; `SplineModel.evaluate_image
    <astrobgopt.optimize.SplineModel.evaluate_image>` chooses ``step`` from
    it and reports the errors measured.

    Parameters
    ----------
    centers : array-like, shape (n, 2)
        Control points as (x, y), in the same coordinates as ``x`` and ``y``.
    weights, polynomial : array-like
        The output of `solve_spline` (shapes (n, k) and (3, k)).
    x, y : 1-D array-like
        Column and row coordinates of the grid (evenly spaced when
        ``step > 1``).
    order : int, optional
        Spline order.
    step : int, optional
        Grid points between exact evaluations (1: all exact).
    dtype : dtype, optional
        dtype of the result (and working precision when ``step=1``).

    Returns
    -------
    values : `~numpy.ndarray`, shape (len(y), len(x), k)
    """
    _check_order(order)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if step == 1 or len(x) < 2 or len(y) < 2:
        return _exact_grid(centers, weights, polynomial, x, y, order, dtype)
    node_x = x[0] + (np.arange(int(np.ceil((len(x) - 1) / step)) + 4) - 1) * step * (x[1] - x[0])
    node_y = y[0] + (np.arange(int(np.ceil((len(y) - 1) / step)) + 4) - 1) * step * (y[1] - y[0])
    nodes = _exact_grid(centers, weights, polynomial, node_x, node_y, order, np.float64)
    along_x = _cubic_convolution_matrix(len(x), step, len(node_x))
    along_y = _cubic_convolution_matrix(len(y), step, len(node_y))
    out = np.empty((len(y), len(x), nodes.shape[2]), dtype=dtype)
    rows_per_chunk = max(1, _GRID_CHUNK_ELEMENTS // len(x))
    for channel in range(nodes.shape[2]):
        for start in range(0, len(y), rows_per_chunk):
            stop = min(start + rows_per_chunk, len(y))
            rows = along_y[start:stop] @ nodes[..., channel]
            out[start:stop, :, channel] = (along_x @ rows.T).T
    return out


def _as_tensor(array, dtype):
    return tf.cast(tf.convert_to_tensor(array), dtype)


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
        :math:`r^2 \\log r`, 3 is :math:`r^3`, 4 is :math:`r^4 \\log r`.
    regularization : float, optional
        Smoothing: 0 interpolates exactly; larger values trade fidelity at the
        control points for a smoother surface (as ``smoothing`` in
        `scipy.interpolate.RBFInterpolator`).

    Returns
    -------
    values : `~numpy.ndarray` or `tf.Tensor`, shape (m,) or (m, k)
        A NumPy array when every input was NumPy (or a sequence); a tensor
        when any input was a tensor, so that gradients flow to the control
        points and their values. The dtype is float64 when any input is
        float64, otherwise float32.

    Examples
    --------
    >>> import numpy as np
    >>> from astrobgopt.spline import interpolate_spline
    >>> points = np.array([[0., 0.], [1., 0.], [0., 1.], [1., 1.], [0.5, 0.5]])
    >>> values = np.array([0., 1., 1., 2., 1.5])
    >>> interpolate_spline(points, values, points).round(6) + 0.0  # + 0.0 turns -0.0 into 0.0
    array([0. , 1. , 1. , 2. , 1.5])
    """
    inputs = (train_points, train_values, query_points)
    return_tensor = any(tf.is_tensor(item) or isinstance(item, tf.Variable) for item in inputs)
    dtypes = {tf.as_dtype(item.dtype) if hasattr(item, 'dtype') else tf.float64
              for item in inputs}
    dtype = tf.float64 if tf.float64 in dtypes else tf.float32

    centers = _as_tensor(train_points, dtype)
    values = _as_tensor(train_values, dtype)
    queries = _as_tensor(query_points, dtype)
    if centers.shape.rank != 2:
        raise ValueError(f'train_points must have shape (n, d); got {tuple(centers.shape)}')
    if queries.shape.rank != 2 or queries.shape[1] != centers.shape[1]:
        raise ValueError(f'query_points must have shape (m, {centers.shape[1]}); '
                         f'got {tuple(queries.shape)}')
    squeeze = values.shape.rank == 1
    if squeeze:
        values = values[:, None]
    if values.shape.rank != 2 or values.shape[0] != centers.shape[0]:
        raise ValueError(f'train_values must have shape ({centers.shape[0]},) or '
                         f'({centers.shape[0]}, k); got {tuple(values.shape)}')
    if centers.shape[0] < centers.shape[1] + 1:
        raise ValueError(f'at least {centers.shape[1] + 1} control points are needed for '
                         f'the linear tail in {centers.shape[1]} dimensions')

    weights, polynomial = solve_spline(centers, values, order=order,
                                       regularization=regularization)
    result = apply_spline(centers, weights, polynomial, queries, order=order)
    if squeeze:
        result = result[:, 0]
    return result if return_tensor else result.numpy()
