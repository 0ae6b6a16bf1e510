"""Tests of astrobgopt.masks: regions, thresholds and mask combination."""

import math
from pathlib import Path

import astropy
import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS
from regions import (CircleAnnulusPixelRegion, CirclePixelRegion, CircleSkyRegion,
                     EllipsePixelRegion, PixCoord, PolygonPixelRegion, RectanglePixelRegion,
                     Regions)

from astrobgopt.io import read_image
from astrobgopt.masks import combine_masks, read_regions, regions_to_mask, threshold_mask

DATA = Path(__file__).parent / 'data'
M13_RICE = Path(astropy.__file__).parent / 'io/fits/hdu/compressed/tests/data/m13_rice.fits'


def tan_wcs(shape, *, centre=(150.0, 2.0), pixel_arcsec=1.0):
    """A north-up TAN WCS with ``centre`` (deg) at the middle of the image."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = centre
    wcs.wcs.crpix = [(shape[1] + 1) / 2, (shape[0] + 1) / 2]
    wcs.wcs.cdelt = [-pixel_arcsec / 3600, pixel_arcsec / 3600]
    return wcs


def test_mixed_shapes_match_analytic_areas():
    # Each shape of tests/data/mixed_shapes.reg separately (ds9 coordinates
    # are 1-based, so circle(50,50,...) is centred on pixel index 49).
    shape = (200, 200)
    with pytest.warns(AstropyUserWarning, match='no area'):
        regions = list(read_regions(DATA / 'mixed_shapes.reg'))
        pixel_counts = [regions_to_mask(region, shape).sum() for region in regions]
    circle, hole, ellipse, box, polygon, annulus, point, text = pixel_counts
    analytic = {'circle': math.pi * 10 ** 2, 'ellipse': math.pi * 20 * 10, 'box': 30 * 16,
                'polygon': 40 * 30 / 2, 'annulus': math.pi * (12 ** 2 - 5 ** 2)}
    counted = {'circle': circle, 'ellipse': ellipse, 'box': box, 'polygon': polygon,
               'annulus': annulus}
    for name, area in analytic.items():
        assert counted[name] == pytest.approx(area, rel=0.04), name
    # An exclusion on its own removes pixels from nothing; points and text have no area.
    assert hole == 0 and point == 0 and text == 0


def test_region_file_with_exclusion():
    with pytest.warns(AstropyUserWarning, match='no area'):
        mask = regions_to_mask(DATA / 'mixed_shapes.reg', (200, 200))
    assert mask.dtype == bool and mask.shape == (200, 200)
    assert not mask[49, 49]            # inside the -circle hole
    assert mask[49, 49 + 7]            # in the circle, outside the hole
    assert not mask[49, 49 + 11]       # just outside the circle
    # Ellipse rotated by 30 deg: near the end of its major axis, not on the x axis.
    assert mask[49, 119] and mask[49 + 9, 119 + 15] and not mask[49, 119 + 18]
    assert mask[119, 49] and not mask[119, 49 + 16]  # box centre; beyond its half width
    assert mask[105, 135] and not mask[125, 105]  # inside / outside the triangle
    assert not mask[149, 149] and mask[149, 149 + 8]  # annulus: hole and ring
    assert not mask[4, 4]              # the point region masks nothing
    expected = (math.pi * (10 ** 2 - 4 ** 2) + math.pi * 200 + 480 + 600
                + math.pi * (12 ** 2 - 5 ** 2))
    assert mask.sum() == pytest.approx(expected, rel=0.03)


def test_include_exclude_follow_file_order():
    shape = (50, 50)
    box = RectanglePixelRegion(PixCoord(24.5, 24.5), width=20, height=20)
    hole = CirclePixelRegion(PixCoord(24.5, 24.5), radius=5)
    hole.meta['include'] = False
    assert regions_to_mask([box, hole], shape).sum() == 400 - hole.to_mask().data.sum()
    # An exclusion applies to what was masked before it, not after.
    assert regions_to_mask([hole, box], shape).sum() == 400


def test_sky_regions_need_and_use_a_wcs():
    shape = (256, 256)
    wcs = tan_wcs(shape)
    mask = regions_to_mask(DATA / 'sky_regions.reg', shape, wcs=wcs)
    centre = (127, 127)   # the 0-based pixel nearest to CRVAL at (127.5, 127.5)
    assert not mask[centre]                        # in the 8" hole
    assert mask[centre[0] + 14, centre[1]]         # in the 20" circle
    x, y = wcs.world_to_pixel(SkyCoord('10:00:02.0 +2:00:30.0', unit=(u.hourangle, u.deg)))
    assert mask[round(float(y)), round(float(x))]  # the ellipse centre
    ring = math.pi * (20 ** 2 - 8 ** 2)
    ellipse = math.pi * 24 * 12
    assert mask.sum() == pytest.approx(ring + ellipse, rel=0.03)

    # Finding C1: the message was the region's repr, cut off by the CLI.
    with pytest.raises(ValueError, match=r"^sky region circle at RA 150\.00000, Dec 2\.00000 deg "
                                         r"needs a WCS; the image has none \(wcs=None\): use "
                                         r"pixel regions or an image with a celestial WCS "
                                         r"\(region #1 of '.*sky_regions.reg'\)$"):
        regions_to_mask(DATA / 'sky_regions.reg', shape)


def test_sky_region_on_real_m13_frame():
    # astropy's compressed M13 test frame carries a real TAN WCS (1"/pixel).
    image = read_image(M13_RICE)
    radius = 30 * u.arcsec
    region = CircleSkyRegion(SkyCoord(250.4226, 36.4602, unit='deg'), radius)
    mask = regions_to_mask(Regions([region]), image.data.shape, wcs=image.wcs)
    pixel_arcsec = abs(image.header['CDELT1']) * 3600
    assert mask.sum() == pytest.approx(math.pi * (30 / pixel_arcsec) ** 2, rel=0.02)
    assert mask[149, 149] and not mask[0, 0]


def test_crtf_file():
    mask = regions_to_mask(DATA / 'shapes.crtf', (100, 100))
    assert mask[49, 49] and mask[20, 25] and not mask[80, 80]


def test_format_from_extension_or_argument(tmp_path):
    copy = tmp_path / 'regions.txt'
    copy.write_text((DATA / 'shapes.crtf').read_text())
    with pytest.raises(ValueError, match="extension.*format='ds9'"):
        regions_to_mask(copy, (100, 100))
    mask = regions_to_mask(copy, (100, 100), format='crtf')
    assert np.array_equal(mask, regions_to_mask(DATA / 'shapes.crtf', (100, 100)))
    with pytest.raises(FileNotFoundError, match='missing.reg'):
        regions_to_mask(tmp_path / 'missing.reg', (100, 100))


@pytest.mark.parametrize('name, failure', [('malformed.reg', 'radius'),
                                           ('unknown_shape.reg', 'blob')])
def test_malformed_region_file(name, failure):
    with pytest.raises(ValueError, match=f'{name}.*{failure}'):
        regions_to_mask(DATA / name, (100, 100))


def test_region_objects_and_bad_items():
    shape = (40, 40)
    circle = CirclePixelRegion(PixCoord(20, 20), radius=5)
    single = regions_to_mask(circle, shape)
    assert np.array_equal(single, regions_to_mask([circle], shape))
    assert np.array_equal(single, regions_to_mask(Regions([circle]), shape))
    off_image = CirclePixelRegion(PixCoord(-100, -100), radius=5)
    assert not regions_to_mask(off_image, shape).any()
    with pytest.raises(TypeError, match='region objects'):
        regions_to_mask([circle, 'circle(1,2,3)'], shape)
    with pytest.raises(TypeError, match='region file path'):
        regions_to_mask(42, shape)
    with pytest.raises(ValueError, match='shape'):
        regions_to_mask(circle, (10, 10, 3))


def test_huge_regions_are_clipped_to_the_image(tmp_path):
    # Finding B8: circle(100,100,1e7) asked for 2.84 PiB.
    shape = (300, 400)
    path = tmp_path / 'huge.reg'
    path.write_text('image\ncircle(100,100,1e7)\n-box(201,101,41,21,0)\n')
    mask = regions_to_mask(path, shape)
    hole = np.zeros(shape, bool)
    hole[90:111, 180:221] = True
    assert np.array_equal(mask, ~hole)
    far_ring = CircleAnnulusPixelRegion(PixCoord(-1e9, 150), 1e9 + 100, 1e9 + 200)
    columns = np.flatnonzero(regions_to_mask(far_ring, shape).any(axis=0))
    assert columns[0] == 100 and columns[-1] == 199


def test_clipping_masks_what_to_mask_does():
    # Regions partly off the image, of every kind with an area.
    shape = (60, 80)
    shapes = [CirclePixelRegion(PixCoord(-3.3, 20.7), 10.2),
              EllipsePixelRegion(PixCoord(75, 30), 30, 12, angle=33 * u.deg),
              RectanglePixelRegion(PixCoord(40.5, 58.5), 30, 12, angle=20 * u.deg),
              PolygonPixelRegion(PixCoord([-3, 50, 90, 10], [2, -5, 55, 70])),
              CircleAnnulusPixelRegion(PixCoord(40, 0), 5, 20)]
    for region in shapes:
        expected = region.to_mask(mode='center').to_image(shape) > 0
        assert np.array_equal(regions_to_mask(region, shape), expected), region


def test_regions_that_cannot_be_placed_are_named():
    # Finding C6: "cannot convert float NaN to integer", without the file.
    shape = (50, 50)
    with pytest.raises(ValueError, match=r"^pixel region circle at x=nan, y=49 has a position or "
                                         r"size that is not finite .*: correct or remove "
                                         r"region #2 of '.*nan_centre.reg'$"):
        regions_to_mask(DATA / 'nan_centre.reg', shape)
    infinite = CirclePixelRegion(PixCoord(10, 10), np.inf)
    with pytest.raises(ValueError, match='not finite.*region #1$'):
        regions_to_mask(infinite, shape)
    # The far side of the sky has no place in a TAN projection.
    antipode = CircleSkyRegion(SkyCoord(330, -2, unit='deg'), 5 * u.arcsec)
    with pytest.raises(ValueError, match=r'^sky region circle at RA 330.00000, Dec -2.00000 deg '
                                         r'has no finite pixel position .* region #2$'):
        regions_to_mask([infinite.copy(radius=1), antipode], shape, wcs=tan_wcs(shape))


def test_sky_regions_use_the_celestial_part_of_a_cube_wcs():
    # Finding C6: a 3-D WCS said "Number of world inputs (1)...".
    shape = (256, 256)
    cube_wcs = WCS(naxis=3)
    celestial = tan_wcs(shape)
    cube_wcs.wcs.ctype = [*celestial.wcs.ctype, 'FREQ']
    cube_wcs.wcs.crval = [*celestial.wcs.crval, 1.4e9]
    cube_wcs.wcs.crpix = [*celestial.wcs.crpix, 1]
    cube_wcs.wcs.cdelt = [*celestial.wcs.cdelt, 1e6]
    expected = regions_to_mask(DATA / 'sky_regions.reg', shape, wcs=celestial)
    assert expected.any()
    assert np.array_equal(regions_to_mask(DATA / 'sky_regions.reg', shape, wcs=cube_wcs),
                          expected)
    spectral = WCS(naxis=2)
    spectral.wcs.ctype = ['FREQ', 'STOKES']
    with pytest.raises(ValueError, match=r"^sky region circle at RA 150.00000, Dec 2.00000 deg "
                                         r"needs a celestial WCS; the image WCS has axes "
                                         r"\['FREQ', 'STOKES'\]: use pixel regions"):
        regions_to_mask(DATA / 'sky_regions.reg', shape, wcs=spectral)


def test_threshold_mask():
    data = np.array([[-5.0, 0.0], [10.0, np.nan]])
    assert np.array_equal(threshold_mask(data, minimum=-1, maximum=5),
                          [[True, False], [True, False]])
    assert not threshold_mask(data).any()
    quantity = data * u.adu
    assert np.array_equal(threshold_mask(quantity, maximum=500 * u.cadu),
                          threshold_mask(data, maximum=5))
    with pytest.raises(ValueError, match='must not exceed'):
        threshold_mask(data, minimum=3, maximum=1)
    with pytest.raises(ValueError, match='unit'):
        threshold_mask(data, minimum=1 * u.adu)


def test_combine_masks():
    shape = (2, 3)
    a = np.array([[True, False, False], [False, False, False]])
    b = np.array([[0, 0, 1], [0, 0, 0]], dtype=np.uint8)
    combined = combine_masks(a, None, b, shape=shape)
    assert combined.dtype == bool
    assert np.array_equal(combined, [[True, False, True], [False, False, False]])
    assert not combine_masks(None, shape=shape).any()
    with pytest.raises(ValueError, match=r'mask #2 has shape \(3, 2\)'):
        combine_masks(a, np.zeros((3, 2), bool), shape=shape)
    with pytest.raises(ValueError, match='other than 0 and 1'):
        combine_masks(np.full(shape, 0.5), shape=shape)
    with pytest.raises(TypeError, match='boolean'):
        combine_masks(np.full(shape, 'x'), shape=shape)
