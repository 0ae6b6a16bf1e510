"""The spline fit: configuration, initialization, losses and the Adam loop."""
import numpy as np
import pytest
import tensorflow as tf
from numpy.testing import assert_allclose

from astrobgopt.optimize import FitConfig, _objective, fit_spline, grid_control_points
from astrobgopt.spline import interpolate_spline


def surface_samples(shape=(200, 300), step=5, noise=0.0, seed=0):
    """Samples on a grid of a known thin-plate surface through 3 x 4 grid points."""
    rng = np.random.default_rng(seed)
    centers = grid_control_points(shape, 12)
    truth_values = rng.normal(size=len(centers))
    yy, xx = np.mgrid[0:shape[0]:step, 0:shape[1]:step]
    points = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(float)
    scale = max(shape)
    values = interpolate_spline(centers / scale, truth_values, points / scale)
    return points, values + noise * rng.standard_normal(len(values)), centers, truth_values


@pytest.mark.parametrize('options, error, match', [
    (dict(loss='l2'), ValueError, 'loss'),
    (dict(initializer='sobol'), ValueError, 'initializer'),
    (dict(order=5), ValueError, 'order'),
    (dict(n_points=3), ValueError, 'n_points'),
    (dict(n_points=32.0), TypeError, 'n_points'),
    (dict(epochs=-1), ValueError, 'epochs'),
    (dict(learning_rate=0), ValueError, 'learning_rate'),
    (dict(batch_size=0), ValueError, 'batch_size'),
    (dict(smoothing=-1), ValueError, 'smoothing'),
    (dict(validation_fraction=0.9), ValueError, 'validation_fraction'),
])
def test_config_validation(options, error, match):
    with pytest.raises(error, match=match):
        FitConfig(**options)


def test_grid_control_points():
    square = grid_control_points((1000, 1000), 256)
    assert square.shape == (256, 2)
    assert len(np.unique(square[:, 0])) == 16
    wide = grid_control_points((2000, 3000), 32)
    nx, ny = len(np.unique(wide[:, 0])), len(np.unique(wide[:, 1]))
    assert nx * ny == 32 and nx > ny
    # Corners are control points, so the border is constrained.
    assert {(0.0, 0.0), (2999.0, 1999.0)} <= set(map(tuple, wide))


def test_initialization_recovers_a_known_surface():
    points, values, centers, truth_values = surface_samples()
    config = FitConfig(n_points=12, epochs=0, smoothing=0.0)
    model = fit_spline(points, values, np.ones(len(values)), (200, 300), config)
    assert_allclose(model.control_points, centers)
    assert_allclose(model.control_values[:, 0], truth_values, atol=1e-6)
    assert_allclose(model.evaluate(points)[:, 0], values, atol=1e-6)


def test_robust_initialization_rejects_outliers():
    points, truth, _, _ = surface_samples()
    _, corrupted, _, _ = surface_samples(noise=0.01)
    bright = np.random.default_rng(5).random(len(truth)) < 0.1
    corrupted[bright] += 5.0  # 10% of samples hit by bright sources
    model = fit_spline(points, corrupted, np.ones(len(truth)), (200, 300),
                       FitConfig(n_points=12, epochs=0, smoothing=0.0))
    error = model.evaluate(points)[:, 0] - truth
    # 12 values fitted to ~2200 clean samples of noise 0.01.
    assert np.abs(error).max() < 0.003
    assert abs(model.noise_sigma[0] - 0.01) < 0.002


def test_losses_match_their_formulas():
    rng = np.random.default_rng(1)
    centers = tf.constant(grid_control_points((10, 10), 4) / 10.0)
    values = tf.constant(rng.normal(size=(4, 2)))
    points = tf.constant(rng.uniform(0, 1, (50, 2)))
    target = tf.constant(rng.normal(size=(50, 2)))
    fraction = tf.constant(rng.uniform(0.2, 1, 50))
    sigma, offset, spread, alpha = np.array([0.5, 0.7]), np.array([0.1, -0.2]), \
        np.array([2.0, 3.0]), 5.0
    constants = tuple(tf.constant(v, tf.float64) for v in (sigma, offset, spread, alpha, 0.0))
    model = interpolate_spline(centers, values, points).numpy()
    residual = target.numpy() - model
    f = fraction.numpy()

    u = residual * np.sqrt(f)[:, None] / sigma
    c = 4.0
    rho = np.where(np.abs(u) < c, c ** 2 / 6 * (1 - (1 - (u / c) ** 2) ** 3), c ** 2 / 6)
    robust = _objective('robust', 2, centers, values, points, target, fraction, constants)
    assert_allclose(float(robust), rho.sum() / len(f), rtol=1e-10)

    data_residual = spread * residual
    model_units = offset + spread * model

    def wmean(term):
        return (term * f[:, None]).sum(axis=0) / f.sum()

    expected = np.log(np.mean(wmean(np.abs(data_residual)))
                      + np.var(wmean(data_residual))
                      + alpha * (np.mean(wmean(np.maximum(-data_residual, 0)))
                                 + np.mean(wmean(np.maximum(-model_units, 0)))))
    asymmetric = _objective('asymmetric', 2, centers, values, points, target, fraction,
                            constants)
    assert_allclose(float(asymmetric), expected, rtol=1e-10)


def test_optimization_keeps_the_best_and_stops_early():
    points, values, _, _ = surface_samples(noise=0.05, seed=2)
    config = FitConfig(n_points=12, initializer='random', epochs=400, patience=10,
                       learning_rate=5e-3, seed=3)
    model = fit_spline(points, values, np.ones(len(values)), (200, 300), config)
    history = model.loss_history
    assert history.shape[1] == 2 and len(history) > 1
    assert 'early stop' in model.stop_reason or 'epochs' in model.stop_reason
    # The kept parameters are the best held-out ones, never worse than the start.
    assert np.nanmin(history[:, 1]) <= history[0, 1]
    assert not np.allclose(model.control_points, model.initial_control_points)


@pytest.mark.parametrize('batch_size', [None, 256])
def test_fits_are_deterministic_for_a_seed(batch_size):
    points, values, _, _ = surface_samples(noise=0.05, seed=4)
    weights = np.ones(len(values))

    def fit(seed):
        config = FitConfig(n_points=12, initializer='random', epochs=40, seed=seed,
                           batch_size=batch_size)
        return fit_spline(points, values, weights, (200, 300), config)

    first, second, other = fit(1), fit(1), fit(2)
    assert_allclose(first.control_points, second.control_points, rtol=0, atol=0)
    assert_allclose(first.control_values, second.control_values, rtol=0, atol=0)
    assert not np.allclose(first.control_points, other.control_points)


def test_too_few_samples():
    points, values, _, _ = surface_samples(step=40)
    with pytest.raises(ValueError, match='n_points'):
        fit_spline(points, values, np.ones(len(values)), (200, 300), FitConfig(n_points=64))
