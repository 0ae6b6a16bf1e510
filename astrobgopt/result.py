"""
`SplineOptBackgroundResult`: the fitted background of one image, with the
attributes of `photutils.background.Background2D`.
"""

import math
import time
import warnings

import numpy as np
from astropy.table import QTable
from astropy.utils import lazyproperty

from . import _isolation
from .chunked import band_height
from .downsample import lower_width, pixel_blocks

__all__ = ['SplineOptBackgroundResult', 'mesh_resampler', 'rms_box_size', 'rms_box_statistics',
           'rms_mesh', 'sky_residual']

# The background_rms map: boxes of at least _RMS_MIN_BOX pixels (a star fills
# a small part of one), boxes with less than _RMS_MIN_USABLE of their pixels
# usable left out, and the box map median-filtered over _RMS_FILTER_SIZE
# boxes: photutils Background2D's recipe.
_RMS_MIN_BOX = 32
_RMS_MIN_USABLE = 0.5
_RMS_FILTER_SIZE = 3
# Boxes above _RMS_OUTLIER_RATIO times the median of the _RMS_OUTLIER_SIZE
# boxes around them are replaced by that median.
_RMS_OUTLIER_SIZE = 7
_RMS_OUTLIER_RATIO = 1.3
# In a crowded field, the spread is also measured without the pixels of
# stars: those where the mean over _STAR_FILTER_SIZE squared pixels exceeds
# _STAR_THRESHOLD times its noise (the box's spread over _STAR_FILTER_SIZE),
# and their neighbours (one dilation).
_STAR_FILTER_SIZE = 3
_STAR_THRESHOLD = 3.0


def rms_box_size(factor):
    """
    Box size of the `~astrobgopt.SplineOptBackgroundResult.background_rms` map for
    fitting blocks of ``factor`` pixels.
    """
    return max(factor, _RMS_MIN_BOX)


def rms_box_statistics(residual, box, crowding_weight):
    """
    Per-box statistics of the
    `~astrobgopt.SplineOptBackgroundResult.background_rms` map for residual rows
    (rows, W, k) that hold a whole number of ``box``-row boxes (or the
    image's last rows), NaN where unusable: the spread of the residual
    below its median (median minus 15.87th percentile), the spread of the
    neighbouring-pixel differences below their median
    (`~astrobgopt.downsample.lower_width`), and whether enough of the box is
    usable. `rms_mesh` joins them.

    The residual's spread moves towards the same without the stars' pixels
    (`_star_pixels`) by ``crowding_weight`` (per channel, in [0, 1]: the
    frame's `~astrobgopt.downsample.BlockSamples.crowding_weight`). Where
    faint stars fill the frame their light widens the whole distribution,
    even below the median, but a 3 x 3 mean finds most of them: on the
    scene suite's ``milky_way`` the map reads 0.98 times the sky noise so
    (1.21 at most), 1.56 (2.45) with the stars' pixels. Where the weight is
    0 the search, which doubles the map's time, is not made.
    """
    # Differences of neighbouring pixels, over sqrt(2), cancel whatever is
    # smooth in the residual (a star's halo, a nebula the fit left) but
    # underestimate correlated noise; the spread of the residual itself is
    # right for any noise but grows on structure. The map is the smaller of
    # the spread and the difference noise scaled by the median ratio of the
    # two (1 for white noise). A 3-sigma clipped standard deviation
    # (astropy's sigma_clip) made the map twice as slow (0.15 s against
    # 0.08 s at 6 megapixels) for no better a map over the scene suite.
    differences = np.full_like(residual, np.nan)
    differences[:, 1:] = np.diff(residual, axis=1) / math.sqrt(2)
    boxes = pixel_blocks(residual, box, np.nan)
    scatter = lower_width(boxes)[1]
    weight = np.asarray(crowding_weight)
    if np.any(weight > 0):
        starless = np.where(_star_pixels(residual, scatter, box), np.nan, residual)
        scatter = scatter - weight * (scatter - lower_width(pixel_blocks(starless, box, np.nan))[1])
    return (scatter, lower_width(pixel_blocks(differences, box, np.nan))[1],
            np.mean(np.isfinite(boxes), axis=-1) >= _RMS_MIN_USABLE)


def _star_pixels(residual, spread, box):
    """
    The pixels of stars in residual rows (rows, W, k): where the mean over
    `_STAR_FILTER_SIZE` squared pixels rises `_STAR_THRESHOLD` times its
    noise above 0 (the noise from the box's ``spread`` (ny, nx, k)), and
    their neighbours. The mean finds stars too faint to stand out pixel by
    pixel; only light is looked for, as stars only add it.
    """
    from scipy.ndimage import binary_dilation, generate_binary_structure, uniform_filter

    rows, width = residual.shape[:2]
    threshold = np.repeat(np.repeat(spread, box, axis=0), box, axis=1)[:rows, :width]
    threshold *= _STAR_THRESHOLD / _STAR_FILTER_SIZE
    mean = uniform_filter(np.nan_to_num(residual), size=(_STAR_FILTER_SIZE,) * 2 + (1,),
                          mode='nearest')
    with np.errstate(invalid='ignore'):  # boxes without a spread: NaN, no star
        stars = mean > threshold
    return binary_dilation(stars, structure=generate_binary_structure(2, 1)[..., None])


def sky_residual(image, background, kept):
    """
    ``image - background`` (rows, W, k), NaN where ``kept`` (rows, W) is
    False: the masked pixels and the extended objects the fit left out, so
    that the `rms_box_statistics` measure the sky's noise.
    """
    residual = image - background
    np.copyto(residual, np.nan, where=~kept[..., None])
    return residual


def rms_mesh(band_statistics):
    """
    The `~astrobgopt.SplineOptBackgroundResult.background_rms` box map (ny, nx, k)
    from the `rms_box_statistics` of consecutive bands of rows: cleaned and
    median-filtered, NaN in channels without a usable box.
    """
    from scipy.ndimage import median_filter

    scatter, difference_noise, usable = (np.concatenate(part) for part in zip(*band_statistics))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)  # channels without a usable box
        correlation = np.nanmedian(scatter / difference_noise, axis=(0, 1))
    rms = np.fmin(scatter, correlation * difference_noise)
    rms[~usable] = np.nan
    for channel in range(rms.shape[2]):
        plane = rms[..., channel]
        if np.all(np.isnan(plane)):
            continue
        plane[np.isnan(plane)] = np.nanmedian(plane)
        # Boxes a bright object still inflates (a star's core and halo cover
        # several) stand well above their wider neighbourhood and take its
        # median, as SExtractor's BACK_FILTERTHRESH does; the noise itself
        # varies far less over that distance.
        around = median_filter(plane, size=_RMS_OUTLIER_SIZE, mode='nearest')
        plane = np.where(plane > _RMS_OUTLIER_RATIO * around, around, plane)
        # Then Background2D's filter_size=3 smoothing.
        rms[..., channel] = median_filter(plane, size=_RMS_FILTER_SIZE, mode='nearest')
    return rms


def mesh_resampler(mesh, shape, factor):
    """
    The `~astrobgopt.spline.SeparableResampler` of a block-grid map
    (ny, nx, k) to an image of ``shape``: blocks without a value filled by
    the median, then bilinear interpolation between the block centres
    (constant beyond the outer ones).
    """
    # spline.py holds NumPy and TensorFlow code side by side; imported here so
    # that importing the estimator does not start TensorFlow.
    from .spline import SeparableResampler, linear_interpolation_matrix

    mesh = mesh.copy()
    for channel in range(mesh.shape[2]):
        plane = mesh[..., channel]
        plane[~np.isfinite(plane)] = np.nanmedian(plane)
    centre = (factor - 1) / 2
    return SeparableResampler(mesh, linear_interpolation_matrix(shape[0], mesh.shape[0], centre,
                                                                factor),
                              linear_interpolation_matrix(shape[1], mesh.shape[1], centre,
                                                          factor))


class SplineOptBackgroundResult:
    """
    The fitted background of one image, with the attributes of
    `photutils.background.Background2D`.

    Full-resolution products are computed on first access and cached.

    Made by `~astrobgopt.SplineOptBackground` (its `~astrobgopt.SplineOptBackground.result`
    stage), not by hand.

    Attributes
    ----------
    model : `astrobgopt.optimize.SplineModel`
        The fitted spline (in stretched units when a stretch was used).
    stretch : `astrobgopt.stretch.Stretch` or None
        The delinearizing stretch of the fit.
    downscale_factor : int
        Block size used for the fit.
    timings : dict
        Wall-clock seconds of each stage ('downscale', 'extended_mask',
        'fit', then 'evaluate' and 'rms' once computed).
    """

    def __init__(self, *, model, prepared, samples, fill_value, estimator, timings):
        self.model = model
        self.stretch = prepared.stretch
        self.downscale_factor = samples.blocks.factor
        self.timings = timings
        self._data = prepared.image
        self._usable = prepared.usable_fraction > 0
        self._samples = samples.blocks
        self._fitted_pixels = samples.fitted_pixels
        self._unit = prepared.unit
        self._dtype = prepared.dtype
        self._coverage = prepared.coverage
        self._fill_value = fill_value
        self._channel_axis = prepared.channel_axis
        self._estimator = estimator

    def _to_linear(self, values):
        return self.stretch.inverse(values) if self.stretch is not None else values

    def _present(self, image):
        """Shape like the input (channels back in place), fill, add the unit."""
        if self._coverage is not None:
            image[self._coverage] = self._fill_value
        image = image[..., 0] if self._channel_axis is None else np.moveaxis(
            image, -1, self._channel_axis)
        return image * self._unit if self._unit is not None else image

    def _background_rows(self, start, stop):
        """Background rows ``start:stop`` as (rows, W, k) in the output dtype."""
        image = self.model.evaluate_image(self._data.shape[:2], dtype=self._dtype,
                                          rows=slice(start, stop))
        if self.stretch is not None:
            image = self._to_linear(image)
        return image.astype(self._dtype, copy=False)

    @lazyproperty
    def background(self):
        """The background model at full resolution (unit of the input)."""
        start = time.perf_counter()
        image = self._background_rows(0, self._data.shape[0])
        self.timings['evaluate'] = time.perf_counter() - start
        return self._present(image)

    @lazyproperty
    def rms_box_size(self):
        """
        Box size (pixels) of the `background_rms` map: the fitting block, but
        at least 32 pixels, so that a star fills only a small part of a box.
        """
        return rms_box_size(self.downscale_factor)

    def _residual_rows(self, top, stop):
        """
        Data minus background, rows ``top:stop``, NaN where unusable and on
        the extended objects the fit left out (the map is the sky's noise).
        """
        return sky_residual(self._data[top:stop], self._background_rows(top, stop),
                            self._usable[top:stop] & self._fitted_pixels(top, stop))

    @lazyproperty
    def _rms_mesh(self):
        """
        The `background_rms` box map (ny, nx, k), see `rms_mesh`.

        The residual is formed a band of box rows at a time (the model
        evaluated again per band costs less than a full-size copy).
        """
        start = time.perf_counter()
        height, width = self._data.shape[:2]
        box = self.rms_box_size
        band = band_height(box, width)
        rms = rms_mesh([rms_box_statistics(self._residual_rows(top, min(top + band, height)), box,
                                           self._samples.crowding_weight)
                        for top in range(0, height, band)])
        self.timings['rms'] = time.perf_counter() - start
        return rms

    def _mesh_to_image(self, mesh, factor):
        """
        A map on a grid of ``factor``-pixel boxes (ny, nx, k) at full
        resolution (`mesh_resampler`: boxes without a value filled by the
        median, then bilinear interpolation between the box centres), shaped
        like the input.
        """
        resampler = mesh_resampler(mesh, self._data.shape[:2], factor)
        return self._present(resampler.rows(dtype=self._dtype))

    @lazyproperty
    def background_rms(self):
        """
        RMS of the residual (data - background) at full resolution.

        Much as `photutils.background.Background2D` makes it, in boxes of
        `rms_box_size` pixels: in each box, the smaller of the residual's
        spread below its median (median minus 15.87th percentile: faint
        unresolved stars only add light) and the same spread of the
        neighbouring-pixel differences (which cancel a smooth halo), the
        latter scaled by the median ratio of the two over the image (1 for
        white noise, more for correlated noise). In a crowded field (see
        `~astrobgopt.downsample.BlockSamples.crowding_weight`) the residual's
        spread moves to the same without the pixels of the faint stars
        that a 3 x 3 mean finds (`~astrobgopt.result.rms_box_statistics`).
        The box map is cleaned of boxes an object still inflates (above 1.3 times the median of the
        7 x 7 boxes around), median-filtered over 3 x 3 boxes (boxes with
        fewer than half their pixels usable take the median) and
        interpolated bilinearly to every pixel. The boxes are coarser than
        the fitting blocks because a scatter needs many pixels and a star
        must not fill a box. Pixels of the extended objects the fit left
        out (``mask_extended``) are left out here too: their light adds
        photon noise and structure that are not the sky's, so boxes on them
        take the map's median, as masked boxes do in ``Background2D``.
        """
        return self._mesh_to_image(self._rms_mesh, self.rms_box_size)

    @lazyproperty
    def background_error(self):
        """
        Standard error of the background model at full resolution.

        The noise of the blocks propagated through the fit of the control
        values (at their final positions), evaluated at the block centres and
        interpolated bilinearly; with a stretch, mapped back to linear units.
        This is the uncertainty of the model itself, not the pixel scatter
        (`background_rms`): `astrobgopt.subtract_background` adds it in
        quadrature to the data's uncertainty.
        """
        yy, xx = np.meshgrid(self._samples.y, self._samples.x, indexing='ij')
        points = np.stack([xx.ravel(), yy.ravel()], axis=1)
        error = self.model.standard_error(points)
        if self.stretch is not None:
            value = self.model.evaluate(points)
            error = 0.5 * np.abs(self._to_linear(value + error) - self._to_linear(value - error))
        return self._mesh_to_image(error.reshape(yy.shape + (-1,)), self.downscale_factor)

    @lazyproperty
    def background_mesh(self):
        """The background model at the block centres (the low-resolution map)."""
        yy, xx = np.meshgrid(self._samples.y, self._samples.x, indexing='ij')
        values = self.model.evaluate(np.stack([xx.ravel(), yy.ravel()], axis=1))
        mesh = self._to_linear(values).reshape(yy.shape + (-1,)).astype(self._dtype)
        mesh = mesh[..., 0] if self._channel_axis is None else mesh
        return mesh * self._unit if self._unit is not None else mesh

    @lazyproperty
    def background_rms_mesh(self):
        """The robust RMS of the residual in each fitting block (the low-resolution
        RMS map; NaN where a block has no usable pixel)."""
        mesh = self._rms_mesh.astype(self._dtype)
        mesh = mesh[..., 0] if self._channel_axis is None else mesh
        return mesh * self._unit if self._unit is not None else mesh

    @lazyproperty
    def background_median(self):
        """Median of the low-resolution background map (per channel for colour)."""
        return np.median(self.background_mesh, axis=(0, 1))

    @lazyproperty
    def background_rms_median(self):
        """Median of the box RMS map (per channel for colour)."""
        rms = self._rms_mesh
        value = np.nanmedian(rms.reshape(-1, rms.shape[2]), axis=0).astype(self._dtype)
        value = value[0] if self._channel_axis is None else value
        return value * self._unit if self._unit is not None else value

    @property
    def control_points(self):
        """
        Fitted control points as a `~astropy.table.QTable` with columns
        ``x``, ``y`` (pixels) and ``value`` (data units; one column per
        channel for colour images).
        """
        values = self._to_linear(self.model.control_values)
        if self._unit is not None:
            values = values * self._unit
        table = QTable()
        table['x'] = self.model.control_points[:, 0]
        table['y'] = self.model.control_points[:, 1]
        table['value'] = values[:, 0] if self._channel_axis is None else values
        return table

    @property
    def initial_control_points(self):
        """(x, y) control-point positions before optimization, shape (n, 2)."""
        return self.model.initial_control_points

    @property
    def loss_history(self):
        """
        Loss per optimization step, shape (n_steps + 1, 2): columns are the
        training loss and the held-out (early-stopping) loss; the first row
        is the initialization.
        """
        return self.model.loss_history

    @property
    def meta(self):
        """
        Provenance: options, downscale factor, stretch, stop reason, device,
        timings.
        """
        from .optimize import compute_device

        return {'estimator': repr(self._estimator),
                'config': self._estimator.config.to_dict(),
                'downscale_factor': self.downscale_factor,
                'downscale_func': self._estimator.downscale_func,
                'stretch': repr(self.stretch),
                'n_control_points': len(self.model.control_points),
                'stop_reason': self.model.stop_reason,
                'n_steps': len(self.model.loss_history) - 1,
                'device': _isolation.call(compute_device),
                'timings': dict(self.timings)}

    def plot_meshes(self, *, ax=None, marker='+', markersize=None, color='blue', alpha=None,
                    outlines=False, show_initial=False, **kwargs):
        """
        Plot the control points and, optionally, the fitting blocks (over an
        image already shown on ``ax``).

        The keywords are those of
        `photutils.background.Background2D.plot_meshes`, with the same
        meaning; the markers show the spline's control points, the nodes of
        this model, where photutils marks its box centres.

        Parameters
        ----------
        ax : `matplotlib.axes.Axes`, optional
            Axes to draw on (default: the current axes).
        marker : str, optional
            Matplotlib marker of the control points.
        markersize : float, optional
            Marker size in points**2 (matplotlib's ``s``; default
            ``rcParams['lines.markersize'] ** 2``); 0 draws no markers.
        color : str, optional
            Color of the markers and outlines.
        alpha : float, optional
            Opacity of the markers and outlines.
        outlines : bool, optional
            Also draw the outlines of the blocks the spline was fitted to
            (the low-resolution mesh, ``downscale_factor`` pixels square).
        show_initial : bool, optional
            Also mark the initial positions and draw how each point moved.
        **kwargs
            Passed to the `matplotlib.patches.Patch` of the outlines (used
            only with ``outlines=True``), as photutils does.

        Returns
        -------
        ax : `matplotlib.axes.Axes`
        """
        import matplotlib.pyplot as plt

        if ax is None:
            ax = plt.gca()
        final = self.model.control_points
        if show_initial:
            initial = self.model.initial_control_points
            ax.scatter(initial[:, 0], initial[:, 1], marker='o', s=markersize,
                       facecolors='none', edgecolors=color, alpha=0.5 if alpha is None else alpha)
            for (x0, y0), (x1, y1) in zip(initial, final):
                ax.plot([x0, x1], [y0, y1], color=color, lw=0.8, alpha=alpha)
        ax.scatter(final[:, 0], final[:, 1], s=markersize, marker=marker, color=color,
                   alpha=alpha)
        if outlines:
            ax.add_patch(self._block_outlines(color=color, alpha=alpha, **kwargs))
        return ax

    def _block_outlines(self, **kwargs):
        """The edges of every fitting block as one patch (one path: fast to draw)."""
        from matplotlib.patches import PathPatch
        from matplotlib.path import Path

        height, width = self._data.shape[:2]
        factor = self.downscale_factor
        # Block edges in pixel coordinates (pixel centres at integers); the
        # last block of each axis ends at the image edge (it may be partial,
        # see `astrobgopt.downsample.pixel_blocks`).
        x_edges = np.append(np.arange(len(self._samples.x)) * factor, width) - 0.5
        y_edges = np.append(np.arange(len(self._samples.y)) * factor, height) - 0.5
        lines = [((x, y_edges[0]), (x, y_edges[-1])) for x in x_edges]
        lines += [((x_edges[0], y), (x_edges[-1], y)) for y in y_edges]
        vertices = np.array(lines, dtype=float).reshape(-1, 2)
        codes = np.tile([Path.MOVETO, Path.LINETO], len(lines))
        kwargs.setdefault('fill', False)
        return PathPatch(Path(vertices, codes), **kwargs)
