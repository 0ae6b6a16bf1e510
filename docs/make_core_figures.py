"""
Make the figures of the README, the quickstart and the Background2D page.

Run from the repository root: ``python docs/make_core_figures.py`` (about a
minute on two CPU cores). Writes ``docs/_static/demo.png`` and
``docs/_static/interpolator_residuals.png``.
"""
import os
import warnings

import matplotlib

matplotlib.use('agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from astropy.visualization import AsinhStretch, ImageNormalize, PercentileInterval  # noqa: E402

STATIC = os.path.join(os.path.dirname(__file__), '_static')


def demo_figure():
    from astrobgopt import SplineOptBackground
    from astrobgopt.datasets import make_light_pollution_sky

    sky = make_light_pollution_sky(seed=0)
    result = SplineOptBackground(progress=False)(sky.image)
    subtracted = sky.image - result.background
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), constrained_layout=True)
    panels = [(sky.image, 'input: light pollution, glow, vignetting'),
              (result.background, 'spline background model'),
              (subtracted, 'background subtracted')]
    for ax, (image, title) in zip(axes, panels):
        norm = ImageNormalize(image, interval=PercentileInterval(99.5), stretch=AsinhStretch(0.1))
        ax.imshow(image, origin='lower', cmap='gray', norm=norm)
        ax.set_title(title)
        ax.set_axis_off()
    result.plot_meshes(ax=axes[1], color='orange', show_initial=True)
    axes[1].set_xlim(0, sky.image.shape[1])
    axes[1].set_ylim(0, sky.image.shape[0])
    fig.savefig(os.path.join(STATIC, 'demo.png'), dpi=70)
    plt.close(fig)


def interpolator_figure():
    from photutils.background import Background2D, MedianBackground

    from astrobgopt import SplineOptInterpolator
    from astrobgopt.validation import make_sinc_blemish_scene

    scene = make_sinc_blemish_scene(seed=4)
    options = dict(mask=scene.source_image > 0.01, filter_size=1,
                   bkg_estimator=MedianBackground())
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*interpolator.*')
        zoom = Background2D(scene.scene, 10, **options).background
        spline = Background2D(scene.scene, 10, interpolator=SplineOptInterpolator(n_points=256),
                              **options).background
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), constrained_layout=True)
    for ax, (image, name) in zip(axes, ((zoom, 'default cubic zoom'),
                                        (spline, 'SplineOptInterpolator(n_points=256)'))):
        residual = image - scene.noiseless
        shown = ax.imshow(residual, origin='lower', cmap='RdBu_r', vmin=-0.03, vmax=0.03)
        ax.set_title(f'{name}\nresidual RMS {np.std(residual):.4f}')
        ax.set_axis_off()
    fig.colorbar(shown, ax=axes, shrink=0.8, label='background - truth')
    fig.savefig(os.path.join(STATIC, 'interpolator_residuals.png'), dpi=55)
    plt.close(fig)


if __name__ == '__main__':
    demo_figure()
    interpolator_figure()
