"""
Regenerate the figures of docs/scenes.rst (docs/_static/scene_*.png).

For every scene of `astrobgopt.validation.SCENES` and the real ``m13`` frame,
at the sizes of ``benchmarks/bench_scenes.py``: the input, the default
`SplineOptBackground` model and its error against the true background, and
the same for the best peer configuration of the benchmark (``Background2D``
at box 16/32/64 with filter 3, SEP at bw 32/64; the one with the smallest
error). For ``m13``, which has no truth, the residual data - model is shown
and the peer is ``Background2D`` box 32. Colour frames show the mean of
their channels. About three minutes on a laptop; each figure is a
256-colour PNG of about 100 kB.

Usage: python docs/make_scene_figures.py [--scenes a,b]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / 'benchmarks'))
from bench_scenes import estimators  # noqa: E402
from _palette_png import figure_image, save_palette_png  # noqa: E402

from astrobgopt.validation import SCENES, error_rms, load_m13_scene, make_scene  # noqa: E402

STATIC = Path(__file__).parent / '_static'
MAX_BYTES = 250_000
# Display stride: the panels are a few hundred pixels wide anyway.
MAX_PANEL_PIXELS = 400
# The m13 frame has no truth: its peer is fixed (box 64 fails on it).
M13_PEER = 'B2D 32'


def _plane(image):
    """A displayable 2-D float image (colour frames: mean of the channels)."""
    image = np.asarray(image, dtype=np.float64)
    return image.mean(axis=-1) if image.ndim == 3 else image


def _shrink(image):
    step = max(1, int(np.ceil(max(image.shape) / MAX_PANEL_PIXELS)))
    return image[::step, ::step]


def scene_figure(scene, name):
    """The figure of one scene: rows astrobgopt and best peer; input, model, error."""
    import matplotlib.pyplot as plt

    methods = estimators()
    known = scene.background is not None
    backgrounds = {}
    for method, (estimate, is_peer) in methods.items():
        if method != 'astrobgopt' and not (is_peer and known) and method != M13_PEER:
            continue
        try:
            backgrounds[method] = estimate(scene.data, scene.channel_axis)[0]
        except ValueError:  # Background2D gives up on some crowded frames
            continue
    if known:
        errors = {method: error_rms(background, scene.background)
                  for method, background in backgrounds.items() if method != 'astrobgopt'}
        peer = min(errors, key=errors.get)
    else:
        peer = M13_PEER
    sigma = scene.noise_sigma
    data = _plane(scene.data)
    low, high = np.percentile(data, [1, 99])
    fig, axes = plt.subplots(2, 3, figsize=(9, 5), constrained_layout=True)
    for row, method in enumerate(('astrobgopt', peer)):
        model = _plane(backgrounds[method])
        if known:
            residual = (model - _plane(scene.background)) / sigma
            title, limit = 'error / sigma', 3.0
        else:
            residual = (data - model) / sigma
            title, limit = 'data - model, / sigma', 5.0
        left = data if row == 0 else (_plane(scene.background) if known else data)
        panels = ((left, 'input' if row == 0 else ('true background' if known else 'input'),
                   'gray', (low, high)),
                  (model, f'{method}: model', 'gray', (low, high)),
                  (residual, f'{method}: {title}', 'RdBu_r', (-limit, limit)))
        for ax, (image, label, cmap, (vmin, vmax)) in zip(axes[row], panels):
            shown = ax.imshow(_shrink(image), origin='lower', cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_title(label, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(shown, ax=axes[row, 2], shrink=0.8)
    shape = 'x'.join(str(n) for n in scene.data.shape)
    fig.suptitle(f'{name} ({shape})', fontsize=10)
    return fig


def save_small(fig, target):
    """Save as a 256-colour PNG and check that it stays within the docs budget."""
    import matplotlib.pyplot as plt

    image = figure_image(fig, dpi=60)
    plt.close(fig)
    save_palette_png(image, target, MAX_BYTES)


def main(argv=None):
    import matplotlib
    matplotlib.use('agg')

    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scenes', help='comma-separated scene names (default: all, and m13)')
    args = parser.parse_args(argv)
    names = list(SCENES) + ['m13'] if args.scenes is None else args.scenes.split(',')
    for name in names:
        scene = load_m13_scene() if name == 'm13' else make_scene(name)
        save_small(scene_figure(scene, name), STATIC / f'scene_{name}.png')


if __name__ == '__main__':
    main()
