"""
Per-frame cost inside a photometry pipeline (issue 14): a 512 x 512 float64
frame, with every attribute such a pipeline reads (``background`` twice,
``background_rms``, both medians, ``plot_meshes``), against
``Background2D(image, 16)`` and SEP measured in the same run.

Three frames: a light-polluted sky with a large nebula (a large bright
object masked), a star field on a flat sky (the scene suite's
``small_flat``) and the frame of the issue, a ramp, a bowl and a bright
compact glow with six bright stars (``small_glow``). ``n_points='auto'``
fits the first two with the robust initialization alone (16 or 32 control
points), so neither compiles the optimizer; the glow needs 64 and more
points and the optimizer's steps, whose program is compiled on the first
call in a process (see the scenes page of the docs).

Rows: warm calls in this process; the first call in a new process (after
importing TensorFlow, which is timed apart; the median of three processes),
with the optimizer's compiled program in the cache directory, and with an
empty one (the first fit on a machine, which compiles the program and
stores it when the process exits: see docs/pipeline.rst); the first and a
later call in a child forked after a fit in the parent (the fit then runs in
a helper process that imports TensorFlow).

Run: ``python benchmarks/bench_pipeline.py``.
Targets: warm <= 1.5 x Background2D(16); first call <= 2 x warm.
"""
import functools
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import print_table, timed  # noqa: E402

SHAPE = (512, 512)
REPEAT = 5
# New processes timed for the first call (the median is shown): the first
# call varies by a tenth of a second from process to process on a busy VM.
NEW_PROCESSES = 3


# Frame name -> scene of the suite (the nebula frame is made apart).
FRAMES = {'nebula': None, 'star field': 'small_flat', 'glow': 'small_glow'}


def frame(name):
    """The big-endian float64 frame ``name`` (one of `FRAMES`), as `fits.getdata` gives it."""
    if FRAMES[name] is None:
        from astrobgopt.datasets import make_light_pollution_sky

        return make_light_pollution_sky(SHAPE, seed=14).image.astype('>f8')
    from astrobgopt.validation import make_scene

    return make_scene(FRAMES[name], size=SHAPE).data.astype('>f8')


def pipeline_reads(estimator, image):
    """Everything the pipeline reads from one frame's background."""
    import matplotlib

    matplotlib.use('agg')
    import matplotlib.pyplot as plt

    bkg = estimator(image)
    for name in ('background', 'background', 'background_rms'):
        getattr(bkg, name)
    row = [float(bkg.background_median), float(bkg.background_rms_median)]
    fig, ax = plt.subplots()
    bkg.plot_meshes(ax=ax, outlines=True, marker='.', color='red', alpha=0.3)
    plt.close(fig)
    return row


def sep_reads(image):
    import sep

    bkg = sep.Background(image.astype(float))
    return bkg.back(), bkg.back(), bkg.rms(), float(bkg.globalback), float(bkg.globalrms)


def _timed_in_child(estimator, image):
    """Seconds of two calls in a (forked) pool worker."""
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        pipeline_reads(estimator, image)
        seconds.append(time.perf_counter() - start)
    return seconds


FIRST_CALL = """
import json, sys, time
sys.path.insert(0, {here!r})
from bench_pipeline import frame, pipeline_reads
from astrobgopt import SplineOptBackground
from astrobgopt._startup import load_numerical_core
image = frame({name!r})
start = time.perf_counter()
load_numerical_core()
tf_import = time.perf_counter() - start
start = time.perf_counter()
pipeline_reads(SplineOptBackground(), image)
print(json.dumps([tf_import, time.perf_counter() - start]))
"""


def measure(name):
    """The table rows of frame ``name``."""
    from photutils.background import Background2D

    from astrobgopt import SplineOptBackground

    image = frame(name)
    estimator = SplineOptBackground()
    pipeline_reads(estimator, image)  # TensorFlow imported (and traced, where a fit steps)
    _, warm = timed(pipeline_reads, estimator, image, repeat=REPEAT)
    _, photutils = timed(pipeline_reads, functools.partial(Background2D, box_size=16), image,
                         repeat=REPEAT)
    try:
        _, sep_seconds = timed(sep_reads, image, repeat=REPEAT)
    except ImportError:
        sep_seconds = float('nan')

    with tempfile.TemporaryDirectory() as cache_home:
        # An empty cache directory of astrobgopt's (astropy takes
        # $XDG_CACHE_HOME/astrobgopt where it exists): the first new process
        # stores the program there as it exits, the next ones load it.
        os.mkdir(os.path.join(cache_home, 'astrobgopt'))
        env = dict(os.environ, XDG_CACHE_HOME=cache_home)
        env.pop('ASTROPY_CACHE_DIR', None)
        (_, uncached), *cached = [json.loads(subprocess.run(
            [sys.executable, '-c', FIRST_CALL.format(
                here=os.path.dirname(os.path.abspath(__file__)), name=name)],
            capture_output=True, text=True, check=True, env=env).stdout)
            for _ in range(1 + NEW_PROCESSES)]
    tf_import, first = np.median(cached, axis=0)

    with multiprocessing.get_context('fork').Pool(1) as pool:
        forked_first, forked_later = pool.apply_async(
            _timed_in_child, (estimator, image)).get(timeout=600)

    return [[f'{name}: SplineOptBackground, warm', f'{warm:.3f}', f'{warm / photutils:.2f}',
             '1.00'],
            [f'  first call in a new process (median of {NEW_PROCESSES})', f'{first:.3f}',
             f'{first / photutils:.2f}', f'{first / warm:.2f}'],
            ['  the same, nothing cached yet', f'{uncached:.3f}', f'{uncached / photutils:.2f}',
             f'{uncached / warm:.2f}'],
            ['  (importing TensorFlow before it)', f'{tf_import:.3f}', '', ''],
            ['  first call in a forked child', f'{forked_first:.3f}',
             f'{forked_first / photutils:.2f}', f'{forked_first / warm:.2f}'],
            ['  later call in a forked child', f'{forked_later:.3f}',
             f'{forked_later / photutils:.2f}', f'{forked_later / warm:.2f}'],
            ['  Background2D(image, 16)', f'{photutils:.3f}', '1.00', ''],
            ['  SEP Background', f'{sep_seconds:.3f}', f'{sep_seconds / photutils:.2f}', '']]


def main():
    rows = [row for name in FRAMES for row in measure(name)]
    print_table(f'Per frame, {SHAPE[0]} x {SHAPE[1]} big-endian float64, every attribute a '
                f'pipeline reads (median of {REPEAT})',
                ['', 'seconds', 'x Background2D(16)', 'x warm'], rows)


if __name__ == '__main__':
    main()
