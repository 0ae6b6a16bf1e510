"""The complete simulated scene of the STScI notebook: blemished sky plus sources."""

from typing import NamedTuple

import numpy as np
from astropy.table import Table

from .sky import make_sinc_blemish_sky
from .sources import make_source_image, make_source_table

__all__ = ['SincBlemishScene', 'make_sinc_blemish_scene']


class SincBlemishScene(NamedTuple):
    """
    A simulated scene and everything known about it.

    Attributes
    ----------
    scene : `~numpy.ndarray`
        ``sky + source_image``: what a background estimator is given.
    sky : `~numpy.ndarray`
        Noisy sky without sources.
    noiseless : `~numpy.ndarray`
        The true background (gradient plus blemishes).
    source_image : `~numpy.ndarray`
        The sources alone.
    blemishes : `~astropy.table.Table`
        See `make_sinc_blemish_sky`.
    sources : `~astropy.table.Table`
        See `make_source_table`.
    """

    scene: np.ndarray
    sky: np.ndarray
    noiseless: np.ndarray
    source_image: np.ndarray
    blemishes: Table
    sources: Table

    @property
    def noise_residual(self):
        """``sky - noiseless``: the residual of a perfect background estimate."""
        return self.sky - self.noiseless


def make_sinc_blemish_scene(shape=(1000, 1000), *, n_blemishes=8, n_sources=1250,
                            gradient=(1.0, 0.25), noise=0.1, seed=None):
    """
    Make the STScI notebook's test scene: a blemished sky with Gaussian sources.

    Parameters
    ----------
    shape : int or tuple of int, optional
        Image shape ``(ny, nx)``. The defaults reproduce the notebook's
        scene at ``shrink_factor = 2``: 1000x1000 pixels, 8 blemishes,
        1250 sources, noise 0.1.
    n_blemishes : int, optional
        Number of sinc blemishes, see `make_sinc_blemish_sky`.
    n_sources : int, optional
        Number of sources, see `make_source_table`.
    gradient : tuple of float, optional
        ``(g_row, g_col)``, see `make_sinc_blemish_sky`.
    noise : float, optional
        Pixel noise standard deviation.
    seed : int, `~numpy.random.Generator`, `~numpy.random.SeedSequence` or None, optional
        Seed for `numpy.random.default_rng`; the sky and the catalog are drawn
        one after the other from the same generator.

    Returns
    -------
    result : `SincBlemishScene`
        The scene, its parts and its tables.
    """
    rng = np.random.default_rng(seed)
    sky = make_sinc_blemish_sky(shape, n_blemishes=n_blemishes, gradient=gradient,
                                noise=noise, seed=rng)
    sources = make_source_table(sky.sky.shape, n_sources, seed=rng)
    source_image = make_source_image(sky.sky.shape, sources)
    return SincBlemishScene(scene=sky.sky + source_image, sky=sky.sky,
                            noiseless=sky.noiseless, source_image=source_image,
                            blemishes=sky.blemishes, sources=sources)
