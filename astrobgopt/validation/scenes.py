"""
A suite of simulated scenes with a known background, for the scenes real users bring.

Each scene is a deterministic function of its size and seed returning a
`Scene`: the data, the true background, the true noise of the sky, the light
of the objects and the pixels they cover. The registry ``SCENES`` (and
`make_scene`) names them all. What is *background* and what is an *object*
is decided per scene and written in its docstring; the rule is that light
which is part of the sky or of the instrument (light pollution, airglow, a
town's or a moon's compact glow, vignetting, amplifier glow) is background,
and light from a celestial object (stars, a galaxy, a nebula, a cluster's
unresolved light, a star's halo and diffraction spikes, a satellite trail) is
an object.

Noise follows a CCD: a Gaussian with variance ``read_noise**2 + signal / gain``
(the normal approximation of the photon noise), from read-noise dominated
scenes (faint sky: ``galaxy``, ``vignetting_amp_glow``) to sky dominated ones
(``globular_cluster``, ``milky_way``, ``saturated_star``, ``rgb_gradient``);
``light_pollution``, ``sinc_blemish`` and the small frames have a constant
noise, as their sources define them. `Scene.noise` is the noise of the
*sky* (what a ``background_rms`` should estimate), not of the objects' photons.

`load_m13_scene` adds a real frame, a crowded globular cluster from astropy's
test data, whose background is unknown: it serves the equivariance metric
(`astrobgopt.validation.equivariance_rms`) only.

The module is long (about 600 lines) because it is a catalogue: one short
function per scene family, sharing the noise model and the object rules
above, which are easier to check side by side than across files.
"""

import math
import pathlib
import dataclasses

import numpy as np

from ..datasets import make_light_pollution_sky
from .._checks import check_shape
from .scene import make_sinc_blemish_scene

__all__ = ['Scene', 'SCENES', 'make_scene', 'load_m13_scene', 'OBJECT_LEVEL',
           'light_pollution_scene', 'strong_light_pollution_scene', 'small_glow_scene',
           'small_flat_scene', 'globular_cluster_scene', 'galaxy_scene', 'edge_nebula_scene',
           'saturated_star_scene', 'satellite_trail_scene', 'milky_way_scene',
           'vignetting_amp_glow_scene', 'sinc_blemish_scene', 'rgb_gradient_scene',
           'small_256_scene']

#: Object light above this many sky-noise sigmas marks a pixel as covered by
#: an object (`Scene.objects`): the region where a background estimate must
#: not follow the data.
OBJECT_LEVEL = 0.5
# Stars are rendered out to where their light falls below this many sigmas.
_STAR_FLOOR = 0.05


@dataclasses.dataclass(frozen=True)
class Scene:
    """
    A simulated (or real) frame and everything known about it.

    Attributes
    ----------
    name : str
        Registry name (see ``SCENES``).
    description : str
        One line: what the scene is and what counts as background.
    data : `~numpy.ndarray`
        The frame a background estimator is given (float64), ``(ny, nx)`` or,
        for colour, ``(ny, nx, 3)`` with ``channel_axis = -1``.
    background : `~numpy.ndarray` or None
        The true background, shaped like ``data``; None for real data.
    noise : `~numpy.ndarray`
        The true noise sigma of the sky in each pixel, shaped like ``data``
        (for real data, a constant robust estimate).
    object_image : `~numpy.ndarray` or None
        The light of the objects (before saturation), shaped like ``data``;
        None for real data.
    objects : `~numpy.ndarray` or None
        Boolean ``(ny, nx)``: pixels where an object's light exceeds
        ``OBJECT_LEVEL`` times the sky noise (in any channel), saturated
        pixels included; None for real data.
    channel_axis : int or None
        -1 for colour scenes, else None.
    """

    name: str
    description: str
    data: np.ndarray
    background: np.ndarray | None
    noise: np.ndarray
    object_image: np.ndarray | None = None
    objects: np.ndarray | None = None
    channel_axis: int | None = None

    @property
    def noise_sigma(self):
        """The median sky-noise sigma: the scene's "pixel noise"."""
        return float(np.median(self.noise))


def _observe(rng, background, object_image, *, read_noise, gain=None):
    """
    Noisy data and the sky's noise map for a background plus objects.

    ``gain`` (electrons per count) None means a constant noise ``read_noise``.
    """
    if gain is None:
        sky_noise = np.full(background.shape, float(read_noise))
        total_noise = sky_noise
    else:
        sky_noise = np.sqrt(read_noise ** 2 + np.clip(background, 0, None) / gain)
        total_noise = np.sqrt(read_noise ** 2 + np.clip(background + object_image, 0, None) / gain)
    data = background + object_image + total_noise * rng.standard_normal(background.shape)
    return data, sky_noise


def _objects_mask(object_image, noise):
    """Pixels where the objects exceed ``OBJECT_LEVEL`` sigmas, in any channel."""
    covered = object_image > OBJECT_LEVEL * noise
    return covered.any(axis=-1) if covered.ndim == 3 else covered


def _known_scene(function, data, background, noise, object_image):
    """
    A `Scene` made by ``function`` (named after it, described by its
    docstring's first line) from arrays already observed.
    """
    channel_axis = -1 if data.ndim == 3 else None
    return Scene(name=function.__name__.removesuffix('_scene'),
                 description=function.__doc__.strip().split('\n')[0], data=data,
                 background=background, noise=noise, object_image=object_image,
                 objects=_objects_mask(object_image, noise), channel_axis=channel_axis)


def _scene(function, rng, background, object_image, *, read_noise, gain=None,
           saturation=None):
    """Observe background plus objects and wrap everything in a `Scene`."""
    data, noise = _observe(rng, background, object_image, read_noise=read_noise, gain=gain)
    scene = _known_scene(function, data, background, noise, object_image)
    if saturation is None:
        return scene
    saturated = data >= saturation
    saturated = saturated.any(axis=-1) if saturated.ndim == 3 else saturated
    return dataclasses.replace(scene, data=np.minimum(data, saturation),
                               objects=scene.objects | saturated)


def _start(size, seed):
    """
    What every scene starts from: its shape, its random generator and the
    pixel coordinates (y, x) with the same scaled to [0, 1] (v, u).
    """
    shape = check_shape(size)
    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float64)
    return shape, np.random.default_rng(seed), (y, x, y / max(ny - 1, 1), x / max(nx - 1, 1))


def _star_peaks(rng, n_stars, faintest, brightest):
    """Peak values of a power-law luminosity function, most stars faint."""
    return np.minimum(faintest * (1 - rng.random(n_stars)) ** -1.5, brightest)


def _render_stars(shape, x, y, peaks, *, fwhm, floor, beta=3.0):
    """
    Moffat stars (index ``beta``) of the given peaks, each out to where its
    light falls to ``floor``.
    """
    image = np.zeros(shape)
    ny, nx = shape
    alpha = fwhm / (2 * math.sqrt(2 ** (1 / beta) - 1))
    for xc, yc, peak in zip(x, y, peaks):
        reach = alpha * math.sqrt(max((peak / floor) ** (1 / beta) - 1, 0.0))
        reach = int(math.ceil(min(reach, max(shape))))
        x0, x1 = max(int(xc) - reach, 0), min(int(xc) + reach + 2, nx)
        y0, y1 = max(int(yc) - reach, 0), min(int(yc) + reach + 2, ny)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.ogrid[y0:y1, x0:x1]
        image[y0:y1, x0:x1] += peak * (1 + ((xx - xc) ** 2 + (yy - yc) ** 2) / alpha ** 2) ** -beta
    return image


def _star_field(rng, shape, density, noise, *, faintest=3.0, brightest=500.0, fwhm=3.5):
    """
    Stars at uniform positions, ``density`` per pixel, peaks from
    ``faintest`` to ``brightest`` sigmas of ``noise``.
    """
    ny, nx = shape
    n_stars = int(round(density * ny * nx))
    x, y = nx * rng.random(n_stars) - 0.5, ny * rng.random(n_stars) - 0.5
    peaks = _star_peaks(rng, n_stars, faintest * noise, brightest * noise)
    return _render_stars(shape, x, y, peaks, fwhm=fwhm, floor=_STAR_FLOOR * noise)


def _gaussian(x, y, xc, yc, sigma_x, sigma_y=None, angle=0.0):
    """An elliptical Gaussian of unit peak."""
    sigma_y = sigma_x if sigma_y is None else sigma_y
    c, s = math.cos(angle), math.sin(angle)
    a = (c * (x - xc) + s * (y - yc)) / sigma_x
    b = (-s * (x - xc) + c * (y - yc)) / sigma_y
    return np.exp(-0.5 * (a ** 2 + b ** 2))


def _light_pollution_frame(function, size, seed, light_pollution):
    """A `Scene` of `astrobgopt.datasets.make_light_pollution_sky`."""
    sky = make_light_pollution_sky(check_shape(size), light_pollution=light_pollution, seed=seed)
    background = sky.background.astype(np.float64)
    object_image = (sky.nebula + sky.stars).astype(np.float64)
    noise = np.full(background.shape, float(sky.noise_sigma))
    return _known_scene(function, sky.image.astype(np.float64), background, noise, object_image)


def light_pollution_scene(size=(1000, 1500), *, seed=0):
    """
    (a) A light-polluted astrophotograph with a large faint nebula.

    `astrobgopt.datasets.make_light_pollution_sky`: background = pedestal,
    linear gradient, a town's glow in a corner and vignetting; objects = the
    nebula (peak 15 sigma, a quarter of the frame) and about 750 stars per
    million pixels. Constant noise 0.002 on data in [0, 1].
    """
    return _light_pollution_frame(light_pollution_scene, size, seed, 1.0)


def strong_light_pollution_scene(size=(1000, 1500), *, seed=0):
    """
    (a) The light-polluted frame with three times the light pollution.

    As `light_pollution_scene`, with the gradient and the town's glow
    tripled (``light_pollution=3`` in
    `astrobgopt.datasets.make_light_pollution_sky`): the sky's structure
    then stands well above the noise around the large nebula, as under a
    city's sky or a bright moon.
    """
    return _light_pollution_frame(strong_light_pollution_scene, size, seed, 3.0)


def _small_frame(size, seed, *, with_gradient):
    """The small frame of `small_glow_scene` and `small_flat_scene`."""
    shape, rng, (y, x, v, u) = _start(size, seed)
    noise, background = 10.0, np.full(shape, 100.0)
    if with_gradient:
        width = shape[1]
        bowl = ((u - 0.5) ** 2 + (v - 0.5) ** 2) / 0.5
        glow = 150.0 * _gaussian(x, y, 0.12 * width, 0.12 * shape[0], 0.14 * width)
        background = background + 80.0 * u + 50.0 * bowl + glow
    ny, nx = shape
    xs, ys = rng.uniform(0.1, 0.9, 6) * nx, rng.uniform(0.1, 0.9, 6) * ny
    peaks = noise * rng.uniform(50, 500, 6)
    stars = _render_stars(shape, xs, ys, peaks, fwhm=4.0, floor=_STAR_FLOOR * noise, beta=2.5)
    function = small_glow_scene if with_gradient else small_flat_scene
    return _scene(function, rng, background, stars, read_noise=noise)


def small_glow_scene(size=512, *, seed=0):
    """
    (b) A small frame: 6 bright stars on a ramp, a bowl and a bright compact glow.

    Background = 100-count sky + linear ramp 0-80 (left to right) + quadratic
    bowl 0-50 (centre to corners) + a glow of 150 counts, a Gaussian of sigma
    0.14 of the width centred near the lower-left corner (sky light, so
    background); objects = 6 bright Moffat stars (peaks 50-500 sigma).
    Constant noise 10.
    """
    return _small_frame(size, seed, with_gradient=True)


def small_flat_scene(size=512, *, seed=0):
    """
    (b) The small frame of `small_glow_scene` without gradient or glow.

    Background = flat 100-count sky; objects = the same 6 bright stars.
    Constant noise 10.
    """
    return _small_frame(size, seed, with_gradient=False)


def _plummer_radii(rng, n, scale):
    """Projected radii of a Plummer sphere: surface density (1 + R^2/a^2)^-2."""
    u = rng.random(n)
    return scale * np.sqrt(u / (1 - u))


def globular_cluster_scene(size=1024, *, seed=0):
    """
    (c) A crowded globular cluster whose unresolved light fills the centre.

    Background = 800-count sky with a gentle tilt (5 % across the frame);
    objects = the cluster's unresolved light (a Plummer profile, core radius
    0.1 of the frame, 40 sigma at the centre), 5000 member stars drawn from
    the same profile and 600 field stars (both per 1024x1024 pixels). Sky
    dominated (gain 1, read noise 5).
    """
    shape, rng, (y, x, v, u) = _start(size, seed)
    ny, nx = shape
    background = 800.0 * (1 + 0.03 * u + 0.02 * v)
    noise = math.sqrt(25 + 800)
    core = 0.1 * min(shape)
    xc, yc = 0.5 * nx, 0.5 * ny
    light = 40 * noise / (1 + ((x - xc) ** 2 + (y - yc) ** 2) / core ** 2) ** 2
    n_members = int(round(5000 * ny * nx / 1024 ** 2))
    radius, angle = _plummer_radii(rng, n_members, core), 2 * np.pi * rng.random(n_members)
    members = _render_stars(shape, xc + radius * np.cos(angle), yc + radius * np.sin(angle),
                            _star_peaks(rng, n_members, 3 * noise, 300 * noise), fwhm=3.5,
                            floor=_STAR_FLOOR * noise)
    field = _star_field(rng, shape, 600 / 1024 ** 2, noise)
    return _scene(globular_cluster_scene, rng,
                  background, light + members + field, read_noise=5.0, gain=1.0)


def galaxy_scene(size=1024, *, seed=0):
    """
    (d) A large galaxy covering a third of the frame.

    Background = 40-count sky with a linear gradient of 15 counts; objects =
    an inclined exponential disk (50 sigma at the centre, axis ratio 0.6,
    its 0.5-sigma isophote a third of the frame's area), a compact bulge
    and 300 stars per million pixels. Read-noise dominated (gain 1, read
    noise 12).
    """
    shape, rng, (y, x, v, u) = _start(size, seed)
    ny, nx = shape
    background = 40.0 + 15.0 * (0.7 * u + 0.3 * v)
    noise = math.sqrt(12 ** 2 + 40)
    axis_ratio, angle = 0.6, 0.5
    # The 0.5-sigma isophote of a disk of central surface brightness 50 sigma
    # lies at ln(100) scale lengths; its ellipse covers a third of the frame.
    semi_major = math.sqrt(ny * nx / (3 * math.pi * axis_ratio))
    scale = semi_major / math.log(50 / OBJECT_LEVEL)
    c, s = math.cos(angle), math.sin(angle)
    a = (c * (x - 0.5 * nx) + s * (y - 0.5 * ny))
    b = (-s * (x - 0.5 * nx) + c * (y - 0.5 * ny)) / axis_ratio
    disk = 50 * noise * np.exp(-np.hypot(a, b) / scale)
    bulge = 150 * noise * _gaussian(x, y, 0.5 * nx, 0.5 * ny, 0.02 * min(shape))
    stars = _star_field(rng, shape, 3e-4, noise)
    return _scene(galaxy_scene, rng, background,
                  disk + bulge + stars, read_noise=12.0, gain=1.0)


def edge_nebula_scene(size=(1000, 1500), *, seed=0):
    """
    (e) A nebula touching two edges.

    Background = 300-count sky, a linear gradient of 60 counts and a bowl of
    30; objects = a two-lobed nebula (peak 15 sigma) centred near the upper
    right corner, so that it runs off the top and right edges, and 500 stars
    per million pixels. Gain 1, read noise 8.
    """
    shape, rng, (y, x, v, u) = _start(size, seed)
    ny, nx = shape
    background = 300.0 + 60.0 * (0.4 * u + 0.6 * v) + 30.0 * ((u - 0.4) ** 2 + (v - 0.5) ** 2)
    noise = math.sqrt(64 + 300)
    width = max(shape)
    nebula = (_gaussian(x, y, 0.88 * nx, 0.85 * ny, 0.2 * width, 0.12 * width, 0.6)
              + 0.6 * _gaussian(x, y, 0.75 * nx, 0.95 * ny, 0.08 * width, 0.05 * width, -0.4))
    nebula *= 15 * noise / nebula.max()
    stars = _star_field(rng, shape, 5e-4, noise)
    return _scene(edge_nebula_scene, rng,
                  background, nebula + stars, read_noise=8.0, gain=1.0)


def saturated_star_scene(size=1024, *, seed=0):
    """
    (f) A bright saturated star with a halo and diffraction spikes.

    Background = 200-count sky with a linear gradient of 20 counts; objects =
    a star whose core saturates (data clipped at 60000 counts), its halo
    (a Moffat wing visible to about 15 % of the frame), four diffraction
    spikes reaching about as far, and 400 field stars per million pixels.
    Sky dominated (gain 1, read noise 6).
    """
    shape, rng, (y, x, v, u) = _start(size, seed)
    ny, nx = shape
    background = 200.0 + 20.0 * (0.5 * u + 0.5 * v)
    noise = math.sqrt(36 + 200)
    xc, yc = 0.55 * nx, 0.45 * ny
    # The optics scale with the frame, so that small versions look alike.
    scale = min(shape) / 1024
    r2 = (x - xc) ** 2 + (y - yc) ** 2
    core = 1e6 * (1 + r2 / 3.0 ** 2) ** -3
    halo = 1700 * noise * (1 + r2 / (10.0 * scale) ** 2) ** -1.5
    spikes = np.zeros(shape)
    for angle in (np.pi / 4, 3 * np.pi / 4):
        c, s = math.cos(angle), math.sin(angle)
        along = c * (x - xc) + s * (y - yc)
        across = -s * (x - xc) + c * (y - yc)
        spikes += (500 * noise * np.exp(-0.5 * (across / 1.2) ** 2)
                   * (1 + np.abs(along) / (20 * scale)) ** -2)
    star = core + halo + spikes
    star[star < _STAR_FLOOR * noise] = 0
    stars = _star_field(rng, shape, 4e-4, noise)
    return _scene(saturated_star_scene, rng,
                  background, star + stars, read_noise=6.0, gain=1.0, saturation=60000.0)


def satellite_trail_scene(size=(1000, 1500), *, seed=0):
    """
    (g) A satellite trail across the frame.

    Background = 150-count sky with a linear gradient of 30 counts; objects =
    a straight trail from the left edge to the right (Gaussian cross-section
    of sigma 1.5 pixels, 8 sigma high) and 500 stars per million pixels.
    Gain 1, read noise 5.
    """
    shape, rng, (y, x, v, u) = _start(size, seed)
    ny, nx = shape
    background = 150.0 + 30.0 * (0.3 * u + 0.7 * v)
    noise = math.sqrt(25 + 150)
    angle = math.atan2(0.7 * ny, nx)
    across = -math.sin(angle) * x + math.cos(angle) * (y - 0.2 * ny)
    trail = 8 * noise * np.exp(-0.5 * (across / 1.5) ** 2)
    stars = _star_field(rng, shape, 5e-4, noise)
    return _scene(satellite_trail_scene, rng,
                  background, trail + stars, read_noise=5.0, gain=1.0)


def milky_way_scene(size=(1000, 1500), *, seed=0):
    """
    (h) A dense Milky Way star field.

    Background = 600-count sky with a linear gradient of 40 counts; objects =
    about 0.03 stars per pixel, three times denser along a diagonal band,
    most of them below the noise (peaks from 0.3 sigma), so that they add an
    unresolved glow. Sky dominated (gain 1, read noise 5).
    """
    shape, rng, (y, x, v, u) = _start(size, seed)
    ny, nx = shape
    background = 600.0 + 40.0 * (0.6 * u + 0.4 * v)
    noise = math.sqrt(25 + 600)
    n_stars = int(round(0.03 * ny * nx))
    # Positions by rejection from the band's density (1 + 2 exp(-d^2 / 2 w^2)) / 3.
    xs, ys = nx * rng.random(3 * n_stars) - 0.5, ny * rng.random(3 * n_stars) - 0.5
    distance = (ys / ny - 0.3 - 0.4 * xs / nx) / 0.2
    keep = rng.random(3 * n_stars) < (1 + 2 * np.exp(-0.5 * distance ** 2)) / 3
    xs, ys = xs[keep], ys[keep]
    peaks = _star_peaks(rng, xs.size, 0.3 * noise, 300 * noise)
    stars = _render_stars(shape, xs, ys, peaks, fwhm=3.0, floor=_STAR_FLOOR * noise)
    return _scene(milky_way_scene, rng, background,
                  stars, read_noise=5.0, gain=1.0)


def vignetting_amp_glow_scene(size=(1024, 1536), *, seed=0):
    """
    (i) Vignetting plus amplifier glow in a corner.

    Background = 30-count sky with a gradient of 6, darkened by a vignetting
    of 35 % in the corners, plus an amplifier glow of 300 counts decaying
    exponentially (scale 8 % of the width) from the lower-right corner: all
    of it instrument and sky, so background. Objects = 500 stars per million
    pixels. Read-noise dominated (gain 1, read noise 10).
    """
    shape, rng, (y, x, v, u) = _start(size, seed)
    ny, nx = shape
    vignetting = 1 - 0.35 * ((u - 0.5) ** 2 + (v - 0.5) ** 2) / 0.5
    amp_glow = 300.0 * np.exp(-np.hypot(x - (nx - 1), y) / (0.08 * nx))
    background = (30.0 + 6.0 * u) * vignetting + amp_glow
    stars = _star_field(rng, shape, 5e-4, math.sqrt(100 + 30))
    return _scene(vignetting_amp_glow_scene,
                  rng, background, stars, read_noise=10.0, gain=1.0)


def sinc_blemish_scene(size=1000, *, seed=0):
    """
    (j) The STScI notebook's sky: a gradient with sinc blemishes and Gaussian sources.

    `astrobgopt.validation.make_sinc_blemish_scene`: background = linear
    gradient plus 8 sinc ripples; objects = 1250 Gaussian sources per
    million pixels. Constant noise 0.1.
    """
    shape = check_shape(size)
    n_sources = int(round(1250 * shape[0] * shape[1] / 1e6))
    n_blemishes = max(1, int(round(8 * shape[0] * shape[1] / 1e6)))
    made = make_sinc_blemish_scene(shape, n_blemishes=n_blemishes, n_sources=n_sources,
                                   seed=seed)
    noise = np.full(shape, 0.1)
    return _known_scene(sinc_blemish_scene, made.scene, made.noiseless, noise,
                        made.source_image)


def rgb_gradient_scene(size=(800, 1200), *, seed=0):
    """
    (k) A colour (RGB) frame with a different gradient in each channel.

    Background = skies of 400, 300 and 200 counts in R, G and B with, in R,
    a left-to-right ramp of 150; in G, a bottom-to-top ramp of 100; in B, a
    diagonal ramp of 40 plus a bowl of 60 (light pollution is redder than
    the sky); objects = 500 stars per million pixels with random colours.
    Sky dominated (gain 1, read noise 5). Shape ``(ny, nx, 3)``.
    """
    shape, rng, (y, x, v, u) = _start(size, seed)
    ny, nx = shape
    bowl = ((u - 0.5) ** 2 + (v - 0.5) ** 2) / 0.5
    background = np.stack([400.0 + 150.0 * u, 300.0 + 100.0 * v,
                           200.0 + 40.0 * (u + v) / 2 + 60.0 * bowl], axis=-1)
    noise = math.sqrt(25 + 300)
    n_stars = int(round(5e-4 * ny * nx))
    xs, ys = nx * rng.random(n_stars) - 0.5, ny * rng.random(n_stars) - 0.5
    peaks = _star_peaks(rng, n_stars, 3 * noise, 500 * noise)
    colour = rng.uniform(-0.4, 0.4, n_stars)
    stars = np.stack([_render_stars(shape, xs, ys, peaks * (1 + factor * colour), fwhm=3.5,
                                    floor=_STAR_FLOOR * noise)
                      for factor in (1.0, 0.0, -1.0)], axis=-1)
    return _scene(rgb_gradient_scene, rng,
                  background, stars, read_noise=5.0, gain=1.0)


def small_256_scene(size=256, *, seed=0):
    """
    (l) A 256x256 frame: a gradient and a few hundred stars.

    Background = 100-count sky with a linear gradient of 40 counts and a bowl
    of 20; objects = 3000 stars per million pixels. Gain 1, read noise 8.
    """
    shape, rng, (y, x, v, u) = _start(size, seed)
    background = 100.0 + 40.0 * (0.8 * u + 0.2 * v) + 20.0 * ((u - 0.6) ** 2 + (v - 0.4) ** 2)
    stars = _star_field(rng, shape, 3e-3, math.sqrt(64 + 100))
    return _scene(small_256_scene, rng, background,
                  stars, read_noise=8.0, gain=1.0)


#: Every simulated scene by name, in the order of the families (a) to (l).
SCENES = {
    'light_pollution': light_pollution_scene,
    'strong_light_pollution': strong_light_pollution_scene,
    'small_glow': small_glow_scene,
    'small_flat': small_flat_scene,
    'globular_cluster': globular_cluster_scene,
    'galaxy': galaxy_scene,
    'edge_nebula': edge_nebula_scene,
    'saturated_star': saturated_star_scene,
    'satellite_trail': satellite_trail_scene,
    'milky_way': milky_way_scene,
    'vignetting_amp_glow': vignetting_amp_glow_scene,
    'sinc_blemish': sinc_blemish_scene,
    'rgb_gradient': rgb_gradient_scene,
    'small_256': small_256_scene,
}


def make_scene(name, *, size=None, seed=0):
    """
    Make a scene of the suite by name.

    Parameters
    ----------
    name : str
        A key of ``SCENES``.
    size : int or tuple of int, optional
        Image shape ``(ny, nx)`` (an int makes a square); None uses the
        scene's own size, the one users meet it at.
    seed : int, optional
        Random seed; the same name, size and seed give the same scene.

    Returns
    -------
    scene : `Scene`

    Raises
    ------
    ValueError
        If ``name`` is not a scene of the suite.
    """
    if name not in SCENES:
        raise ValueError(f'unknown scene {name!r}; choose one of {", ".join(SCENES)}')
    function = SCENES[name]
    return function(seed=seed) if size is None else function(size, seed=seed)


def load_m13_scene():
    """
    A real crowded globular cluster (M13, 300x300) from astropy's test data.

    Its background is unknown, so ``background``, ``object_image`` and
    ``objects`` are None; ``noise`` is a constant robust estimate of the
    pixel noise (`astrobgopt.validation.estimate_pixel_noise`). Use it for
    the equivariance metric, which needs no truth.

    Returns
    -------
    scene : `Scene`

    Raises
    ------
    FileNotFoundError
        If this astropy installation lacks its test data.
    """
    import astropy
    from astropy.io import fits

    from .metrics import estimate_pixel_noise

    found = sorted(pathlib.Path(astropy.__file__).parent.rglob('m13.fits'))
    if not found:
        raise FileNotFoundError('m13.fits is not in this astropy installation (its test data '
                                'may have been left out); install astropy with its tests')
    with fits.open(found[0]) as hdul:
        image = next(hdu.data for hdu in hdul if hdu.data is not None)
        data = np.array(image, dtype=np.float64)  # native byte order, C-contiguous
    noise = np.full(data.shape, estimate_pixel_noise(data))
    return Scene(name='m13', description='M13 from astropy test data: a real crowded globular '
                 'cluster (background unknown)', data=data, background=None, noise=noise)
