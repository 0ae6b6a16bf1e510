"""
Bias test: is the background higher under the masked sources than elsewhere?

From the STScI notebook *Complex 2D Background* ("Check for bias due to the
galaxies" and "Testing for bias on real data"), with the standard error of
the mean corrected.
"""

from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from .._checks import check_count, check_non_negative
from ._checks import as_image, as_mask, check_same_shape

__all__ = ['BiasTestResult', 'bias_test']


@dataclass(frozen=True)
class BiasTestResult:
    """
    Result of `bias_test`.

    Attributes
    ----------
    significance : float
        ``difference / sqrt(stderr_masked**2 + stderr_unmasked**2)``: the
        z-score if pixels were independent (true for white residuals only).
    difference : float
        ``mean_masked - mean_unmasked``, in image units.
    mean_masked, stderr_masked : float
        Mean of the tested values over masked pixels and its standard error
        ``std / sqrt(n)``.
    mean_unmasked, stderr_unmasked : float
        The same over unmasked pixels.
    null_mean, null_std : float
        Mean and standard deviation of ``difference`` over cyclic shifts of
        the mask (see `bias_test`): its spread when the mask has nothing to
        do with the sources.
    shifted_significance : float
        ``(difference - null_mean) / null_std``: the z-score calibrated for
        spatially correlated values and a clumpy mask.
    quantity : str
        What was averaged: ``'residual'`` (background minus truth) or
        ``'background'`` (no truth given).
    sources : `~astropy.table.Table` or None
        When a catalog was given: per source ``x``, ``y``, ``flux``,
        ``radius``, ``value`` (mean of the tested values over the 3x3 pixels
        centred on the source) and ``masked`` (centre pixel masked).
    random : `~astropy.table.Table` or None
        The same for random control positions whose 3x3 window is wholly
        unmasked; their ``flux`` and ``radius`` are drawn from the catalog so
        they can share the source plots.
    fits : `~astropy.table.Table` or None
        Least-squares lines ``value = slope * x + intercept`` with columns
        ``sample`` (``'masked'``, ``'unmasked'`` or ``'random'``), ``versus``
        (``'flux'`` or ``'radius'``), ``slope``, ``intercept`` and ``n``;
        NaN slope and intercept where a sample has fewer than two points.
    """

    significance: float
    difference: float
    mean_masked: float
    stderr_masked: float
    mean_unmasked: float
    stderr_unmasked: float
    null_mean: float
    null_std: float
    shifted_significance: float
    quantity: str = 'residual'
    sources: Table | None = None
    random: Table | None = None
    fits: Table | None = None

    def plot(self, *, fig=None, ylim=None):
        """
        Draw the value under each source versus flux and versus radius:
        `~astrobgopt.validation.plot_bias` of this result (same keywords,
        return value and errors).
        """
        from .plotting import plot_bias  # matplotlib only when plotting

        return plot_bias(self, fig=fig, ylim=ylim)


def _mean_and_stderr(values):
    """Mean and standard error of the mean, ``std / sqrt(n)``."""
    return values.mean(), values.std() / np.sqrt(values.size)


def _shifted_differences(values, mask, min_shift_fraction):
    """``mean(values[shifted]) - mean(values[~shifted])`` for cyclic shifts of ``mask``.

    Every shift at once: the masked sum for shift ``s``, ``sum(values * roll(mask, s))``,
    is the cyclic cross-correlation of ``values`` and ``mask``, computed by FFT.
    Shifts within ``min_shift_fraction`` of the frame along both axes are left out, so
    the shifted mask no longer lines up with the sources.
    """
    ny, nx = values.shape
    masked_sums = np.fft.irfft2(np.fft.rfft2(values) * np.conj(np.fft.rfft2(mask)),
                                s=values.shape)
    n_masked = mask.sum()
    total = values.sum()
    differences = masked_sums / n_masked - (total - masked_sums) / (mask.size - n_masked)
    shift_y = np.minimum(np.arange(ny), ny - np.arange(ny))[:, None]
    shift_x = np.minimum(np.arange(nx), nx - np.arange(nx))[None, :]
    near = (shift_y < min_shift_fraction * ny) & (shift_x < min_shift_fraction * nx)
    return differences[~near]


def _window_means(image, x, y):
    """Mean of ``image`` over the 3x3 pixels centred on each ``(x, y)``, clipped at the edges."""
    ny, nx = image.shape
    # Summed-area table: every window mean in O(1), and clipping is just index arithmetic.
    table = np.zeros((ny + 1, nx + 1))
    table[1:, 1:] = image.cumsum(axis=0).cumsum(axis=1)
    x0, x1 = np.clip(x - 1, 0, nx), np.clip(x + 2, 0, nx)
    y0, y1 = np.clip(y - 1, 0, ny), np.clip(y + 2, 0, ny)
    total = table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
    return total / ((x1 - x0) * (y1 - y0))


def _line_fits(samples):
    """Straight-line fits of ``value`` against flux and radius for each named sample."""
    rows = []
    for sample, table in samples.items():
        for versus in ('flux', 'radius'):
            x, y = np.asarray(table[versus]), np.asarray(table['value'])
            slope, intercept = np.polyfit(x, y, 1) if len(table) >= 2 else (np.nan, np.nan)
            rows.append((sample, versus, slope, intercept, len(table)))
    return Table(rows=rows, names=('sample', 'versus', 'slope', 'intercept', 'n'))


def _source_radius(sources):
    if 're' in sources.colnames:
        return np.asarray(sources['re'], dtype=float)
    return np.sqrt(np.asarray(sources['x_stddev']) * np.asarray(sources['y_stddev']))


def _catalog_tables(values, mask, sources, n_random, rng):
    """Per-source and random-position tables of the 3x3 mean of ``values``."""
    missing = [name for name in ('x_mean', 'y_mean', 'flux') if name not in sources.colnames]
    if missing or not ({'re'} <= set(sources.colnames)
                       or {'x_stddev', 'y_stddev'} <= set(sources.colnames)):
        raise ValueError('sources needs columns x_mean, y_mean, flux and either re or '
                         f'x_stddev and y_stddev; it has {sources.colnames}')
    if len(sources) == 0:
        raise ValueError('sources is empty')
    ny, nx = values.shape
    if min(ny, nx) < 3:
        raise ValueError(f'the per-source tables need an image of at least 3x3, got {(ny, nx)}')
    x = np.clip(np.rint(np.asarray(sources['x_mean'])).astype(int), 0, nx - 1)
    y = np.clip(np.rint(np.asarray(sources['y_mean'])).astype(int), 0, ny - 1)
    flux = np.asarray(sources['flux'], dtype=float)
    radius = _source_radius(sources)
    source_table = Table({'x': x, 'y': y, 'flux': flux, 'radius': radius,
                          'value': _window_means(values, x, y), 'masked': mask[y, x]})

    if n_random is None:
        n_random = 5 * len(sources)  # as in the notebook
    n_random = check_count(n_random, 'n_random')
    random_x = rng.integers(1, nx - 1, size=n_random)
    random_y = rng.integers(1, ny - 1, size=n_random)
    # A control position is usable only if none of its 3x3 window is masked.
    keep = _window_means(mask.astype(float), random_x, random_y) == 0
    random_x, random_y = random_x[keep], random_y[keep]
    random_table = Table({
        'x': random_x, 'y': random_y,
        'flux': rng.choice(flux, size=random_x.size),
        'radius': rng.choice(radius, size=random_x.size),
        'value': _window_means(values, random_x, random_y),
    })
    fits = _line_fits({'masked': source_table[source_table['masked']],
                       'unmasked': source_table[~source_table['masked']],
                       'random': random_table})
    return source_table, random_table, fits


def bias_test(background, mask, *, truth=None, sources=None, n_random=None, seed=None,
              min_shift_fraction=0.125):
    """
    Test whether a background estimate is biased under the masked sources.

    Compares the mean of the background (or, when the true background is
    known, of the residual ``background - truth``) over masked pixels with
    the mean over unmasked pixels. An estimate that sources leak into is
    higher under (and around) them.

    Parameters
    ----------
    background : array_like
        2-D background estimate.
    mask : array_like of bool
        Source mask used for the estimate, True on sources.
    truth : array_like or None, optional
        True background (simulations). If given the test runs on
        ``background - truth``; otherwise on ``background`` itself, as the
        notebook does for real data.
    sources : `~astropy.table.Table` or None, optional
        Source catalog (``x_mean``, ``y_mean``, ``flux`` and ``re`` or
        ``x_stddev``/``y_stddev``, as from `make_source_table`). If given,
        the value under each source and under random unmasked positions is
        tabulated and fitted against flux and radius.
    n_random : int or None, optional
        Number of random control positions drawn (before dropping those
        that touch the mask); None draws five per source, as the notebook.
    seed : int, `~numpy.random.Generator`, `~numpy.random.SeedSequence` or None, optional
        Seed for the random control positions.
    min_shift_fraction : float, optional
        The null distribution uses every cyclic shift of the mask except
        those shorter than this fraction of the frame along both axes.

    Returns
    -------
    result : `BiasTestResult`

    Raises
    ------
    ValueError
        If shapes differ, the mask masks all or none of the pixels, or
        ``min_shift_fraction`` is outside [0, 0.5).

    Notes
    -----
    The standard error of each mean is ``std / sqrt(n)``. The notebook's
    formula, ``mean / (sqrt(n) * std)``, is not a standard error (it is not
    even in image units) and is not used here.

    ``significance`` treats the pixels as independent. It is a proper
    z-score for white residuals, but a background estimate is smooth, its
    errors are correlated over tens of pixels, and masks come in clumps: the
    masked and unmasked means then differ by far more than their standard
    errors even without any bias. (On the notebook's 1000x1000 scene, a
    256-point spline fitted to the sky *without* sources, where no source can
    bias it, scores ``significance`` between -21 and -37 depending on the
    optimizer version; the difference's spread over shifted masks is 13 times
    the independent-pixel standard error.) ``shifted_significance``
    calibrates the difference instead against the same difference for the
    mask shifted cyclically across the frame, a mask of the same size and
    clumpiness that no longer marks the sources: the null distribution of a
    toroidal-shift test. It is the figure to judge an estimator by.
    """
    background = as_image(background, 'background')
    mask = as_mask(mask, background.shape)
    if truth is None:
        values, quantity = background, 'background'
    else:
        truth = as_image(truth, 'truth')
        check_same_shape(background, truth, 'background', 'truth')
        values, quantity = background - truth, 'residual'
    min_shift_fraction = check_non_negative(min_shift_fraction, 'min_shift_fraction')
    if min_shift_fraction >= 0.5:
        raise ValueError(f'min_shift_fraction must be below 0.5 (no shift would be left), '
                         f'got {min_shift_fraction}')
    n_masked = int(mask.sum())
    if n_masked == 0 or n_masked == mask.size:
        raise ValueError('the bias test needs both masked and unmasked pixels; the mask has '
                         f'{n_masked} masked pixels out of {mask.size}')

    mean_masked, stderr_masked = _mean_and_stderr(values[mask])
    mean_unmasked, stderr_unmasked = _mean_and_stderr(values[~mask])
    difference = mean_masked - mean_unmasked
    stderr = np.hypot(stderr_masked, stderr_unmasked)
    if stderr > 0:
        significance = difference / stderr
    else:  # constant values on each side: any difference is certain
        significance = 0.0 if difference == 0 else np.copysign(np.inf, difference)
    null = _shifted_differences(values, mask, min_shift_fraction)
    null_mean, null_std = null.mean(), null.std()
    shifted_significance = (difference - null_mean) / null_std if null_std > 0 else significance

    tables = (None, None, None)
    if sources is not None:
        tables = _catalog_tables(values, mask, sources, n_random, np.random.default_rng(seed))
    return BiasTestResult(float(significance), float(difference), float(mean_masked),
                          float(stderr_masked), float(mean_unmasked), float(stderr_unmasked),
                          float(null_mean), float(null_std), float(shifted_significance),
                          quantity, *tables)
