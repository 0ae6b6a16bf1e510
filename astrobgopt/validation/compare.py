"""
Run several background estimators on one simulated scene and score them.

An estimator is any callable ``estimator(data, mask=mask)`` returning an
object with a ``background`` attribute (photutils' `~photutils.background.Background2D`,
`astrobgopt.SplineOptBackground`'s result) or a plain 2-D array.
"""

import inspect
import re
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.stats import SigmaClip
from astropy.table import Table
from astropy.utils.exceptions import AstropyDeprecationWarning
from photutils.background import Background2D, MedianBackground

from ._checks import as_image, as_mask, check_same_shape, check_widths
from .bias import bias_test
from .scale import residual_rms_vs_scale

__all__ = ['DEFAULT_WIDTHS', 'Background2DEstimator', 'notebook_estimators',
           'default_estimators', 'compare_backgrounds']

#: Block widths of the notebook's RMS-versus-scale figure.
DEFAULT_WIDTHS = np.arange(3, 30)

#: Display formats of the scalar columns of the comparison table.
_COLUMN_FORMATS = {'rms': '.5f', 'peak': '.4f', 'bias': '.2e', 'bias_significance': '.2f',
                   'bias_shifted_significance': '.2f', 'time_s': '.2f'}

#: Vertical range of the saved RMS-ratio figure: good estimates sit within a
#: few tens of percent of 1, and poor ones would flatten them.
_RATIO_YLIM = (0.8, 2.0)


def _idw_interpolator(*, n_neighbors, power, regularization):
    """A photutils inverse-distance-weighting interpolator, on photutils 2 or 3."""
    from photutils.background import BkgIDWInterpolator  # removed in photutils 4.0

    # photutils 3.0 renamed ``reg`` to ``regularization``.
    parameters = inspect.signature(BkgIDWInterpolator).parameters
    regularization_name = 'regularization' if 'regularization' in parameters else 'reg'
    with warnings.catch_warnings():
        # photutils 3.0 deprecates the class (removal in 4.0).
        warnings.simplefilter('ignore', AstropyDeprecationWarning)
        return BkgIDWInterpolator(n_neighbors=n_neighbors, power=power,
                                  **{regularization_name: regularization})


class Background2DEstimator:
    """
    A `photutils.background.Background2D` configuration as an estimator.

    Uses the notebook's statistics: 3-sigma clipping and `~photutils.background.MedianBackground`.

    Parameters
    ----------
    box_size : int or tuple of int
        Mesh box size in pixels.
    filter_size : int or tuple of int, optional
        Median filter size in boxes.
    exclude_percentile : float, optional
        Boxes with more than this percentage of masked pixels are excluded.
    interpolator : callable or None, optional
        Passed as ``Background2D(interpolator=...)``; None uses photutils'
        default. photutils 3.0 deprecates that keyword (its warning is
        silenced for this one call) and 4.0 removes it.

    Notes
    -----
    Calling it as ``estimator(data, mask=mask)`` returns the `~photutils.background.Background2D`.
    """

    def __init__(self, box_size, *, filter_size=3, exclude_percentile=90.0, interpolator=None):
        self.box_size = box_size
        self.filter_size = filter_size
        self.exclude_percentile = exclude_percentile
        self.interpolator = interpolator

    def __repr__(self):
        return (f'{type(self).__name__}({self.box_size!r}, filter_size={self.filter_size!r}, '
                f'exclude_percentile={self.exclude_percentile!r}, '
                f'interpolator={self.interpolator!r})')

    def __call__(self, data, *, mask=None):
        """
        Estimate the background of ``data``.

        Parameters
        ----------
        data : array_like
            2-D image.
        mask : array_like of bool or None, optional
            True on pixels to ignore.

        Returns
        -------
        background : `~photutils.background.Background2D`
        """
        options = dict(mask=mask, filter_size=self.filter_size,
                       exclude_percentile=self.exclude_percentile,
                       sigma_clip=SigmaClip(sigma=3.0), bkg_estimator=MedianBackground())
        if self.interpolator is None:
            return Background2D(data, self.box_size, **options)
        with warnings.catch_warnings():
            # photutils 3.0 deprecates ``interpolator=`` (removal in 4.0).
            warnings.simplefilter('ignore', AstropyDeprecationWarning)
            return Background2D(data, self.box_size, interpolator=self.interpolator, **options)


def notebook_estimators():
    """
    The `~photutils.background.Background2D` configurations of the STScI notebook.

    Returns
    -------
    estimators : dict of str to `Background2DEstimator`
        ``'B2D box50 f3'`` (the first attempt), ``'B2D box10 f5'`` (the
        notebook's ``bkg3``), ``'B2D box10 f5 IDW'`` (``bkg4``: inverse
        distance weighting with 20 neighbours, power 1, regularization 30)
        and ``'B2D box6 f3 IDW'`` (``bkg5``, the notebook's best: power 0).

    Notes
    -----
    All use ``exclude_percentile=90``, so they work with a deep source mask.
    The IDW variants need photutils < 4.0.
    """
    return {
        'B2D box50 f3': Background2DEstimator(50, filter_size=3),
        'B2D box10 f5': Background2DEstimator(10, filter_size=5),
        'B2D box10 f5 IDW': Background2DEstimator(
            10, filter_size=5,
            interpolator=_idw_interpolator(n_neighbors=20, power=1, regularization=30)),
        'B2D box6 f3 IDW': Background2DEstimator(
            6, filter_size=3,
            interpolator=_idw_interpolator(n_neighbors=20, power=0, regularization=30)),
    }


def default_estimators():
    """
    The comparison set of `run_validation`: the notebook's estimators and ours.

    Returns
    -------
    estimators : dict of str to callable
        `notebook_estimators`, then ``'SplineOpt 256'``
        (``SplineOptBackground(n_points=256, initializer='grid', seed=0)``)
        and, where `astrobgopt.SplineOptInterpolator` is available,
        ``'B2D box10 f3 SplineOpt'`` (Background2D with that interpolator).
        astrobgopt's own estimators are imported when this is called, not
        when this module is imported, so the rest of the kit does not depend
        on them (nor on TensorFlow through them).
    """
    from astrobgopt import SplineOptBackground

    estimators = notebook_estimators()
    estimators['SplineOpt 256'] = SplineOptBackground(n_points=256, initializer='grid', seed=0,
                                                      progress=False)
    try:
        from astrobgopt import SplineOptInterpolator
    except ImportError:  # not in this version of astrobgopt
        return estimators
    estimators['B2D box10 f3 SplineOpt'] = Background2DEstimator(
        10, filter_size=3, interpolator=SplineOptInterpolator())
    return estimators


def _background_of(result, shape, name):
    """The background image of an estimator's result, checked against the data."""
    background = np.asarray(getattr(result, 'background', result))
    background = as_image(background, f'the background of estimator {name!r}')
    if background.shape != tuple(shape):
        raise ValueError(f'estimator {name!r} returned a background of shape '
                         f'{background.shape} for data of shape {tuple(shape)}')
    return background


def _slug(name):
    """A file-name-safe version of an estimator name."""
    return re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_').lower()


def compare_backgrounds(scene, truth, estimators, *, mask=None, widths=DEFAULT_WIDTHS,
                        noise_residual=None, sources=None, output_dir=None, dpi=80, seed=0):
    """
    Run background estimators on a scene with a known background and score them.

    Parameters
    ----------
    scene : array_like
        2-D image given to every estimator.
    truth : array_like
        True background of ``scene``.
    estimators : dict of str to callable
        Name to ``estimator(data, mask=mask)``, returning an object with a
        ``background`` attribute or a 2-D array; see `notebook_estimators`
        and `default_estimators`.
    mask : array_like of bool or None, optional
        Source mask given to every estimator, and used by the bias test and
        the RMS-versus-scale measure.
    widths : sequence of int, optional
        Block widths of the RMS-versus-scale measure.
    noise_residual : array_like or None, optional
        Residual of a perfect estimate (``sky - noiseless``); when given the
        RMS versus scale is also expressed relative to it.
    sources : `~astropy.table.Table` or None, optional
        Source catalog for the per-source bias tables and plots.
    output_dir : str, `~pathlib.Path` or None, optional
        If given, PNG figures are written there: ``residual_maps.png``,
        ``rms_vs_scale.png`` and, with ``sources``, ``bias_<name>.png``.
    dpi : float, optional
        Resolution of the PNG figures.
    seed : int, optional
        Seed of the bias test's random control positions.

    Returns
    -------
    table : `~astropy.table.Table`
        One row per estimator: ``name``; ``rms``, the standard deviation of
        ``background - truth``; ``peak``, the maximum of ``background -
        truth`` after removing its mean; ``bias``, ``bias_significance`` and
        ``bias_shifted_significance`` (`bias_test` on ``background - truth``:
        ``difference``, ``significance`` and ``shifted_significance``; NaN
        without a usable mask);
        ``time_s``, the wall time of the estimator; ``rms_vs_scale``,
        `residual_rms_vs_scale` of ``scene - background`` per width; and,
        with ``noise_residual``, ``rms_ratio``, that divided by the same for
        the perfect case. ``meta`` holds ``widths``, ``perfect_rms_vs_scale``
        (with ``noise_residual``) and ``figures`` (name to PNG path).

    Raises
    ------
    ValueError
        If shapes disagree, ``estimators`` is empty or an estimator returns
        a background of the wrong shape.
    TypeError
        If an estimator is not callable.

    Notes
    -----
    ``time_s`` is the wall time of the call and of reading ``background``
    (`~photutils.background.Background2D` computes it lazily), including any one-off cost such as
    TensorFlow tracing its graphs on a first fit.
    """
    scene = as_image(scene, 'scene')
    truth = as_image(truth, 'truth')
    check_same_shape(scene, truth, 'scene', 'truth')
    mask_array = as_mask(mask, scene.shape)
    widths = check_widths(widths)
    if not estimators:
        raise ValueError('estimators is empty')
    not_callable = [name for name, estimator in estimators.items() if not callable(estimator)]
    if not_callable:
        raise TypeError(f'estimators must be callables; these are not: {not_callable}')
    # Estimators get a boolean mask (or None), whatever the caller passed.
    estimator_mask = None if mask is None else mask_array
    testable_mask = 0 < mask_array.sum() < mask_array.size

    perfect = None
    if noise_residual is not None:
        noise_residual = as_image(noise_residual, 'noise_residual')
        check_same_shape(scene, noise_residual, 'scene', 'noise_residual')
        perfect = residual_rms_vs_scale(noise_residual, mask_array, widths)

    rows, residuals, bias_results = [], {}, {}
    for name, estimator in estimators.items():
        start = time.perf_counter()
        background = _background_of(estimator(scene, mask=estimator_mask), scene.shape, name)
        elapsed = time.perf_counter() - start
        residual = background - truth
        residuals[name] = residual
        bias = significance = shifted_significance = np.nan
        if testable_mask:
            result = bias_results[name] = bias_test(background, mask_array, truth=truth,
                                                    sources=sources, seed=seed)
            bias, significance = result.difference, result.significance
            shifted_significance = result.shifted_significance
        rms_vs_scale = residual_rms_vs_scale(scene - background, mask_array, widths)
        row = {'name': name, 'rms': residual.std(), 'peak': (residual - residual.mean()).max(),
               'bias': bias, 'bias_significance': significance,
               'bias_shifted_significance': shifted_significance, 'time_s': elapsed,
               'rms_vs_scale': rms_vs_scale}
        if perfect is not None:
            row['rms_ratio'] = rms_vs_scale / perfect
        rows.append(row)

    table = Table(rows=rows)
    for column, number_format in _COLUMN_FORMATS.items():
        table[column].format = number_format
    table.meta['widths'] = widths.tolist()
    if perfect is not None:
        table.meta['perfect_rms_vs_scale'] = perfect.tolist()
    table.meta['figures'] = {}
    if output_dir is not None:
        table.meta['figures'] = _save_figures(Path(output_dir), table, residuals, bias_results,
                                              sources is not None, dpi)
    return table


def _save_figures(output_dir, table, residuals, bias_results, with_sources, dpi):
    """Write the comparison figures; return ``{figure name: path}``."""
    from .plotting import plot_bias, plot_residual_maps, plot_rms_vs_scale

    output_dir.mkdir(parents=True, exist_ok=True)
    figures = {'residual_maps': plot_residual_maps(residuals)}
    ratio = 'rms_ratio' in table.colnames
    curves = {row['name']: row['rms_ratio' if ratio else 'rms_vs_scale'] for row in table}
    figures['rms_vs_scale'] = plot_rms_vs_scale(table.meta['widths'], curves, ratio=ratio,
                                                ylim=_RATIO_YLIM if ratio else None)
    if with_sources:
        for name, result in bias_results.items():
            figure = plot_bias(result)
            figure.suptitle(name)
            figures[f'bias_{_slug(name)}'] = figure
    paths = {}
    for figure_name, figure in figures.items():
        paths[figure_name] = str(output_dir / f'{figure_name}.png')
        figure.savefig(paths[figure_name], dpi=dpi)
    return paths
