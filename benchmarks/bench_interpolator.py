"""
SplineOptInterpolator in photutils Background2D versus the default cubic
zoom, and the photutils-4.0-proof ``spline_background`` path, on the STScI
sinc-blemish scene with a source mask (box 10, filter 1, median).

Run: ``python benchmarks/bench_interpolator.py``.
Targets: residual RMS <= 0.005 (zoom ~0.013) in <= 3 s.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import background2d, offset_free_rms, print_table, timed  # noqa: E402


def main():
    from photutils.background import MedianBackground

    from astrobgopt import SplineOptInterpolator, spline_background
    from astrobgopt.validation import make_sinc_blemish_scene

    scene = make_sinc_blemish_scene(seed=4)
    mask = scene.source_image > 0.01
    options = dict(mask=mask, filter_size=1, bkg_estimator=MedianBackground())
    # Warm up TensorFlow (import and tracing) so the timings are per call.
    background2d(scene.scene[:200, :200], 10, interpolator=SplineOptInterpolator(n_points=16),
                 mask=mask[:200, :200]).background

    def zoom():
        return background2d(scene.scene, 10, **options).background

    def spline():
        return background2d(scene.scene, 10, interpolator=SplineOptInterpolator(n_points=256),
                            **options).background

    rows = []
    for name, func in (('Background2D default zoom', zoom),
                       ('Background2D + SplineOptInterpolator(256)', spline)):
        background, seconds = timed(func, repeat=3)
        rows.append([name, f'{offset_free_rms(background, scene.noiseless):.4f}',
                     f'{seconds:.2f}'])
    result, seconds = timed(lambda: spline_background(
        background2d(scene.scene, 10, **options), shape=scene.scene.shape,
        interpolator=SplineOptInterpolator(n_points=256)), repeat=3)
    rows.append(['spline_background (background + RMS)',
                 f'{offset_free_rms(result.background, scene.noiseless):.4f}', f'{seconds:.2f}'])
    print_table('STScI scene, Background2D box 10, filter 1, median, source mask',
                ['method', 'residual RMS', 's'], rows)
    zoom_rms, spline_rms = float(rows[0][1]), float(rows[1][1])
    print(f'spline vs zoom: {zoom_rms / spline_rms:.2f}x lower residual RMS')


if __name__ == '__main__':
    main()
