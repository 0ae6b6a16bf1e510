"""Tests of astrobgopt.ccd.subtract_background, the ccdproc-style step."""

import math
from pathlib import Path

import astropy.units as u
import ccdproc
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty, VarianceUncertainty
from astropy.wcs import WCS
from ccdproc import ImageFileCollection
from regions import CirclePixelRegion, PixCoord

from astrobgopt.ccd import subtract_background

RAW_FRAME = Path(ccdproc.__file__).parent / 'tests/data/a8280271.fits'
DATA = Path(__file__).parent / 'data'
NOISE = 5.0


class PlaneResult:
    """What `PlaneBackground` returns: the estimator contract's attributes."""

    def __init__(self, background, background_rms, background_error=None):
        self.background = background
        self.background_rms = background_rms
        if background_error is not None:
            self.background_error = background_error


class PlaneBackground:
    """
    A stand-in estimator following the SplineOptBackground contract: a
    least-squares plane through the unmasked pixels.
    """

    def __init__(self, *, model_error=None):
        self.model_error = model_error
        self.fit_mask = None

    def __repr__(self):
        return 'PlaneBackground()'

    def __call__(self, data, *, mask=None, coverage_mask=None, regions=None, wcs=None,
                 fill_value=0.0):
        unit = getattr(data, 'unit', None)
        values = np.asarray(getattr(data, 'data', data), dtype=float)
        ny, nx = values.shape
        yy, xx = np.mgrid[:ny, :nx]
        use = ~np.asarray(mask, bool) if mask is not None else np.ones(values.shape, bool)
        self.fit_mask = ~use
        design = np.stack([np.ones(use.sum()), xx[use], yy[use]], axis=1)
        coefficients = np.linalg.lstsq(design, values[use], rcond=None)[0]
        plane = coefficients[0] + coefficients[1] * xx + coefficients[2] * yy
        rms = np.full(values.shape, np.std(values[use] - plane[use]))
        error = None if self.model_error is None else np.full(values.shape, self.model_error)
        if unit is not None:
            plane, rms = plane * unit, rms * unit
            error = None if error is None else error * unit
        return PlaneResult(plane, rms, error)


def tan_wcs(shape):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [(shape[1] + 1) / 2, (shape[0] + 1) / 2]
    wcs.wcs.cdelt = [-1 / 3600, 1 / 3600]
    return wcs


def sky_plane(shape):
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(float)
    return 200 + 0.1 * (xx - shape[1] / 2) - 0.05 * (yy - shape[0] / 2)


def make_ccd(shape=(64, 80), *, meta=None, seed=0):
    rng = np.random.default_rng(seed)
    data = sky_plane(shape) + rng.normal(0, NOISE, shape)
    mask = np.zeros(shape, bool)
    mask[:2, :2] = True
    return CCDData(data, unit='adu', wcs=tan_wcs(shape), mask=mask,
                   uncertainty=StdDevUncertainty(np.full(shape, NOISE)),
                   meta=meta if meta is not None else {'OBJECT': 'test field'})


def test_returns_new_ccddata_and_leaves_input_untouched():
    ccd = make_ccd()
    before = ccd.copy()
    result = subtract_background(ccd, estimator=PlaneBackground())
    assert result is not ccd and isinstance(result, CCDData)
    assert np.array_equal(ccd.data, before.data) and np.array_equal(ccd.mask, before.mask)
    assert dict(ccd.meta) == dict(before.meta)
    assert np.array_equal(ccd.uncertainty.array, before.uncertainty.array)
    assert result.unit == u.adu
    assert result.wcs.to_header_string() == ccd.wcs.to_header_string()
    assert np.array_equal(result.mask, ccd.mask)
    assert result.meta['OBJECT'] == 'test field'
    assert np.array_equal(result.uncertainty.array, ccd.uncertainty.array)
    assert abs(np.mean(result.data)) < 0.5 and np.std(result.data) == pytest.approx(NOISE, 0.1)


def test_fit_mask_joins_ccd_mask_mask_and_regions():
    ccd = make_ccd()
    extra = np.zeros(ccd.shape, bool)
    extra[10, 10] = True
    estimator = PlaneBackground()
    circle = CirclePixelRegion(PixCoord(40, 30), radius=6)
    result = subtract_background(ccd, estimator=estimator, mask=extra, regions=[circle])
    expected = ccd.mask | extra | circle.to_mask(mode='center').to_image(ccd.shape).astype(bool)
    assert np.array_equal(estimator.fit_mask, expected)
    assert np.array_equal(result.mask, ccd.mask)   # the output's mask is the input's
    with pytest.raises(ValueError, match='shape'):
        subtract_background(ccd, estimator=estimator, mask=np.zeros((3, 3), bool))


def test_logged_in_meta_like_ccdproc(tmp_path):
    ccd = make_ccd()
    region_file = tmp_path / 'star.reg'
    region_file.write_text('image\ncircle(20,20,5)\n')
    result = subtract_background(ccd, estimator=PlaneBackground(), regions=region_file)
    short_name, _ = result.meta['subtract_background']
    assert short_name == 'bgoptsub'
    assert result.meta['bgoptsub'] == ('ccd=<CCDData>, estimator=PlaneBackground(), '
                                       f'regions={region_file}')
    assert 'subtract_background' not in ccd.meta

    assert 'bgoptsub' not in subtract_background(ccd, estimator=PlaneBackground(),
                                                 add_keyword=False).meta
    keyed = subtract_background(ccd, estimator=PlaneBackground(),
                                add_keyword=ccdproc.Keyword('SKYSUB', value='plane'))
    assert keyed.meta['SKYSUB'] == 'plane' and 'bgoptsub' not in keyed.meta
    with ccdproc.conf.set_temp('auto_logging', False):
        assert 'bgoptsub' not in subtract_background(ccd, estimator=PlaneBackground()).meta


def test_fits_header_meta_stays_writable(tmp_path):
    ccd = make_ccd(meta=fits.Header({'OBJECT': 'field'}))
    result = subtract_background(ccd, estimator=PlaneBackground(), mask=ccd.mask)
    assert result.meta['SUBTRACT_BACKGROUND'] == 'bgoptsub'
    assert result.meta['BGOPTSUB'].startswith('ccd=<CCDData>')
    result.write(tmp_path / 'out.fits')
    header = fits.getheader(tmp_path / 'out.fits')
    assert header['BGOPTSUB'] == result.meta['BGOPTSUB']


def test_uncertainty_gains_model_error_in_quadrature():
    ccd = make_ccd()
    result = subtract_background(ccd, estimator=PlaneBackground(model_error=3.0))
    assert isinstance(result.uncertainty, StdDevUncertainty)
    assert np.allclose(result.uncertainty.array, math.hypot(NOISE, 3.0))

    ccd.uncertainty = VarianceUncertainty(np.full(ccd.shape, NOISE ** 2))
    result = subtract_background(ccd, estimator=PlaneBackground(model_error=3.0))
    assert isinstance(result.uncertainty, VarianceUncertainty)
    assert np.allclose(result.uncertainty.array, NOISE ** 2 + 9.0)

    ccd.uncertainty = None
    assert subtract_background(ccd, estimator=PlaneBackground(model_error=3.0)).uncertainty \
        is None


def test_argument_errors():
    ccd = make_ccd()
    with pytest.raises(TypeError, match='CCDData'):
        subtract_background(ccd.data, estimator=PlaneBackground())
    with pytest.raises(TypeError, match='default estimator'):
        subtract_background(ccd, estimator=PlaneBackground(), n_points=8)
    with pytest.raises(ValueError, match='2-D'):
        subtract_background(CCDData(np.zeros((2, 4, 4)), unit='adu'),
                            estimator=PlaneBackground())
    with pytest.raises(ValueError, match='wcs='):
        subtract_background(CCDData(ccd.data, unit='adu'), estimator=PlaneBackground(),
                            regions=DATA / 'sky_regions.reg')


def test_image_file_collection_loop(tmp_path):
    for index in range(2):
        ccd = make_ccd(meta=fits.Header({'IMAGETYP': 'object'}), seed=index)
        ccd.write(tmp_path / f'frame{index}.fits')
    collection = ImageFileCollection(tmp_path)
    for ccd, name in collection.ccds(imagetyp='object', return_fname=True):
        result = subtract_background(ccd, estimator=PlaneBackground())
        result.write(tmp_path / f'sky_{name}')
    for index in range(2):
        header = fits.getheader(tmp_path / f'sky_frame{index}.fits')
        assert header['BGOPTSUB'].startswith('ccd=<CCDData>')


def test_real_raw_frame_in_a_ccdproc_script():
    # The script of docs/ccdproc.rst on ccdproc's raw test frame.
    raw = CCDData.read(RAW_FRAME, unit='adu')
    ccd = ccdproc.subtract_overscan(raw, fits_section=raw.header['BIASSEC'], overscan_axis=1,
                                    median=True)
    ccd = ccdproc.trim_image(ccd, fits_section='[17:528, 1:511]')
    estimator = PlaneBackground()
    result = subtract_background(ccd, estimator=estimator, regions=DATA / 'a8280271_stars.reg')
    assert result.shape == (511, 512)
    assert estimator.fit_mask[432, 434] and estimator.fit_mask[38, 153]   # the bright stars
    assert abs(np.median(result.data)) < 1.0 < np.median(ccd.data) / 50
    for step in ('suboscan', 'trimim', 'bgoptsub'):
        assert step in result.meta


def test_galaxy_excluded_by_sky_region_with_default_estimator(tmp_path):
    """
    A bright extended galaxy on a sloped sky: a ds9 fk5 ellipse keeps it out
    of the spline fit, so the background under it is unbiased; without the
    region (and without the estimator's automatic extended-object masking)
    the model is pulled up under the galaxy.
    """
    shape = (256, 256)
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(float)
    sky = sky_plane(shape) + 2e-4 * (xx - 128) ** 2
    x0, y0, axis_ratio, angle, scale = 150, 110, 0.6, math.radians(30), 12.0
    along = (xx - x0) * math.cos(angle) + (yy - y0) * math.sin(angle)
    across = -(xx - x0) * math.sin(angle) + (yy - y0) * math.cos(angle)
    radius = np.hypot(along, across / axis_ratio)
    galaxy = 300 * np.exp(-radius / scale)
    wcs = tan_wcs(shape)
    ccd = CCDData(sky + galaxy + rng.normal(0, NOISE, shape), unit='adu', wcs=wcs,
                  uncertainty=StdDevUncertainty(np.full(shape, NOISE)),
                  meta=fits.Header({'OBJECT': 'galaxy'}))
    before = ccd.copy()

    centre = wcs.pixel_to_world(x0, y0)
    semi_major = 6 * scale   # arcsec, at 1 arcsec per pixel
    region_file = tmp_path / 'galaxy.reg'
    region_file.write_text('# Region file format: DS9 version 4.1\nfk5\n'
                           f'ellipse({centre.ra.deg:.7f},{centre.dec.deg:.7f},'
                           f'{semi_major}",{semi_major * axis_ratio}",30)\n')
    under_galaxy = radius < semi_major

    result = subtract_background(ccd, regions=region_file, progress=False)
    bias = (ccd.data - result.data - sky)[under_galaxy]
    assert abs(bias.mean()) < 0.25 * NOISE

    pulled = subtract_background(ccd, mask_extended=False, progress=False)
    assert (ccd.data - pulled.data - sky)[under_galaxy].mean() > 0.6 * NOISE

    assert np.array_equal(ccd.data, before.data) and ccd.meta == before.meta
    assert result.unit == u.adu
    assert result.wcs.to_header_string() == wcs.to_header_string()
    # The model's own standard error joins the pixel noise in quadrature: far
    # smaller than one pixel's noise, since thousands of pixels determine it.
    gained = np.sqrt(result.uncertainty.array ** 2 - ccd.uncertainty.array ** 2)
    assert 0 < np.median(gained) < 0.2 * NOISE
    assert result.meta['OBJECT'] == 'galaxy'
    assert f'regions={region_file}' in result.meta['BGOPTSUB']
    assert result.meta['BGOPTSUB'].startswith('ccd=<CCDData>, estimator=SplineOptBackground(')
