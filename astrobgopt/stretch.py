"""
The delinearizing stretch used by the seed tool (bgoptimizer), with its exact
inverse.

A linear image is mapped to ``mtf(m, (x - pedestal) / scale)`` where the scale
sends a chosen quantile of the data to 1 and the midtones transfer function

.. math::

    \\mathrm{mtf}(m, u) = \\frac{(m - 1)\\,u}{(2m - 1)\\,u - m}

sends the median of the scaled data to a target level (0.25 by default), which
lifts the faint background out of the noise floor. The MTF is only defined on
[0, 1]; outside that interval this module continues it linearly with matching
slope, so no data are clipped and the inverse is exact everywhere.
"""

import numpy as np

__all__ = ['Stretch']

# Largest number of pixels used to estimate the stretch's quantiles: a strided
# subsample is as good as the full image for percentiles and far cheaper.
_MAX_QUANTILE_SAMPLES = 1_000_000


def _mtf(midtone, u):
    """Midtones transfer function on [0, 1], continued linearly outside it."""
    u = np.asarray(u, dtype=np.float64)
    out = np.empty_like(u)
    inside = (u >= 0) & (u <= 1)
    ui = u[inside]
    out[inside] = (midtone - 1) * ui / ((2 * midtone - 1) * ui - midtone)
    below = u < 0
    out[below] = u[below] * (1 - midtone) / midtone  # slope at u = 0
    above = u > 1
    out[above] = 1 + (u[above] - 1) * midtone / (1 - midtone)  # slope at u = 1
    return out


class Stretch:
    """
    Pedestal removal, quantile scaling and midtones transfer function.

    Parameters
    ----------
    pedestal : float
        Value subtracted first (the dark floor of the image).
    scale : float
        Divisor applied after the pedestal (> 0).
    midtone : float
        Midtones balance ``m`` in (0, 1); 0.5 is the identity.

    Notes
    -----
    The inverse of ``mtf(m, .)`` is ``mtf(1 - m, .)``, and the linear
    continuations outside [0, 1] invert each other, so `inverse` undoes
    `forward` to rounding error for every real input.
    """

    def __init__(self, pedestal=0.0, scale=1.0, midtone=0.5):
        if not scale > 0:
            raise ValueError(f'stretch scale must be positive; got {scale!r}')
        if not 0 < midtone < 1:
            raise ValueError(f'midtone balance must lie in (0, 1); got {midtone!r}')
        self.pedestal = float(pedestal)
        self.scale = float(scale)
        self.midtone = float(midtone)

    def __repr__(self):
        return (f'Stretch(pedestal={self.pedestal:.6g}, scale={self.scale:.6g}, '
                f'midtone={self.midtone:.6g})')

    @classmethod
    def from_data(cls, data, usable=None, *, quantile=0.95, target_median=0.25):
        """
        Choose the stretch for an image as the seed tool does.

        Parameters
        ----------
        data : `~numpy.ndarray`
            Linear image.
        usable : bool `~numpy.ndarray`, optional
            Pixels to consider (finite and unmasked).
        quantile : float, optional
            Quantile of the pedestal-subtracted data mapped to 1 (the seed's
            ``--delinearization-quantile``); lower values stretch harder.
        target_median : float, optional
            Level the median is mapped to.

        Returns
        -------
        stretch : `Stretch`
        """
        if not 0 < quantile <= 1:
            raise ValueError(f'delinearization quantile must lie in (0, 1]; got {quantile!r}')
        values = np.asarray(data)
        values = values[usable] if usable is not None else values[np.isfinite(values)]
        if values.size == 0:
            raise ValueError('no usable pixels to choose a stretch from')
        step = max(1, values.size // _MAX_QUANTILE_SAMPLES)
        sample = values.ravel()[::step].astype(np.float64)
        pedestal, median, top = np.quantile(sample, [0.001, 0.5, quantile])
        scale = top - pedestal
        if not scale > 0:
            scale = 1.0
        x = np.clip((median - pedestal) / scale, 1e-6, 1 - 1e-6)
        # Solve mtf(m, x) = target_median for m.
        midtone = x * (target_median - 1) / (2 * x * target_median - x - target_median)
        return cls(pedestal, scale, float(np.clip(midtone, 1e-4, 1 - 1e-4)))

    def forward(self, data):
        """Map linear values to stretched values."""
        return _mtf(self.midtone, (np.asarray(data, dtype=np.float64) - self.pedestal)
                    / self.scale)

    def inverse(self, stretched):
        """Map stretched values back to linear values (exact inverse of `forward`)."""
        return _mtf(1 - self.midtone, stretched) * self.scale + self.pedestal
