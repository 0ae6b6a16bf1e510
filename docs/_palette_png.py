"""
Figures for the documentation as 256-colour PNGs within a size budget, for the
``make_*.py`` scripts beside this file (a palette image is about a third of the
size of matplotlib's RGBA output).
"""

import io

from PIL import Image


def figure_image(fig, dpi):
    """A matplotlib figure rendered at ``dpi`` as a PIL image."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=dpi)
    buffer.seek(0)
    return Image.open(buffer)


def save_palette_png(image, target, max_bytes):
    """Save a PIL image as a 256-colour PNG at ``target``; fail over ``max_bytes``."""
    image.convert('RGB').quantize(256).save(target, optimize=True)
    size = target.stat().st_size
    if size > max_bytes:
        raise RuntimeError(f'{target} is {size} bytes, over the {max_bytes}-byte budget '
                           'for the docs')
    print(f'wrote {target} ({size} bytes)')
