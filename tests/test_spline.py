"""The polyharmonic spline, in NumPy and in TensorFlow, against SciPy's RBFInterpolator."""
import numpy as np
import pytest
import tensorflow as tf
from numpy.testing import assert_allclose
from scipy.interpolate import RBFInterpolator

from astrobgopt import spline
from astrobgopt.optimize import grid_control_points
from astrobgopt.spline import (apply_spline, apply_spline_grid, bending_energy,
                               interpolate_spline, solve_spline)

# Each input as NumPy (the NumPy path) or as tensors (the TensorFlow path).
BACKENDS = {'numpy': np.asarray, 'tensorflow': tf.constant}


@pytest.fixture
def scattered():
    rng = np.random.default_rng(3)
    centers = rng.uniform(0, 1, (40, 2))
    values = rng.normal(size=(40, 3))
    queries = rng.uniform(-0.2, 1.2, (300, 2))  # includes extrapolation
    return centers, values, queries


def reference_order_four(centers, values, queries, smoothing):
    """An independent NumPy solve of the r^4 log r spline with a quadratic tail, with
    the conditionally positive definite sign (-r^4 log r), as SciPy writes kernels."""
    def kernel(a, b):
        r = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
        with np.errstate(divide='ignore', invalid='ignore'):
            return np.where(r > 0, -r ** 4 * np.log(r), 0.0)

    def tail(p):
        x, y = p[:, 0], p[:, 1]
        return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)

    n, p = len(centers), tail(centers)
    lhs = np.block([[kernel(centers, centers) + smoothing * np.eye(n), p],
                    [p.T, np.zeros((6, 6))]])
    solution = np.linalg.solve(lhs, np.concatenate([values, np.zeros((6, values.shape[1]))]))
    return kernel(queries, centers) @ solution[:n] + tail(queries) @ solution[n:]


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('order, kernel', [(1, 'linear'), (2, 'thin_plate_spline'),
                                           (3, 'cubic'), (4, None)])
@pytest.mark.parametrize('smoothing', [0.0, 1e-2])
def test_matches_scipy(scattered, backend, order, kernel, smoothing):
    centers, values, queries = scattered
    if kernel is None:  # SciPy has no r^4 log r kernel
        expected = reference_order_four(centers, values, queries, smoothing)
    else:
        expected = RBFInterpolator(centers, values, kernel=kernel, degree=1,
                                   smoothing=smoothing)(queries)
    as_backend = BACKENDS[backend]
    result = interpolate_spline(as_backend(centers), as_backend(values), as_backend(queries),
                                order=order, regularization=smoothing)
    if backend == 'tensorflow':
        assert tf.is_tensor(result)
        result = result.numpy()
    assert isinstance(result, np.ndarray) and result.dtype == np.float64
    assert_allclose(result, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


def test_order_four_reproduces_quadratics(scattered):
    centers, _, queries = scattered

    def quadratic(p):
        return 0.5 - p[:, 0] + 2 * p[:, 1] + 3 * p[:, 0] ** 2 - p[:, 0] * p[:, 1] + p[:, 1] ** 2

    assert_allclose(interpolate_spline(centers, quadratic(centers), queries, order=4),
                    quadratic(queries), atol=1e-8)


@pytest.mark.parametrize('order', [1, 2, 3, 4])
def test_bending_energy_is_positive_and_agrees_across_backends(scattered, order):
    centers, values, _ = scattered
    weights, _ = solve_spline(centers, values, order=order)
    energy = bending_energy(centers, weights, order=order)
    assert energy > 0
    tf_weights, _ = solve_spline(tf.constant(centers), tf.constant(values), order=order)
    assert_allclose(float(bending_energy(tf.constant(centers), tf_weights, order=order)),
                    energy, rtol=1e-8)
    # A plane costs nothing.
    plane = (1 + centers[:, :1] - 2 * centers[:, 1:])
    plane_weights, _ = solve_spline(centers, plane, order=order)
    assert abs(bending_energy(centers, plane_weights, order=order)) < 1e-9 * energy
    # The optimizer's shortcut: for an interpolating spline w^T K w == w^T v.
    assert_allclose(np.sum(weights * values), energy, rtol=1e-8)


@pytest.mark.parametrize('order', [1, 2, 3, 4])
def test_interpolates_and_reproduces_planes(scattered, order):
    centers, _, queries = scattered
    values = np.sin(3 * centers[:, 0]) + centers[:, 1] ** 2
    assert_allclose(interpolate_spline(centers, values, centers, order=order), values,
                    atol=1e-8)
    plane = 0.5 - 2 * centers[:, 0] + 3 * centers[:, 1]
    expected = 0.5 - 2 * queries[:, 0] + 3 * queries[:, 1]
    assert_allclose(interpolate_spline(centers, plane, queries, order=order), expected,
                    atol=1e-8)


def test_one_dimensional_values_and_float32(scattered):
    centers, values, queries = scattered
    full = interpolate_spline(centers, values[:, 1], queries)
    assert full.shape == (300,)
    single = interpolate_spline(centers.astype(np.float32), values[:, 1].astype(np.float32),
                                queries.astype(np.float32))
    assert single.dtype == np.float32
    assert_allclose(single, full, atol=2e-3 * np.abs(full).max())


def test_gradients_flow_to_positions_and_values(scattered):
    centers, values, queries = scattered
    c = tf.Variable(centers)
    v = tf.Variable(values)
    q = tf.constant(queries)
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(tf.sin(interpolate_spline(c, v, q)))
    grad_c, grad_v = tape.gradient(out, [c, v])
    assert tf.is_tensor(out)

    # Compare with central finite differences on one coordinate of each.
    def total(cc, vv):
        return np.sum(np.sin(interpolate_spline(cc, vv, queries)))

    def central_difference(array, index, func, eps=1e-6):
        up, down = array.copy(), array.copy()
        up[index] += eps
        down[index] -= eps
        return (func(up) - func(down)) / (2 * eps)

    assert_allclose(grad_c.numpy()[5, 0],
                    central_difference(centers, (5, 0), lambda cc: total(cc, values)),
                    rtol=1e-4)
    assert_allclose(grad_v.numpy()[7, 2],
                    central_difference(values, (7, 2), lambda vv: total(centers, vv)),
                    rtol=1e-4)


@pytest.mark.parametrize('order', [1, 2, 3, 4])
def test_closed_form_fit_gradient_matches_automatic_differentiation(scattered, order):
    # The fit's step has a hand-written gradient through the linear system
    # and the kernels: it must equal what TensorFlow derives from
    # solve_spline and apply_spline, for the positions and the values, with
    # the bending-energy term and a sample sitting on a centre.
    centers, values, queries = (tf.constant(item) for item in scattered)
    queries = tf.concat([queries, centers[:1]], axis=0)
    energy_weight = 0.7
    with tf.GradientTape() as tape:
        tape.watch([centers, values])
        weights, polynomial = solve_spline(centers, values, order=order)
        fitted = apply_spline(centers, weights, polynomial, queries, order=order)
        loss = tf.reduce_sum(tf.sin(fitted)) + energy_weight * tf.reduce_sum(weights * values)
    automatic = tape.gradient(loss, [centers, values])

    evaluation = spline.spline_at_points_with_gradient(centers, values, queries, order=order)
    assert_allclose(evaluation.fitted.numpy(), fitted.numpy(), rtol=1e-12, atol=1e-12)
    assert_allclose(evaluation.weights.numpy(), weights.numpy(), rtol=1e-12, atol=1e-12)
    closed_form = evaluation.gradient(tf.cos(evaluation.fitted), energy_weight)
    for ours, theirs in zip(closed_form, automatic):
        assert np.abs(theirs.numpy()).max() > 1e-3  # a gradient that matters
        assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-9,
                        atol=1e-11 * np.abs(theirs.numpy()).max())


@pytest.mark.parametrize('order', [1, 2, 3, 4])
def test_grid_evaluation_in_chunks_matches_pointwise(scattered, monkeypatch, order):
    centers, values, _ = scattered
    weights, polynomial = solve_spline(tf.constant(centers), tf.constant(values), order=order)
    x = np.linspace(-0.1, 1.1, 37)
    y = np.linspace(0, 1, 23)
    monkeypatch.setattr(spline, '_GRID_CHUNK_ELEMENTS', 37 * 40 * 3)  # 3 rows a chunk
    grid = apply_spline_grid(centers, weights.numpy(), polynomial.numpy(), x, y,
                             order=order, dtype=np.float64)
    yy, xx = np.meshgrid(y, x, indexing='ij')
    points = tf.constant(np.stack([xx.ravel(), yy.ravel()], axis=1))
    expected = apply_spline(tf.constant(centers), weights, polynomial, points,
                            order=order).numpy()
    assert grid.shape == (23, 37, 3)
    # NumPy's grid against TensorFlow's pointwise evaluation: rounding only.
    assert_allclose(grid.reshape(-1, 3), expected, rtol=0, atol=1e-9 * np.abs(expected).max())
    # An offset and scale are applied in float64 before the cast.
    offset, scale = np.array([1e9, -2e8, 0.0]), np.array([1e-3, 2.0, 1.0])
    shifted = apply_spline_grid(centers, weights.numpy(), polynomial.numpy(), x, y,
                                order=order, dtype=np.float64, offset=offset, scale=scale)
    assert_allclose(shifted - offset, scale * grid, rtol=0, atol=1e-6)


def test_bad_input():
    points = np.random.default_rng(0).random((10, 2))
    with pytest.raises(ValueError, match='order'):
        interpolate_spline(points, points[:, 0], points, order=5)
    with pytest.raises(ValueError, match='query_points'):
        interpolate_spline(points, points[:, 0], points[:, :1])
    with pytest.raises(ValueError, match='train_values'):
        interpolate_spline(points, points[:4, 0], points)
    with pytest.raises(ValueError, match='at least 3'):
        interpolate_spline(points[:2], points[:2, 0], points)
    with pytest.raises(ValueError, match='at least 6'):
        interpolate_spline(points[:5], points[:5, 0], points, order=4)


def test_coarse_grid_with_cubic_convolution_is_close_to_exact():
    # An adversarial surface: random values at jittered grid points, ~100
    # pixels apart, evaluated exactly every 5 pixels.
    rng = np.random.default_rng(5)
    centers = (grid_control_points((450, 600), 30) + rng.normal(0, 15, (30, 2))) / 600
    weights, polynomial = solve_spline(tf.constant(centers), tf.constant(rng.normal(size=(30, 2))))
    x = np.arange(600) / 600
    y = np.arange(450) / 600
    exact = apply_spline_grid(centers, weights.numpy(), polynomial.numpy(), x, y,
                              dtype=np.float64)
    fast = apply_spline_grid(centers, weights.numpy(), polynomial.numpy(), x, y, step=5,
                             dtype=np.float64)
    assert fast.shape == exact.shape == (450, 600, 2)
    assert np.abs(fast - exact).max() <= 1e-3 * np.ptp(exact)
    # The nodes themselves are exact.
    assert_allclose(fast[::5, ::5], exact[::5, ::5], rtol=0, atol=1e-12)
