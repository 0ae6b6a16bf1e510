"""The spline fit: configuration, initialization, losses and the Adam loop."""
import ast
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from numpy.testing import assert_allclose

from astrobgopt.optimize import LOSSES, FitConfig, _objective, fit_spline, grid_control_points
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
    data_residual = spread * residual
    model_units = offset + spread * model

    def wmean(term):
        return (term * f[:, None]).sum(axis=0) / f.sum()

    asymmetric = np.log(np.mean(wmean(np.abs(data_residual)))
                        + np.var(wmean(data_residual))
                        + alpha * (np.mean(wmean(np.maximum(-data_residual, 0)))
                                   + np.mean(wmean(np.maximum(-model_units, 0)))))
    samples = (points, target, fraction)
    for loss, expected in (('robust', rho.sum() / len(f)), ('asymmetric', asymmetric)):
        value, monitored, *_ = _objective(loss, 2, centers, values, samples, samples, constants)
        assert_allclose([float(value), float(monitored)], expected, rtol=1e-10)


@pytest.mark.parametrize('loss', LOSSES)
def test_the_fits_gradient_is_the_derivative_of_its_loss(loss):
    # The step's gradient is written by hand (the spline's in astrobgopt.spline,
    # the data terms' here): it must be what TensorFlow derives from the loss,
    # bending penalty included; the monitored loss is the loss of its own
    # samples, from the same solve.
    rng = np.random.default_rng(2)
    centers = tf.constant(grid_control_points((10, 10), 9) / 10.0 + rng.normal(0, 0.01, (9, 2)))
    values = tf.constant(rng.normal(size=(9, 2)))
    train, monitor = [(tf.constant(rng.uniform(0, 1, (n, 2))), tf.constant(rng.normal(size=(n, 2))),
                       tf.constant(np.where(rng.random(n) < 0.1, 0.0, rng.uniform(0.2, 1, n))))
                      for n in (80, 30)]
    constants = tuple(tf.constant(v, tf.float64) for v in (
        [0.5, 0.7], [0.1, -0.2], [2.0, 3.0], 5.0, 0.3))
    with tf.GradientTape() as tape:
        tape.watch([centers, values])
        value, monitored, d_centers, d_values = _objective(loss, 2, centers, values, train,
                                                           monitor, constants)
    automatic = tape.gradient(value, [centers, values])
    for ours, theirs in zip((d_centers, d_values), automatic):
        assert np.abs(theirs.numpy()).max() > 1e-3
        assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-8,
                        atol=1e-10 * np.abs(theirs.numpy()).max())
    alone = _objective(loss, 2, centers, values, monitor, monitor, constants)[0]
    assert_allclose(float(monitored), float(alone), rtol=1e-12)


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


def smooth_surface(points):
    """A plane plus a broad bump on a 200 x 300 image: no spline order holds it exactly."""
    x, y = points[:, 0] / 300, points[:, 1] / 300
    return 0.3 * x - 0.2 * y + 0.5 * np.exp(-((x - 0.5) ** 2 + (y - 0.3) ** 2) / 0.08)


def pixel_grid(shape):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return np.stack([xx.ravel(), yy.ravel()], axis=1).astype(float)


@pytest.mark.parametrize('order', [1, 2, 3, 4])
@pytest.mark.parametrize('epochs', [0, 100])
def test_every_order_fits_a_smooth_surface(order, epochs):
    shape = (200, 300)
    points = surface_samples(shape, step=4)[0]
    values = smooth_surface(points) + 0.01 * np.random.default_rng(0).standard_normal(len(points))
    config = FitConfig(n_points=24, order=order, epochs=epochs, smoothing=0.0)
    model = fit_spline(points, values, np.ones(len(values)), shape, config, progress=False)
    assert np.all(np.isfinite(model.loss_history[1:]))
    error = model.evaluate_image(shape, dtype=np.float64)[..., 0] \
        - smooth_surface(pixel_grid(shape)).reshape(shape)
    # The bump has amplitude 0.5; the noise is 0.01 per sample. The grid of
    # 24 fixed points (epochs=0) holds the bump less well than moved points,
    # and the cone-like r kernel (order 1) follows a smooth surface least well.
    assert np.sqrt(np.mean(error ** 2)) < (0.012 if epochs == 0 else 0.006)
    assert np.abs(error).max() < (0.06 if epochs == 0 or order == 1 else 0.02)


def test_order_four_needs_a_grid_that_determines_its_quadratic_tail():
    points, values, _, _ = surface_samples()
    with pytest.raises(ValueError, match='polynomial tail of order 4'):
        fit_spline(points, values, np.ones(len(values)), (200, 300),
                   FitConfig(n_points=6, order=4))  # a 3 x 2 grid


@pytest.mark.parametrize('pedestal', [0.0, 1e7, 1e9])
@pytest.mark.parametrize('epochs', [0, 30])
def test_a_large_pedestal_costs_no_precision(pedestal, epochs):
    # A surface the 12-point thin-plate spline holds exactly: the error left
    # is the noise averaged over the samples per control point.
    shape, noise = (200, 300), 0.01
    points, truth, centers, truth_values = surface_samples(step=4)
    values = pedestal + truth + noise * np.random.default_rng(1).standard_normal(len(truth))
    config = FitConfig(n_points=12, epochs=epochs, smoothing=0.0)
    model = fit_spline(points, values, np.ones(len(values)), shape, config, progress=False)
    image = model.evaluate_image(shape, dtype=np.float64)[..., 0]
    assert image.dtype == np.float64
    expected = interpolate_spline(centers / 300, truth_values,
                                  pixel_grid(shape) / 300).reshape(shape)
    error = image - pedestal - expected
    averaged_noise = noise * np.sqrt(12 / len(values))
    assert np.sqrt(np.mean(error ** 2)) < 1.5 * averaged_noise
    assert np.abs(error).max() < 6 * averaged_noise
    assert len(np.unique(image)) > 0.9 * image.size  # not quantized
    assert_allclose(model.evaluate(points)[:, 0] - pedestal, truth, atol=6 * averaged_noise)


@pytest.mark.parametrize('loss', ['robust', 'asymmetric'])
def test_values_near_the_float32_limit(loss):
    points, truth, _, _ = surface_samples()
    values = (1.5e38 * truth / np.abs(truth).max()).astype(np.float32)
    config = FitConfig(n_points=12, loss=loss, epochs=20)
    model = fit_spline(points, values, np.ones(len(values)), (200, 300), config, progress=False)
    assert np.all(np.isfinite(model.loss_history))
    image = model.evaluate_image((200, 300))
    assert image.dtype == np.float32 and np.all(np.isfinite(image))
    # The fit follows the data (a sine-like surface of amplitude 1.5e38).
    fitted = model.evaluate(points)[:, 0]
    assert np.sqrt(np.mean((fitted - values) ** 2)) < 0.05 * 1.5e38


def test_stop_reason_names_the_monitored_loss():
    points, values, _, _ = surface_samples(noise=0.05, seed=2)
    for fraction, monitored in [(0.2, 'held-out'), (0.0, 'training')]:
        # A learning rate this large only makes things worse: stops at once.
        config = FitConfig(n_points=12, epochs=200, patience=3, learning_rate=0.5,
                           validation_fraction=fraction)
        model = fit_spline(points, values, np.ones(len(values)), (200, 300), config,
                           progress=False)
        assert model.stop_reason == f'early stop: {monitored} loss did not improve in 3 steps'


def evaluate_everything(model, points):
    return (model.evaluate(points), model.standard_error(points),
            model.evaluate_image((200, 300), dtype=np.float64))


def test_a_fitted_model_pickles_and_evaluates_in_a_forked_process():
    # TensorFlow has run in this process (the fit); a forked child that used
    # it could hang, so the model's evaluation must not, and it travels pickled.
    import multiprocessing
    import pickle

    points, values, _, _ = surface_samples(noise=0.01)
    model = fit_spline(points, values, np.ones(len(values)), (200, 300),
                       FitConfig(n_points=12, epochs=20), progress=False)
    expected = evaluate_everything(model, points)
    copy = pickle.loads(pickle.dumps(model))
    for got, want in zip(evaluate_everything(copy, points), expected):
        assert_allclose(got, want, rtol=0, atol=0)
    with multiprocessing.get_context('fork').Pool(1) as pool:
        in_child = pool.apply_async(evaluate_everything, (model, points)).get(timeout=120)
    for got, want in zip(in_child, expected):
        assert_allclose(got, want, rtol=0, atol=0)


def test_a_fit_leaves_tensorflows_call_options_as_they_were():
    # The fit switches graph rewrites off for its own compiled loop only.
    from tensorflow.python.eager import context

    before = context.context().function_call_options.config_proto_serialized
    points, values, _, _ = surface_samples(noise=0.05, seed=2)
    fit_spline(points, values, np.ones(len(values)), (200, 300),
               FitConfig(n_points=12, epochs=30, seed=3))
    assert context.context().function_call_options.config_proto_serialized == before


def test_a_first_run_without_rewrites_does_not_wait_on_other_python_threads():
    # Switched off with disable_meta_optimizer, a function's first run took
    # the GIL once per operation: beside a busy Python thread (a GUI, a
    # thread pool) 400 operations took 1.5-1.9 s instead of 0.03 s, and the
    # fit's program as long. Skipped by min_graph_nodes, they do not.
    import threading
    import time

    from astrobgopt.optimize import _without_graph_rewrites

    def program():
        @tf.function(autograph=False)
        def steps(x):
            for _ in range(200):
                x = x * 1.0001 + 0.1
            return x

        steps.get_concrete_function(tf.TensorSpec((None, None), tf.float32))
        return steps

    quiet, busy = program(), program()
    x = tf.ones((50, 50))
    with _without_graph_rewrites():
        start = time.perf_counter()
        quiet(x)
        alone = time.perf_counter() - start
    seconds = {}

    def first_run():
        with _without_graph_rewrites():
            start = time.perf_counter()
            busy(x)
            seconds['busy'] = time.perf_counter() - start

    thread = threading.Thread(target=first_run)
    thread.start()
    while thread.is_alive():  # pure Python: gives the GIL up every switch interval only
        pass
    assert seconds['busy'] < 5 * alone + 0.25


def test_a_raised_outlier_cutoff_lets_the_spline_follow_a_steep_glow():
    # A steep glow in a corner: the robust loss, starting stiff, rejects its
    # samples as outliers and the spline leaves it out, unless their cut-off
    # is raised (measured 1.88 and 0.30 RMS over the frame with a cut-off of
    # 400 noise sigmas there; the glow peaks at 400).
    rng = np.random.default_rng(2)
    points = rng.uniform(0, 200, (2000, 2))
    glow = 40.0 * np.exp(-np.hypot(points[:, 0] - 200, points[:, 1]) / 25.0)
    values = 10.0 + glow + rng.normal(0, 0.1, len(points))
    config = FitConfig(n_points=36, epochs=0)
    errors = {}
    for name, cutoff in (('robust', None), ('raised', np.where(glow > 5.0, 400.0, 4.0))):
        model = fit_spline(points, values, np.ones(len(points)), (200, 200), config,
                           outlier_cutoff=cutoff)
        errors[name] = np.sqrt(np.mean((model.evaluate(points)[:, 0] - 10.0 - glow) ** 2))
    assert errors['raised'] < 0.3 * errors['robust']


@pytest.mark.parametrize('cutoff', [np.full(5, 4.0), np.zeros(50), np.full((50, 1), 4.0)])
def test_outlier_cutoff_must_be_one_positive_value_per_sample(cutoff):
    points = np.random.default_rng(0).uniform(0, 100, (50, 2))
    with pytest.raises(ValueError, match='one positive cut-off per sample'):
        fit_spline(points, np.ones(50), np.ones(50), (100, 100), FitConfig(n_points=9, epochs=0),
                   outlier_cutoff=cutoff)


_BACKGROUND_COMPILE_SCRIPT = '''
import sys, threading
import numpy as np
sys.path.insert(0, {tests!r})
from test_optimize import surface_samples
from astrobgopt.optimize import FitConfig, compile_optimizer_in_background, fit_spline
points, values, _, _ = surface_samples(noise=0.05, seed=4)
config = FitConfig(n_points=12, initializer='random', epochs=40, seed=1)
compile_optimizer_in_background(config, len(points))
model = fit_spline(points, values, np.ones(len(values)), (200, 300), config)
alive = [thread.name for thread in threading.enumerate() if thread.name.startswith('astrobgopt')]
print(repr((alive, model.control_points.tolist(), model.control_values.tolist())))
'''


def test_a_program_compiled_in_the_background_fits_alike_and_its_thread_ends():
    # In a fresh process, so that the program is compiled there, in a thread,
    # while the fit's initialization runs; the fit waits for it, and no
    # thread outlives the fit (a pool forked afterwards would copy it).
    script = _BACKGROUND_COMPILE_SCRIPT.format(tests=os.path.dirname(__file__))
    run = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                         timeout=300, check=True)
    alive, points, values = ast.literal_eval(run.stdout.strip().splitlines()[-1])
    assert alive == []
    points_here, values_here, _, _ = surface_samples(noise=0.05, seed=4)
    config = FitConfig(n_points=12, initializer='random', epochs=40, seed=1)
    here = fit_spline(points_here, values_here, np.ones(len(values_here)), (200, 300), config)
    assert len(here.loss_history) > 1
    assert_allclose(points, here.control_points, rtol=1e-6)
    assert_allclose(values, here.control_values, rtol=1e-6)
