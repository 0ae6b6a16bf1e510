"""
Simulated astrophotographs with a known background.

`make_light_pollution_sky` builds the kind of frame an astrophotographer
brings home from a suburban site: a pedestal, a linear light-pollution
gradient, the glow of a town near one corner and lens vignetting, with a large
faint nebula, thousands of stars and Gaussian noise. Every component is
returned, so a background model can be scored against the truth. It is the
built-in demo image of the command line (``astrobgopt --demo``).
"""

from dataclasses import dataclass

import numpy as np

from ._checks import check_non_negative, check_shape

__all__ = ['SimulatedSky', 'make_light_pollution_sky']


@dataclass
class SimulatedSky:
    """
    A simulated frame and its components (all float32, same shape).

    Attributes
    ----------
    image : `~numpy.ndarray`
        background + nebula + stars + noise.
    background : `~numpy.ndarray`
        The true smooth background (what a model should recover).
    nebula : `~numpy.ndarray`
        The extended nebula (not background).
    stars : `~numpy.ndarray`
        The star field.
    noise_sigma : float
        Standard deviation of the Gaussian pixel noise.
    """

    image: np.ndarray
    background: np.ndarray
    nebula: np.ndarray
    stars: np.ndarray
    noise_sigma: float

    def nebula_region(self, level=0.1):
        """Pixels where the nebula exceeds ``level`` times its peak."""
        return self.nebula > level * self.nebula.max()


def _star_half_width(fwhm):
    """Half the side of the square a Gaussian star of ``fwhm`` is rendered in (4 sigma)."""
    return int(np.ceil(4 * fwhm / 2.3548))


def _add_stars(canvas, rng, n_stars, noise_sigma, fwhm):
    """Render Gaussian stars with a power-law brightness distribution."""
    height, width = canvas.shape
    sigma = fwhm / 2.3548
    half = _star_half_width(fwhm)
    offsets = np.arange(-half, half + 1)
    # Peak amplitudes from 3 sigma of noise up to saturation, most of them faint.
    peaks = noise_sigma * 3 * (1 - rng.random(n_stars)) ** (-1.5)
    peaks = np.minimum(peaks, 0.9)
    xs = rng.uniform(half, width - half - 1, n_stars)
    ys = rng.uniform(half, height - half - 1, n_stars)
    for x, y, peak in zip(xs, ys, peaks):
        ix, iy = int(x), int(y)
        gx = np.exp(-0.5 * ((ix + offsets - x) / sigma) ** 2)
        gy = np.exp(-0.5 * ((iy + offsets - y) / sigma) ** 2)
        canvas[iy - half:iy + half + 1, ix - half:ix + half + 1] += peak * np.outer(gy, gx)


def make_light_pollution_sky(shape=(1000, 1500), *, noise_sigma=0.002, nebula_amplitude=15.0,
                             star_density=5e-4, star_fwhm=3.0, light_pollution=1.0, seed=0):
    """
    Simulate a light-polluted astrophotograph with a known background.

    Parameters
    ----------
    shape : int or tuple of int, optional
        Image shape (height, width); an int for a square. At least 2 pixels
        a side, and room for a star (14 pixels at the default FWHM) unless
        ``star_density`` is 0.
    noise_sigma : float, optional
        Standard deviation of the Gaussian pixel noise (data are in [0, 1]
        like a normalized linear image).
    nebula_amplitude : float, optional
        Peak of the nebula in units of ``noise_sigma``.
    star_density : float, optional
        Stars per pixel.
    star_fwhm : float, optional
        Star full width at half maximum in pixels.
    light_pollution : float, optional
        Scale of the light pollution (the gradient and the town's glow),
        1 for the levels given in the notes.
    seed : int, optional
        Random seed (the result is deterministic for a seed).

    Returns
    -------
    sky : `SimulatedSky`

    Raises
    ------
    TypeError
        If an argument is not a number (``shape``: not ints).
    ValueError
        If a number is negative or not finite, ``star_fwhm`` is 0, or
        ``shape`` is too small (see above).

    Notes
    -----
    The background is ``(pedestal + gradient + glow) * vignetting`` with a
    pedestal of 0.05, a linear gradient rising by 0.02 across the frame, a
    town glow of 0.03 centred on the lower-left corner with a scale of 35% of
    the frame, and a vignetting that darkens the corners by 15%. The nebula
    is the sum of two elongated Gaussian lobes whose main lobe has a full
    width at half maximum of about 30% of the frame width, so it covers about
    a quarter of the frame.
    """
    height, width = shape = check_shape(shape)
    for name, value in (('noise_sigma', noise_sigma), ('nebula_amplitude', nebula_amplitude),
                        ('star_density', star_density), ('star_fwhm', star_fwhm),
                        ('light_pollution', light_pollution)):
        check_non_negative(value, name)
    if star_fwhm == 0:
        raise ValueError('star_fwhm must be > 0')
    n_stars = int(star_density * height * width)
    smallest = 2 if n_stars == 0 else 2 * _star_half_width(star_fwhm) + 2
    if min(shape) < smallest:
        room = '' if n_stars == 0 else (f' (room for a star of FWHM {star_fwhm}; or '
                                        'star_density=0)')
        raise ValueError(f'shape {shape} is too small: it needs at least {smallest} pixels '
                         f'a side{room}')
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / (width - 1), y / (height - 1)
    size = max(height, width)

    gradient = 0.02 * (0.6 * u + 0.4 * v)
    glow = 0.03 * np.exp(-0.5 * (x ** 2 + y ** 2) / (0.35 * size) ** 2)
    radius2 = ((u - 0.5) ** 2 + (v - 0.5) ** 2) / 0.5
    vignetting = 1 - 0.15 * radius2
    background = ((0.05 + light_pollution * (gradient + glow)) * vignetting).astype(np.float32)

    def lobe(cx, cy, sx, sy, angle):
        dx, dy = x - cx * width, y - cy * height
        c, s = np.cos(angle), np.sin(angle)
        a, b = (c * dx + s * dy) / (sx * width), (-s * dx + c * dy) / (sy * width)
        return np.exp(-0.5 * (a ** 2 + b ** 2))

    nebula = lobe(0.62, 0.55, 0.13, 0.09, 0.5) + 0.5 * lobe(0.5, 0.45, 0.07, 0.05, -0.3)
    nebula *= nebula_amplitude * noise_sigma / nebula.max()
    nebula = nebula.astype(np.float32)

    stars = np.zeros(shape, dtype=np.float32)
    if n_stars:
        _add_stars(stars, rng, n_stars, noise_sigma, star_fwhm)

    noise = rng.normal(0.0, noise_sigma, size=shape).astype(np.float32)
    image = background + nebula + stars + noise
    return SimulatedSky(image=image, background=background, nebula=nebula, stars=stars,
                        noise_sigma=noise_sigma)
