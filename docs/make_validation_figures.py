"""
Regenerate the figures of docs/validation.rst (docs/_static/validation_*.png).

Runs the full validation report on the STScI notebook's 1000x1000 scene
(about a minute on a laptop; the spline fit uses a GPU when one is present)
and saves the figures the page shows with a 256-colour palette, checking that
each stays small.

Usage: python docs/make_validation_figures.py
"""

import tempfile
from pathlib import Path

from PIL import Image

from astrobgopt.validation import run_validation

STATIC = Path(__file__).parent / '_static'
#: Report figures shown in the page: report name -> file name under _static/.
FIGURES = {
    'scene': 'validation_scene.png',
    'residual_maps': 'validation_residual_maps.png',
    'rms_vs_scale': 'validation_rms_vs_scale.png',
    'bias_b2d_box6_f3_idw': 'validation_bias_notebook_best.png',
    'bias_splineopt_256': 'validation_bias_spline.png',
}
MAX_BYTES = 300_000


def main():
    with tempfile.TemporaryDirectory() as workdir:
        summary = run_validation(workdir, dpi=72)
        summary['table'][['name', 'rms', 'peak', 'bias', 'bias_shifted_significance',
                          'bias_significance', 'time_s']].pprint(max_width=-1)
        for name, filename in FIGURES.items():
            target = STATIC / filename
            # A palette image is a third of the size of matplotlib's RGBA output.
            Image.open(summary['figures'][name]).convert('RGB').quantize(256).save(
                target, optimize=True)
            size = target.stat().st_size
            if size > MAX_BYTES:
                raise RuntimeError(f'{target} is {size} bytes, over the {MAX_BYTES}-byte '
                                   'budget for the docs')
            print(f'wrote {target} ({size} bytes)')


if __name__ == '__main__':
    main()
