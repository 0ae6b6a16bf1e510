"""
Figures of the validation kit (the STScI notebook's diagnostic plots).

Every function draws into a `~matplotlib.figure.Figure` it is given, or a new
one built without pyplot (so nothing depends on the interactive backend), and
returns it. Pass ``fig=plt.figure()`` to draw into a pyplot-managed figure,
e.g. in a notebook or a Sphinx ``.. plot::`` directive.
"""

import numpy as np
from astropy.nddata import block_reduce

__all__ = ['plot_scene', 'plot_residual_maps', 'plot_bias', 'plot_rms_vs_scale']

#: Images are block-averaged to at most this many pixels a side before display: a
#: panel cannot show more, and the PNG files stay small.
_MAX_DISPLAY_PIXELS = 300

#: Colours of the samples of the bias plot: (colour, marker, alpha).
_BIAS_STYLE = {'unmasked': ('black', 's', 0.5), 'masked': ('red', 'o', 0.3),
               'random': ('tab:blue', '+', 0.1)}


def _figure(fig, figsize):
    """Clear and return ``fig``, or make a new pyplot-free figure."""
    if fig is None:
        from matplotlib.figure import Figure

        return Figure(figsize=figsize, layout='constrained')
    fig.clear()
    return fig


def _image_panel(fig, ax, image, title, **imshow_kwargs):
    """Show ``image`` (block-averaged for display) in pixel coordinates, with a colour bar."""
    image = np.asarray(image, dtype=float)
    factor = -(-max(image.shape) // _MAX_DISPLAY_PIXELS)
    shown_image = block_reduce(image, factor, func=np.mean) if factor > 1 else image
    height, width = (n * factor for n in shown_image.shape)
    shown = ax.imshow(shown_image, origin='lower', extent=(-0.5, width - 0.5, -0.5, height - 0.5),
                      **imshow_kwargs)
    ax.set_title(title)
    fig.colorbar(shown, ax=ax, shrink=0.8)
    return shown


def plot_scene(scene, noiseless, mask=None, *, fig=None):
    """
    Show the true background, the scene and (optionally) the source mask.

    Images larger than 300 pixels a side are shown block-averaged (a mask
    then shows the masked fraction of each block).

    Parameters
    ----------
    scene : array_like
        Image with sources, noise and background.
    noiseless : array_like
        True background.
    mask : array_like of bool or None, optional
        Source mask to show as a third panel.
    fig : `~matplotlib.figure.Figure` or None, optional
        Figure to draw in; None makes one.

    Returns
    -------
    fig : `~matplotlib.figure.Figure`
    """
    n_panels = 2 if mask is None else 3
    fig = _figure(fig, (4.2 * n_panels, 3.6))
    axes = fig.subplots(1, n_panels, sharex=True, sharey=True)
    _image_panel(fig, axes[0], noiseless, 'true (noiseless) background')
    # Scale the scene like the true background so the sky structure stays visible.
    low, high = np.percentile(noiseless, (0.1, 99.9))
    _image_panel(fig, axes[1], scene, 'scene', vmin=low, vmax=high)
    if mask is not None:
        _image_panel(fig, axes[2], np.asarray(mask, dtype=float), 'source mask',
                     vmin=0, vmax=1, cmap='gray_r')
    return fig


def plot_residual_maps(residuals, *, limit=None, fig=None, n_columns=3):
    """
    Residual maps ``background - truth`` side by side, on one colour scale.

    Images larger than 300 pixels a side are shown block-averaged.

    Parameters
    ----------
    residuals : dict of str to array_like
        Residual image per estimator name.
    limit : float or None, optional
        The colour scale runs from ``-limit`` to ``limit``; None uses the
        median over the estimators of their 99.5th percentile of
        ``|residual|``, so that the better estimates show their structure
        and the worse ones saturate.
    fig : `~matplotlib.figure.Figure` or None, optional
        Figure to draw in; None makes one.
    n_columns : int, optional
        Panels per row.

    Returns
    -------
    fig : `~matplotlib.figure.Figure`
    """
    if not residuals:
        raise ValueError('residuals is empty')
    n_columns = min(n_columns, len(residuals))
    n_rows = -(-len(residuals) // n_columns)
    fig = _figure(fig, (4.0 * n_columns, 3.6 * n_rows))
    if limit is None:
        limit = np.median([np.percentile(np.abs(residual), 99.5)
                           for residual in residuals.values()])
    axes = fig.subplots(n_rows, n_columns, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, (name, residual) in zip(axes, residuals.items()):
        _image_panel(fig, ax, residual, name, vmin=-limit, vmax=limit, cmap='RdBu_r')
    for ax in axes[len(residuals):]:
        ax.set_visible(False)
    return fig


def plot_bias(result, *, fig=None, ylim=None):
    """
    The value under each source versus flux and versus radius, with line fits.

    Masked sources, unmasked sources and random unmasked positions are
    shown separately, as in the notebook; ideally all three scatter about
    zero with no trend.

    Parameters
    ----------
    result : `~astrobgopt.validation.BiasTestResult`
        A bias test run with a source catalog.
    fig : `~matplotlib.figure.Figure` or None, optional
        Figure to draw in; None makes one.
    ylim : tuple of float or None, optional
        Vertical range; None is automatic.

    Returns
    -------
    fig : `~matplotlib.figure.Figure`

    Raises
    ------
    ValueError
        If the bias test was run without a source catalog.
    """
    if result.sources is None:
        raise ValueError('this bias test was run without a source catalog; '
                         'pass sources= to bias_test to plot it')
    fig = _figure(fig, (10, 4))
    axes = fig.subplots(1, 2, sharey=True)
    samples = {'unmasked': result.sources[~result.sources['masked']],
               'masked': result.sources[result.sources['masked']],
               'random': result.random}
    for ax, versus in zip(axes, ('flux', 'radius')):
        for sample, table in samples.items():
            colour, marker, alpha = _BIAS_STYLE[sample]
            ax.scatter(table[versus], table['value'], s=6, color=colour, marker=marker,
                       alpha=alpha, label=f'{sample} ({len(table)})')
            fit = result.fits[(result.fits['sample'] == sample)
                              & (result.fits['versus'] == versus)][0]
            if np.isfinite(fit['slope']):
                x = np.linspace(0, np.max(table[versus]), 10)
                ax.plot(x, fit['slope'] * x + fit['intercept'], color=colour, alpha=0.8)
        ax.axhline(0, color='grey', lw=0.8)
        ax.set_xlabel(f'source {versus}')
        ax.set_title(f'{result.quantity} vs. {versus}')
    axes[0].set_ylabel(f'mean {result.quantity} (3x3 pixels)')
    axes[0].legend(loc='upper right', fontsize='small')
    if ylim is not None:
        axes[0].set_ylim(*ylim)
    return fig


def plot_rms_vs_scale(widths, curves, *, ratio=True, ylim=None, fig=None):
    """
    Residual RMS (or its ratio to a perfect subtraction) versus block width.

    Parameters
    ----------
    widths : array_like
        Block widths in pixels.
    curves : dict of str to array_like
        One curve per estimator name, each ``len(widths)`` long.
    ratio : bool, optional
        True when the curves are ratios to the perfect case (from
        `~astrobgopt.validation.rms_ratio_to_perfect`): a black line at 1
        marks perfection. False plots RMS on log axes with a ``1 / width``
        guide through the first point of the first curve.
    ylim : tuple of float or None, optional
        Vertical range, e.g. to keep a poor estimate from flattening the
        others (the notebook leaves its first attempt out for that reason);
        None is automatic.
    fig : `~matplotlib.figure.Figure` or None, optional
        Figure to draw in; None makes one.

    Returns
    -------
    fig : `~matplotlib.figure.Figure`
    """
    widths = np.asarray(widths)
    fig = _figure(fig, (7, 4))
    ax = fig.subplots()
    for name, curve in curves.items():
        ax.plot(widths, curve, alpha=0.8, label=name)
    if ratio:
        ax.axhline(1, color='black', label='perfect')
        ax.set_ylabel('residual RMS / perfect')
    else:
        first = np.asarray(next(iter(curves.values())))
        ax.plot(widths, first[0] * widths[0] / widths, 'k:', label='1 / width')
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_ylabel('RMS of block means')
    ax.set_xlabel('block width (pixels)')
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.legend(fontsize='small')
    return fig
