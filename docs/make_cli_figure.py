"""
Regenerate the figures of docs/cli.rst (docs/_static/cli_*.png).

Runs the command line's own code (`astrobgopt.frame.process_file`, what
``astrobgopt`` calls for each file) on simulated skies: the demo image
(``astrobgopt --demo``), its ``--preview``, and a colour 16-bit TIFF whose
light pollution is orange (subtracted with one pedestal for all channels),
then saves the figures with a 256-colour palette, checking that each stays
small. A few seconds on a laptop.

Usage: python docs/make_cli_figure.py
"""

import tempfile
from pathlib import Path

import numpy as np
import tifffile
from astropy.io import fits
from PIL import Image

from _palette_png import save_palette_png
from astrobgopt.frame import process_file
from astrobgopt.datasets import make_light_pollution_sky

STATIC = Path(__file__).parent / '_static'
MAX_BYTES = 300_000
# Width of the saved figures in pixels (matplotlib draws 500 per panel).
WIDTH = {'cli_demo.png': 1200, 'cli_preview.png': 900, 'cli_rgb.png': 1200}
# Sodium-lamp light pollution: strong in red and green, weak in blue.
POLLUTION_COLOUR = np.array([1.0, 0.75, 0.35])
# The sky's own colour (stars and nebula) in each channel.
SKY_COLOUR = np.array([1.0, 0.9, 1.1])


def save(source, name):
    """Resize to WIDTH, convert to a 256-colour palette and check the size."""
    image = Image.open(source).convert('RGB')
    width = WIDTH[name]
    image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    save_palette_png(image, STATIC / name, MAX_BYTES)


def colour_frame(path):
    """A 16-bit RGB TIFF: the demo sky with orange light pollution, 20,000 ADU per unit."""
    sky = make_light_pollution_sky((600, 900), seed=3)
    sources = (sky.image - sky.background)[..., None] * SKY_COLOUR
    pollution = (sky.background[..., None] - 0.04) * 3 * POLLUTION_COLOUR + 0.04
    adu = np.clip(np.round((sources + pollution) * 20000 + 300), 0, 65535).astype(np.uint16)
    tifffile.imwrite(path, adu, photometric='rgb')


def main():
    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        sky = make_light_pollution_sky()
        fits.writeto(workdir / 'demo.fits', sky.image)
        process_file(workdir / 'demo.fits', workdir, plot=workdir / 'demo.png',
                     estimator_options={'progress': False})
        save(workdir / 'demo.png', 'cli_demo.png')

        process_file(workdir / 'demo.fits', workdir, preview=True, plot=workdir / 'preview.png',
                     estimator_options={'stretch': 'mtf', 'delinearization_quantile': 0.9,
                                        'threshold_max': 0.8})
        save(workdir / 'preview.png', 'cli_preview.png')

        colour_frame(workdir / 'rgb.tif')
        # One pedestal for every channel: a neutral sky (astrobgopt rgb.tif --pedestal 1000).
        process_file(workdir / 'rgb.tif', workdir, plot=workdir / 'rgb.png', pedestal=1000.0,
                     estimator_options={'progress': False})
        save(workdir / 'rgb.png', 'cli_rgb.png')


if __name__ == '__main__':
    main()
