"""
Figures of the per-file pipeline: the result (input, model with its control
points, corrected image) and the preview (stretched image, mask, initial
control points), drawn with matplotlib's object interface (no pyplot state).
"""

import math

import numpy as np

from .points import read_points
from .stretch import Stretch

__all__ = ['figure_origin', 'display_stretch', 'plot_result', 'plot_preview']

# Longest side of an image as drawn in figures: plenty for a background, and
# it keeps figures of 60-megapixel frames small and quick.
_DISPLAY_PIXELS = 1200


def figure_origin(image):
    """Where figures put row 0: at the bottom for FITS (astronomers' habit), else on top."""
    return 'lower' if image.format == 'fits' else 'upper'


def display_stretch(image, usable, quantile):
    """A delinearizing stretch to show a linear image (the fit's own if it has one)."""
    return Stretch.from_data(image, usable, quantile=quantile)


def _display_step(shape):
    """Stride that brings the longest side down to about `_DISPLAY_PIXELS`."""
    return max(1, math.ceil(max(shape) / _DISPLAY_PIXELS))


def _imshow_geometry(shape, origin):
    """imshow arguments that put pixel (x, y) at data coordinates (x, y)."""
    height, width = shape
    vertical = (-0.5, height - 0.5) if origin == 'lower' else (height - 0.5, -0.5)
    return {'origin': origin, 'extent': (-0.5, width - 0.5) + vertical,
            'interpolation': 'nearest'}


def _image_figure(shape, n_panels, *, origin):
    """
    A row of image panels sized to the image's aspect ratio.

    Returns the figure, its axes and ``show(ax, image, stretch, title)``,
    which draws a (H, W, k) image stretched for display (RGB for 3
    channels, the mean of the channels in grey otherwise).
    """
    from matplotlib.figure import Figure

    height, width = shape
    panel_width = 5.0
    figure = Figure(figsize=(panel_width * n_panels,
                             panel_width * height / width + 0.8), layout='constrained')
    axes = figure.subplots(1, n_panels, squeeze=False)[0]
    step = _display_step(shape)
    geometry = _imshow_geometry(shape, origin)

    def show(ax, image, stretch, title):
        view = image[::step, ::step]
        if view.shape[-1] != 3:
            view = view.mean(axis=-1)
        shown = np.clip(stretch.forward(view), 0, 1)
        ax.imshow(np.nan_to_num(shown), cmap='gray', vmin=0, vmax=1, **geometry)
        ax.set_title(title, fontsize='medium')
        ax.set_xticks([])
        ax.set_yticks([])

    return figure, axes, show


def _save(figure, path):
    figure.savefig(path, dpi=100)


def plot_result(path, work, model, corrected, result, options, *, title, origin):
    """Input, model (with the control points) and corrected image, stretched."""
    finite = np.all(np.isfinite(work), axis=-1)
    quantile = options.estimator().delinearization_quantile
    input_stretch = display_stretch(work, finite, quantile)
    output_stretch = display_stretch(corrected, finite, quantile)
    figure, axes, show = _image_figure(work.shape[:2], 3, origin=origin)
    meta = result.meta
    figure.suptitle(f'{title}: {meta["n_control_points"]} control points, '
                    f'{meta["n_steps"]} steps ({meta["stop_reason"]})')
    show(axes[0], work, input_stretch, 'input')
    show(axes[1], model, input_stretch, 'background model (stretched as the input)')
    result.plot_meshes(ax=axes[1], show_initial=True)
    if options.points is not None:
        user_points = read_points(options.points)[0]
        axes[1].scatter(user_points[:, 0], user_points[:, 1], marker='o', facecolors='none',
                        edgecolors='cyan')
    # The markers must not widen the panel beyond the image.
    geometry = _imshow_geometry(work.shape[:2], origin)['extent']
    axes[1].set_xlim(*geometry[:2])
    axes[1].set_ylim(*geometry[2:])
    show(axes[2], corrected, output_stretch,
         'divided by the model' if options.divide else 'background subtracted')
    _save(figure, path)


def plot_preview(path, work, usable_fraction, display, control, user_points, *, title,
                 origin):
    """
    The stretched image with the initial control points (and user points),
    and the masked fraction of every pixel in red; returns the masked
    fraction of the whole image.
    """
    shape = work.shape[:2]
    figure, axes, show = _image_figure(shape, 2, origin=origin)
    figure.suptitle(f'{title}: preview ({display})')
    show(axes[0], work, display, 'stretched image and initial control points')
    axes[0].scatter(control[:, 0], control[:, 1], marker='+', color='red')
    if user_points is not None:
        axes[0].scatter(user_points[:, 0], user_points[:, 1], marker='o', facecolors='none',
                        edgecolors='cyan')
    masked_fraction = float(1 - usable_fraction.mean())
    show(axes[1], work, display, f'masked (red): {100 * masked_fraction:.1f}% of the pixels')
    step = _display_step(shape)
    overlay = np.zeros(usable_fraction[::step, ::step].shape + (4,), dtype=np.float32)
    overlay[..., 0] = 1
    overlay[..., 3] = 0.6 * (1 - usable_fraction[::step, ::step])
    axes[1].imshow(overlay, **_imshow_geometry(shape, origin))
    _save(figure, path)
    return masked_fraction
