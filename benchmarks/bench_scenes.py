"""
Every scene of `astrobgopt.validation.SCENES` with default settings only,
side by side with photutils' ``Background2D`` and SEP's ``sep.Background``.

Run: ``python benchmarks/bench_scenes.py`` (``--quick`` halves the large
frames, ``--scenes a,b`` picks scenes, ``--variant 'mask_extended=False'``
adds a row of astrobgopt with those options, not counted as a peer).

Estimators, all in the same run on the same data:

* ``astrobgopt``: ``SplineOptBackground()`` with no option (colour frames
  with ``channel_axis``);
* ``B2D 16/32/64``: ``Background2D(data, box, filter_size=3)``, photutils'
  defaults otherwise; colour frames one channel at a time;
* ``SEP 32/64``: ``sep.Background(data, bw=box, bh=box)``, SEP's defaults
  otherwise (filter 3).

Columns, in units of the scene's pixel noise sigma (its median true sky
noise; for the real frame ``m13``, a robust estimate):

* ``err``: RMS of (estimate - true background) over every pixel;
* ``bias``: mean of (estimate - truth) under the objects (`Scene.objects`);
* ``equiv``: RMS of est(d + g) - est(d) - g for a smooth g (a tilted plane
  plus a gentle quadratic, 3 sigma peak to peak; `smooth_gradient`);
* ``rms med`` and ``rms max``: median and maximum of ``background_rms``
  divided by the true sky noise;
* ``time``: seconds for the estimate and its RMS map (inflated on a shared
  machine; compare within a run).

Then, per scene, astrobgopt's ``err`` over the best peer configuration's
(chosen afterwards), and the worst and median of those ratios.
"""
import argparse
import ast
import inspect
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(__file__))
from _common import background2d, print_table, timed  # noqa: E402

import numpy as np  # noqa: E402

from astrobgopt import SplineOptBackground  # noqa: E402
from astrobgopt.validation import (SCENES, bias_under, equivariance_rms, error_rms,  # noqa: E402
                                   load_m13_scene, make_scene, rms_map_ratios, smooth_gradient)

# Peak-to-peak of the injected gradient, in pixel-noise sigmas.
GRADIENT_SIGMAS = 3.0
BOXES = (16, 32, 64)
SEP_BOXES = (32, 64)
COLUMNS = ('err', 'bias', 'equiv', 'rms med', 'rms max', 'time')


def _per_channel(estimate_plane):
    """Run a 2-D estimator on each channel of a colour frame."""
    def estimate(data, channel_axis):
        if channel_axis is None:
            return estimate_plane(data)
        planes = [estimate_plane(np.take(data, c, axis=channel_axis))
                  for c in range(data.shape[channel_axis])]
        return tuple(np.stack(parts, axis=channel_axis) for parts in zip(*planes))
    return estimate


def _background2d(box):
    def estimate(data):
        result = background2d(data, box, filter_size=3)
        return result.background, result.background_rms
    return _per_channel(estimate)


def _sep(box):
    import sep

    def estimate(data):
        result = sep.Background(np.ascontiguousarray(data, dtype=np.float64), bw=box, bh=box)
        return result.back(), result.rms()
    return _per_channel(estimate)


def _astrobgopt(**options):
    def estimate(data, channel_axis):
        result = SplineOptBackground(**options)(data, channel_axis=channel_axis)
        return result.background, result.background_rms
    return estimate


def estimators(variant=None):
    """Name -> estimate(data, channel_axis) -> (background, background_rms); peers flagged."""
    methods = {'astrobgopt': (_astrobgopt(), False)}
    if variant is not None:
        methods['variant'] = (_astrobgopt(**variant), False)
    methods.update({f'B2D {box}': (_background2d(box), True) for box in BOXES})
    methods.update({f'SEP {box}': (_sep(box), True) for box in SEP_BOXES})
    return methods


def score(scene, estimate):
    """The row of figures of one estimator on one scene, and its warnings."""
    sigma = scene.noise_sigma
    run = (lambda data: estimate(data, scene.channel_axis))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            (background, rms), seconds = timed(run, scene.data)
            gradient = smooth_gradient(scene.data.shape, GRADIENT_SIGMAS * sigma)
            equivariance = equivariance_rms(lambda data: run(data)[0], scene.data, gradient,
                                            background=background)
        except ValueError as exc:  # Background2D gives up on some crowded frames
            return dict.fromkeys(COLUMNS, float('nan')), [f'failed: {exc}']
    rms_median, rms_max = rms_map_ratios(rms, scene.noise)
    known = scene.background is not None
    figures = {
        'err': error_rms(background, scene.background) / sigma if known else float('nan'),
        'bias': (bias_under(background, scene.background, scene.objects) / sigma
                 if known else float('nan')),
        'equiv': equivariance / sigma, 'rms med': rms_median, 'rms max': rms_max,
        'time': seconds}
    return figures, sorted({str(w.message).split('. ')[0] for w in caught})


def scene_size(name, quick):
    """The scene's own size, or for ``--quick`` half of it when above 512 pixels."""
    default = inspect.signature(SCENES[name]).parameters['size'].default
    if not quick:
        return None
    shape = (default, default) if np.isscalar(default) else default
    return tuple(n // 2 if max(shape) > 512 else n for n in shape)


def _format(value, digits=3):
    return '-' if not np.isfinite(value) else f'{value:.{digits}g}'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true', help='halve the frames above 512 px')
    parser.add_argument('--scenes', help='comma-separated scene names (default: all, and m13)')
    parser.add_argument('--seed', type=int, default=0, help='scene seed')
    parser.add_argument('--variant', help="astrobgopt options for an extra row, e.g. "
                        "\"mask_extended=False, downscale_factor=16\"")
    args = parser.parse_args(argv)
    names = list(SCENES) + ['m13'] if args.scenes is None else args.scenes.split(',')
    unknown = [name for name in names if name not in SCENES and name != 'm13']
    if unknown:
        parser.error(f'unknown scene(s) {unknown}; choose from {", ".join(SCENES)}, m13')
    variant = None
    if args.variant:
        call = ast.parse(f'f({args.variant})', mode='eval').body
        variant = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    methods = estimators(variant)

    header = ['scene', 'method', *COLUMNS]
    rows, ratios, notes = [], {}, []
    for name in names:
        scene = load_m13_scene() if name == 'm13' else make_scene(
            name, size=scene_size(name, args.quick), seed=args.seed)
        results = {}
        for method, (estimate, _) in methods.items():
            results[method], messages = score(scene, estimate)
            notes += [f'{name} / {method}: {message}' for message in messages]
            shape = 'x'.join(str(n) for n in scene.data.shape)
            rows.append([f'{name} {shape}' if method == 'astrobgopt' else '', method]
                        + [_format(results[method][key]) for key in COLUMNS])
        peers = {method: figures['err'] for method, figures in results.items()
                 if methods[method][1] and np.isfinite(figures['err'])}
        if peers:
            best = min(peers, key=peers.get)
            ratios[name] = (results['astrobgopt']['err'] / peers[best], best)
        print(f'{name}: done', file=sys.stderr, flush=True)

    print_table('Scenes, defaults only (figures in units of the pixel noise sigma)', header, rows)
    print_table('astrobgopt err / best peer err', ['scene', 'best peer', 'ratio'],
                [[name, best, f'{ratio:.3g}'] for name, (ratio, best) in ratios.items()])
    if notes:
        print('\nWarnings:')
        print('\n'.join(f'  {note}' for note in notes))
    values = {name: ratio for name, (ratio, _) in ratios.items()}
    if not values:
        return
    worst = max(values, key=values.get)
    print(f'\nworst ratio astrobgopt / best peer: {values[worst]:.3g} ({worst})')
    print(f'median ratio astrobgopt / best peer: {np.median(list(values.values())):.3g}')


if __name__ == '__main__':
    main()
