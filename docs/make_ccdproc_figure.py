"""
Regenerate the figure of docs/ccdproc.rst (docs/_static/ccdproc_reduction.png).

Runs the page's reduction script on ccdproc's raw test frame a8280271.fits
(overscan subtraction, trimming, background subtraction with the star
regions of tests/data/a8280271_stars.reg; a few seconds) and saves the
before / model / after panels with a 256-colour palette, checking that the
file stays small.

Usage: python docs/make_ccdproc_figure.py
"""

from pathlib import Path

import ccdproc
import matplotlib

matplotlib.use('agg')

import matplotlib.pyplot as plt  # noqa: E402
from astropy.nddata import CCDData  # noqa: E402
from astropy.visualization import ZScaleInterval  # noqa: E402

from astrobgopt.ccd import subtract_background  # noqa: E402
from astrobgopt.masks import read_regions  # noqa: E402
from _palette_png import figure_image, save_palette_png  # noqa: E402

ROOT = Path(__file__).parent.parent
RAW_FRAME = Path(ccdproc.__file__).parent / 'tests/data/a8280271.fits'
REGION_FILE = ROOT / 'tests/data/a8280271_stars.reg'
TARGET = Path(__file__).parent / '_static/ccdproc_reduction.png'
MAX_BYTES = 300_000


def reduce_frame():
    """The page's script: the reduced frame and the background-subtracted one."""
    raw = CCDData.read(RAW_FRAME, unit='adu')
    ccd = ccdproc.subtract_overscan(raw, fits_section=raw.header['BIASSEC'],
                                    overscan_axis=1, median=True)
    # TRIMSEC keeps 9 unexposed rows at the top; cut them as well.
    ccd = ccdproc.trim_image(ccd, fits_section='[17:528, 1:511]')
    sky_subtracted = subtract_background(ccd, regions=REGION_FILE, n_points=16,
                                         progress=False)
    return ccd, sky_subtracted


def main():
    ccd, sky_subtracted = reduce_frame()
    background = ccd.data - sky_subtracted.data
    print(sky_subtracted.meta['BGOPTSUB'])

    low, high = ZScaleInterval().get_limits(ccd.data)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.3), sharex=True, sharey=True,
                             layout='constrained')
    panels = [(ccd.data, 'overscan-subtracted, trimmed', (low, high)),
              (background, 'background model', (background.min(), background.max())),
              (sky_subtracted.data, 'after subtract_background',
               (low - background.mean(), high - background.mean()))]
    for ax, (image, title, (vmin, vmax)) in zip(axes, panels):
        shown = ax.imshow(image, origin='lower', cmap='gray', vmin=vmin, vmax=vmax)
        fig.colorbar(shown, ax=ax, shrink=0.8, label='adu')
        ax.set_title(title)
    for region in read_regions(REGION_FILE):
        region.plot(ax=axes[0], edgecolor='tab:orange', lw=1)
    axes[0].set_ylabel('y (pixel)')
    for ax in axes:
        ax.set_xlabel('x (pixel)')

    save_palette_png(figure_image(fig, dpi=72), TARGET, MAX_BYTES)


if __name__ == '__main__':
    main()
