"""
Validation kit: prove that a background model is right.

Simulated skies with a known background (the STScI notebook *Complex 2D
Background*: a gradient with sinc-function blemishes, noise and Gaussian
sources), a suite of scenes real users bring (``SCENES``) and the metrics that
score an estimate against them, the notebook's source masks, a bias test, residual RMS versus scale,
side-by-side comparison of estimators and a report
(``astrobgopt validate``).
"""

from .bias import BiasTestResult, bias_test
from .compare import (DEFAULT_WIDTHS, Background2DEstimator, compare_backgrounds,
                      default_estimators, notebook_estimators)
from .metrics import (bias_under, equivariance_rms, error_rms, estimate_pixel_noise,
                      rms_map_ratios, smooth_gradient)
from .masks import (dilate_mask, iterative_source_mask, notebook_source_mask, ring_median_filter,
                    ring_median_mask)
from .plotting import plot_bias, plot_residual_maps, plot_rms_vs_scale, plot_scene
from .report import run_validation, validation_main
from .scale import residual_rms_vs_scale, rms_ratio_to_perfect
from .scene import SincBlemishScene, make_sinc_blemish_scene
from .scenes import (OBJECT_LEVEL, SCENES, Scene, edge_nebula_scene, galaxy_scene,
                     globular_cluster_scene, light_pollution_scene, load_m13_scene, make_scene,
                     milky_way_scene, rgb_gradient_scene, satellite_trail_scene,
                     saturated_star_scene, sinc_blemish_scene, small_256_scene, small_flat_scene,
                     small_glow_scene, strong_light_pollution_scene, vignetting_amp_glow_scene)
from .sky import SincBlemishSky, make_sinc_blemish_sky
from .sources import SOURCE_COLUMNS, add_sources, make_source_image, make_source_table

__all__ = [
    'make_sinc_blemish_sky', 'SincBlemishSky',
    'make_source_table', 'make_source_image', 'add_sources', 'SOURCE_COLUMNS',
    'make_sinc_blemish_scene', 'SincBlemishScene',
    'ring_median_filter', 'ring_median_mask', 'dilate_mask', 'iterative_source_mask',
    'notebook_source_mask',
    'bias_test', 'BiasTestResult',
    'residual_rms_vs_scale', 'rms_ratio_to_perfect',
    'compare_backgrounds', 'notebook_estimators', 'default_estimators',
    'Background2DEstimator', 'DEFAULT_WIDTHS',
    'plot_scene', 'plot_residual_maps', 'plot_bias', 'plot_rms_vs_scale',
    'run_validation', 'validation_main',
    'Scene', 'SCENES', 'make_scene', 'load_m13_scene', 'OBJECT_LEVEL',
    'light_pollution_scene', 'strong_light_pollution_scene', 'small_glow_scene',
    'small_flat_scene', 'globular_cluster_scene',
    'galaxy_scene', 'edge_nebula_scene', 'saturated_star_scene', 'satellite_trail_scene',
    'milky_way_scene', 'vignetting_amp_glow_scene', 'sinc_blemish_scene', 'rgb_gradient_scene',
    'small_256_scene',
    'error_rms', 'bias_under', 'smooth_gradient', 'equivariance_rms', 'rms_map_ratios',
    'estimate_pixel_noise',
]
