"""
`SplineOptBackgroundResult`: the fitted background of one image, with the
attributes of `photutils.background.Background2D`.
"""

import time

import numpy as np
from astropy.table import QTable
from astropy.utils import lazyproperty

from .chunked import band_height
from .downsample import block_reduce_masked
from .spline import SeparableResampler, linear_interpolation_matrix

__all__ = ['SplineOptBackgroundResult']

# astropy.stats.mad_std's factor: MAD to standard deviation for Gaussian noise.
_MAD_TO_STD = 1.482602218505602


def block_mad_std(values, usable, factor):
    """
    Robust (MAD) standard deviation of the usable pixels of each block of an
    (H, W, k) image, (ny, nx, k); NaN where a block has none.
    """
    median = block_reduce_masked(values, usable, factor).values
    height, width = values.shape[:2]
    centred = np.repeat(np.repeat(median, factor, axis=0), factor, axis=1)[:height, :width]
    np.subtract(values, centred, out=centred)
    return _MAD_TO_STD * block_reduce_masked(np.abs(centred, out=centred), usable,
                                             factor).values


def mesh_resampler(mesh, shape, factor):
    """
    The `~astrobgopt.spline.SeparableResampler` of a block-grid map
    (ny, nx, k) to an image of ``shape``: blocks without a value filled by
    the median, then bilinear interpolation between the block centres
    (constant beyond the outer ones).
    """
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

    Made by `SplineOptBackground` (its `~SplineOptBackground.result`
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
        self.downscale_factor = samples.factor
        self.timings = timings
        self._data = prepared.image
        self._usable = prepared.usable_fraction > 0
        self._samples = samples
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
        image = self.model.evaluate_image(self._data.shape[:2], dtype=np.float32,
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
    def _rms_mesh(self):
        """Robust RMS of the residual in each block, (ny, nx, k); NaN where unusable.

        The residual is formed a band of block rows at a time (the model
        evaluated again per band costs less than holding a full-size copy)."""
        start = time.perf_counter()
        height, width = self._data.shape[:2]
        factor = self.downscale_factor
        band = band_height(factor, width)
        rms = np.concatenate([
            block_mad_std(self._data[top:top + band] - self._background_rows(
                top, min(top + band, height)), self._usable[top:top + band], factor)
            for top in range(0, height, band)])
        self.timings['rms'] = time.perf_counter() - start
        return rms

    def _mesh_to_image(self, mesh):
        """
        A block-grid map (ny, nx, k) at full resolution (`mesh_resampler`),
        shaped like the input.
        """
        resampler = mesh_resampler(mesh, self._data.shape[:2], self.downscale_factor)
        return self._present(resampler.rows(dtype=self._dtype))

    @lazyproperty
    def background_rms(self):
        """
        RMS of the residual (data - background) at full resolution.

        The robust (MAD) scatter of the residual in each fitting block, with
        blocks that had no usable pixel filled by the median, interpolated
        bilinearly to every pixel.
        """
        return self._mesh_to_image(self._rms_mesh)

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
        return self._mesh_to_image(error.reshape(yy.shape + (-1,)))

    @lazyproperty
    def background_mesh(self):
        """The background model at the block centres (the low-resolution map)."""
        yy, xx = np.meshgrid(self._samples.y, self._samples.x, indexing='ij')
        values = self.model.evaluate(np.stack([xx.ravel(), yy.ravel()], axis=1))
        mesh = self._to_linear(values).reshape(yy.shape + (-1,)).astype(self._dtype)
        mesh = mesh[..., 0] if self._channel_axis is None else mesh
        return mesh * self._unit if self._unit is not None else mesh

    @lazyproperty
    def background_median(self):
        """Median of the low-resolution background map (per channel for colour)."""
        return np.median(self.background_mesh, axis=(0, 1))

    @lazyproperty
    def background_rms_median(self):
        """Median of the block RMS map (per channel for colour)."""
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
                'device': compute_device(),
                'timings': dict(self.timings)}

    def plot_meshes(self, *, ax=None, marker='+', color='red', markersize=None, alpha=None,
                    show_initial=False, **kwargs):
        """
        Plot the control points (over an image already shown on ``ax``).

        Parameters
        ----------
        ax : `matplotlib.axes.Axes`, optional
            Axes to draw on (default: the current axes).
        marker, color, markersize, alpha : optional
            Marker style of the final control points.
        show_initial : bool, optional
            Also mark the initial positions and draw how each point moved.
        **kwargs
            Passed to `matplotlib.axes.Axes.scatter`.

        Returns
        -------
        ax : `matplotlib.axes.Axes`
        """
        import matplotlib.pyplot as plt

        if ax is None:
            ax = plt.gca()
        final = self.model.control_points
        size = None if markersize is None else markersize ** 2
        if show_initial:
            initial = self.model.initial_control_points
            ax.scatter(initial[:, 0], initial[:, 1], marker='o', s=size, facecolors='none',
                       edgecolors=color, alpha=0.5 if alpha is None else alpha)
            for (x0, y0), (x1, y1) in zip(initial, final):
                ax.plot([x0, x1], [y0, y1], color=color, lw=0.8, alpha=alpha)
        ax.scatter(final[:, 0], final[:, 1], marker=marker, color=color, s=size, alpha=alpha,
                   **kwargs)
        return ax
