"""
The spline as a photutils `~photutils.background.Background2D` interpolator,
and a path that needs no interpolator keyword (photutils 4.0 removes it).
"""

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from astropy.units import Quantity

from . import _isolation
from ._choices import tail_size
from ._docs import insert_fit_parameter_docs
from .config import FitConfig, make_repr

if TYPE_CHECKING:
    from .optimize import SplineModel

__all__ = ['SplineOptInterpolator', 'SplineMeshBackground', 'spline_background']

# With n_points=None the interpolator uses about one control point for this
# many mesh boxes, between 4 and 256 points.
_BOXES_PER_POINT = 16
_MAX_AUTO_POINTS = 256
# Fits remembered per interpolator (by mesh content): Background2D's
# background and RMS meshes, with room to spare.
_CACHED_FITS = 4


def _box_centres(n_boxes, box):
    """Pixel coordinates of the mesh box centres along one axis."""
    return np.arange(n_boxes) * box + (box - 1) / 2.0


def _image_shape(shape):
    """``shape`` as an (ny, nx) tuple of positive ints, or a clear error."""
    try:
        shape = tuple(shape)
    except TypeError:
        raise ValueError(f'shape must be the image shape, a (ny, nx) tuple; got {shape!r}') \
            from None
    if (len(shape) != 2 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                                   for n in shape) or min(shape) < 1):
        raise ValueError(f'shape must be the 2-D image shape, a (ny, nx) tuple of positive '
                         f'ints; got {shape!r}')
    return int(shape[0]), int(shape[1])


def _box_shape(box_size):
    """``box_size`` (int or pair) as (by, bx) positive ints, or a clear error."""
    box = np.atleast_1d(box_size)
    if box.ndim != 1 or len(box) not in (1, 2) or box.dtype.kind not in 'iu':
        raise ValueError(f'box_size must be an int or an (ny, nx) pair of ints; got {box_size!r}')
    if box.min() <= 0:
        raise ValueError(f'box_size must be positive; got {box_size!r}')
    box_y, box_x = np.broadcast_to(box, 2)
    return int(box_y), int(box_x)


@insert_fit_parameter_docs('order', 'initializer', 'loss', 'smoothing', 'epochs',
                           'learning_rate', 'patience', 'validation_fraction', 'seed')
class SplineOptInterpolator:
    """
    Interpolate a `~photutils.background.Background2D` mesh with a spline
    fitted by gradient descent.

    Use it as ``Background2D(data, box_size, interpolator=SplineOptInterpolator())``.
    The low-resolution mesh (one robust statistic per box) becomes the
    samples of the fit: control points of a polyharmonic spline are placed
    on a grid, initialized by robust least squares and refined with Adam
    (see `astrobgopt.optimize`). Boxes whose value is an outlier (a bright
    source the box statistic did not reject) are left out.

    photutils 3.0 deprecates the ``interpolator`` keyword and plans to
    remove it in 4.0; `spline_background` gives the same model from the
    public attributes of a ``Background2D`` and keeps working then.

    Parameters
    ----------
    n_points : int or None, optional
        Number of control points; None uses one per 16 mesh boxes (4 to
        256).
    FIT_PARAMETERS
    progress : bool or None, optional
        Progress bar (off by default: photutils calls the interpolator for
        the background and again for the RMS).

    Notes
    -----
    Box centres are at ``index * box_size + (box_size - 1) / 2`` as in
    photutils. photutils 2 recomputes ``background`` and ``background_rms``
    on every access; the interpolator remembers its last few fits by the
    content of the mesh (and the shape, box size and dtype asked for), so
    reading them again costs no new fit. It forgets them when pickled.
    """

    def __init__(self, *, n_points=None, order=FitConfig.order,
                 initializer=FitConfig.initializer, loss=FitConfig.loss,
                 smoothing=FitConfig.smoothing, epochs=FitConfig.epochs,
                 learning_rate=FitConfig.learning_rate, patience=FitConfig.patience,
                 validation_fraction=FitConfig.validation_fraction, seed=FitConfig.seed,
                 progress=False):
        self.n_points = n_points
        self.progress = progress
        # Validate every option now, with a placeholder point count for 'auto'.
        self._config = FitConfig(n_points=4 if n_points is None else n_points, order=order,
                                 initializer=initializer, loss=loss, smoothing=smoothing,
                                 epochs=epochs, learning_rate=learning_rate, patience=patience,
                                 validation_fraction=validation_fraction, seed=seed)
        self._forget_fits()

    def __repr__(self):
        return make_repr(self, fallback=self._config)

    def _forget_fits(self):
        # Fits by mesh, most recent last: key -> (image, model).
        self._fits = OrderedDict()
        self._fits_lock = threading.Lock()

    def __getstate__(self):
        state = dict(self.__dict__)
        del state['_fits'], state['_fits_lock']
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._forget_fits()

    def __call__(self, mesh, **kwargs):
        """
        Resize a low-resolution mesh to the full image (photutils' convention).

        Parameters
        ----------
        mesh : 2-D `~numpy.ndarray` or `~astropy.units.Quantity`
            The low-resolution background (or RMS) mesh.
        **kwargs
            Passed by ``Background2D``: ``shape`` (full image shape),
            ``dtype`` and ``box_size`` are used; other keys that photutils
            versions pass (``edge_method``, ``n_threads``) are accepted
            and ignored.

        Returns
        -------
        result : 2-D `~numpy.ndarray`
            A new, writable array of ``shape`` and ``dtype`` (units are
            stripped; ``Background2D`` re-applies them).
        """
        for key in ('shape', 'box_size'):
            if key not in kwargs:
                raise TypeError(f'{type(self).__name__} needs the {key!r} keyword that '
                                'photutils Background2D passes to its interpolator')
        image, _ = self.interpolate(mesh, shape=kwargs['shape'], box_size=kwargs['box_size'],
                                    dtype=kwargs.get('dtype'))
        return image

    def interpolate(self, mesh, *, shape, box_size, dtype=None, usable_fraction=None):
        """
        Fit the spline to a mesh and evaluate it on the full image.

        Parameters
        ----------
        mesh : 2-D array-like or `~astropy.units.Quantity`
            Mesh values, one per box.
        shape : tuple of int
            Full image shape (height, width); the mesh must tile it with
            boxes of ``box_size`` (the last box may be partial).
        box_size : int or tuple of int
            Box size (ny, nx) in pixels (positive).
        dtype : dtype, optional
            Output dtype (float32 when None or not a float type).
        usable_fraction : 2-D array-like, optional
            Usable fraction of each box in [0, 1] (the fraction of its
            pixels used); 0 excludes a box. Non-finite mesh values are
            excluded too.

        Returns
        -------
        image : `~numpy.ndarray`
            The background at full resolution (no units).
        model : `~astrobgopt.optimize.SplineModel` or None
            The fitted spline (None for a constant mesh).
        """
        mesh = np.asanyarray(mesh)
        if isinstance(mesh, Quantity):
            mesh = mesh.value
        mesh = np.asarray(mesh, dtype=np.float64)
        if mesh.ndim != 2:
            raise ValueError(f'the mesh must be 2-D; got shape {mesh.shape}')
        dtype = np.dtype(dtype) if dtype is not None else np.dtype(np.float32)
        if dtype.kind != 'f':
            dtype = np.dtype(np.float32)
        shape = _image_shape(shape)
        box_y, box_x = _box_shape(box_size)
        # photutils pads a partial last box (or, with edge_method='crop' before
        # photutils 2, drops it): either way the mesh tiles the image.
        for n_boxes, box, length, axis in ((mesh.shape[0], box_y, shape[0], 'rows'),
                                           (mesh.shape[1], box_x, shape[1], 'columns')):
            if n_boxes not in (length // box, -(-length // box)):
                raise ValueError(f'a mesh of {mesh.shape} boxes of {(box_y, box_x)} pixels does '
                                 f'not match an image of shape {shape} (its {axis}); pass the '
                                 'shape of the image the mesh was computed on')

        box_fraction = (np.ones(mesh.shape) if usable_fraction is None
                        else np.asarray(usable_fraction, float))
        if box_fraction.shape != mesh.shape:
            raise ValueError(f'usable_fraction must have the mesh shape {mesh.shape}; '
                             f'got {box_fraction.shape}')
        digest = hashlib.blake2b(mesh.tobytes())
        digest.update(box_fraction.tobytes())
        # The options too: they may have been changed since.
        key = (digest.hexdigest(), mesh.shape, shape, (box_y, box_x), dtype.str, repr(self))
        with self._fits_lock:
            if key in self._fits:
                self._fits.move_to_end(key)
                image, model = self._fits[key]
                return image.copy(), model
        image, model = self._fit_mesh(mesh, box_fraction, shape, (box_y, box_x), dtype)
        with self._fits_lock:
            self._fits[key] = image, model
            while len(self._fits) > _CACHED_FITS:
                self._fits.popitem(last=False)
        return image.copy(), model

    def _fit_mesh(self, mesh, box_fraction, shape, box, dtype):
        """`interpolate`'s fit, for checked arguments."""
        box_y, box_x = box
        usable = np.isfinite(mesh) & (box_fraction > 0)
        if not usable.any():
            raise ValueError('no mesh box has a finite value and a usable fraction above 0')
        values = mesh[usable]
        if np.ptp(values) == 0:
            return np.full(shape, values[0], dtype=dtype), None

        n_points = self.n_points
        if n_points is None:
            n_points = int(np.clip(usable.sum() // _BOXES_PER_POINT, 4, _MAX_AUTO_POINTS))
        n_needed = n_points + tail_size(self._config.order)
        if usable.sum() < n_needed:
            raise ValueError(
                f'the mesh has {usable.sum()} usable boxes, too few for {n_points} control '
                f'points of order {self._config.order} (at least {n_needed} are needed): use '
                'fewer control points (n_points) or a smaller box_size')
        _isolation.import_core()
        from .optimize import fit_spline

        yy, xx = np.meshgrid(_box_centres(mesh.shape[0], box_y),
                             _box_centres(mesh.shape[1], box_x), indexing='ij')
        points = np.stack([xx[usable], yy[usable]], axis=1)
        config = FitConfig(**{**self._config.to_dict(), 'n_points': n_points})
        model = _isolation.call(fit_spline, points, values, np.clip(box_fraction[usable], 0, 1),
                                shape, config, progress=self.progress,
                                progress_desc='mesh spline fit')
        image = model.evaluate_image(shape, dtype=dtype)[..., 0]
        return image.astype(dtype, copy=False), model


@dataclass
class SplineMeshBackground:
    """
    Spline background and RMS images from a ``Background2D`` mesh.

    Attributes
    ----------
    background, background_rms : `~numpy.ndarray` or `~astropy.units.Quantity`
        Full-resolution images (with the mesh's unit, if any).
    background_model, background_rms_model : `~astrobgopt.optimize.SplineModel` or None
        The fitted splines (None where a mesh was constant).
    """

    background: np.ndarray
    background_rms: np.ndarray
    background_model: 'SplineModel | None'
    background_rms_model: 'SplineModel | None'


def spline_background(bkg, *, shape=None, interpolator=None):
    """
    Spline background from a `~photutils.background.Background2D`, using
    only its public attributes.

    This does what ``Background2D(..., interpolator=SplineOptInterpolator())``
    does, but needs no ``interpolator`` keyword (deprecated in photutils 3.0,
    to be removed in 4.0), and it weights each box by the fraction of its
    pixels that photutils used (``n_pixels_mesh``, ``npixels_mesh`` before
    photutils 3): boxes that photutils
    excluded get no weight instead of contributing their inverse-distance
    fill.

    Parameters
    ----------
    bkg : `~photutils.background.Background2D`
        A Background2D built with its default interpolator.
    shape : tuple of int, optional
        Shape of the image ``bkg`` was computed on; by default that known
        to ``bkg``. A given shape must match it.
    interpolator : `SplineOptInterpolator`, optional
        Fit options (default: ``SplineOptInterpolator()``).

    Returns
    -------
    result : `~astrobgopt.interpolator.SplineMeshBackground`

    Examples
    --------
    >>> from photutils.background import Background2D  # doctest: +SKIP
    >>> bkg = Background2D(data, 10, mask=mask)  # doctest: +SKIP
    >>> spline = spline_background(bkg)  # doctest: +SKIP
    >>> residual = data - spline.background  # doctest: +SKIP
    """
    interpolator = SplineOptInterpolator() if interpolator is None else interpolator
    own_shape = _background2d_shape(bkg)
    if shape is not None and _image_shape(shape) != own_shape:
        raise ValueError(f'shape {tuple(shape)} does not match the shape {own_shape} of the '
                         'image the Background2D was computed on; leave shape out')
    box_y, box_x = _box_shape(bkg.box_size)
    # photutils 3 renamed npixels_mesh (deprecated, gone in 4.0) to n_pixels_mesh.
    n_pixels = bkg.n_pixels_mesh if hasattr(bkg, 'n_pixels_mesh') else bkg.npixels_mesh
    usable_fraction = np.clip(np.asarray(n_pixels, dtype=float) / (box_y * box_x), 0, 1)
    images, models = [], []
    for mesh in (bkg.background_mesh, bkg.background_rms_mesh):
        image, model = interpolator.interpolate(mesh, shape=own_shape, box_size=(box_y, box_x),
                                                dtype=np.asarray(mesh).dtype,
                                                usable_fraction=usable_fraction)
        images.append(image * mesh.unit if isinstance(mesh, Quantity) else image)
        models.append(model)
    return SplineMeshBackground(images[0], images[1], models[0], models[1])


def _background2d_shape(bkg):
    """
    Shape of the image a Background2D was computed on: recorded by
    photutils 2 and 3 (``_data_shape``), else that of its ``background``
    (which evaluates photutils' own interpolator once).
    """
    shape = getattr(bkg, '_data_shape', None)
    return _image_shape(np.shape(bkg.background) if shape is None else shape)
