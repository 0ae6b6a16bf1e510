"""The command line on odd inputs the I/O and region code must handle (issue 12)."""

import json

import numpy as np
import pytest
import tifffile
from astropy.io import fits

from astrobgopt.cli import main
from astrobgopt.frame import FrameOptions
from astrobgopt.io import read_image

FAST = ['-e', '30', '--quiet']


def grey_alpha_frame(path):
    """A uint16 grey+alpha TIFF of a tilted plane, transparent in its left 50 columns."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:200, :300]
    grey = (20000 + 10 * x + 5 * y + rng.normal(0, 50, x.shape)).astype(np.uint16)
    alpha = np.full(x.shape, 65535, np.uint16)
    alpha[:, :50] = 0
    tifffile.imwrite(path, np.dstack([grey, alpha]), photometric='minisblack',
                     extrasamples=['unassalpha'])
    return grey, alpha


def assert_plane_model(path):
    """The model of `grey_alpha_frame` is its plane, away from the edges and the transparency."""
    model = read_image(path).data.astype(float)
    y, x = np.mgrid[:200, :300]
    assert np.max(np.abs(model - (20000 + 10 * x + 5 * y))[20:-20, 70:-20]) < 30


def test_grey_alpha_tiff_with_a_non_ascii_name(tmp_path):
    # Findings A1 (a 300-page stack of 450 x 2 images) and B1 (non-ASCII names).
    grey, alpha = grey_alpha_frame(tmp_path / 'imäge ✓.tif')
    assert main([str(tmp_path / 'imäge ✓.tif'), '-o', str(tmp_path / 'out'), *FAST]) == 0
    for suffix in ('bgSubtracted', 'bgModel'):
        path = tmp_path / 'out' / f'imäge ✓_{suffix}.tif'
        with tifffile.TiffFile(path) as tiff:
            assert len(tiff.pages) == 1 and tiff.series[0].shape == (200, 300, 2)
            assert r'input=im\xe4ge \u2713.tif' in tiff.shaped_metadata[0]['BGOPTPAR']
        result = read_image(path)
        assert result.data.shape == grey.shape and np.array_equal(result.alpha, alpha)
    assert_plane_model(tmp_path / 'out' / 'imäge ✓_bgModel.tif')


def test_sky_region_without_wcs_says_why_in_one_line(tmp_path, cli_error):
    # Finding C1: the message was a region repr, cut off.
    grey_alpha_frame(tmp_path / 't16.tif')
    (tmp_path / 'sky.reg').write_text('fk5\ncircle(150,2,10")\n')
    assert main([str(tmp_path / 't16.tif'), '--regions', str(tmp_path / 'sky.reg'), *FAST]) == 1
    err = cli_error()
    assert err.startswith(f"astrobgopt: error: {tmp_path / 't16.tif'}: sky region circle at "
                          'RA 150.00000, Dec 2.00000 deg needs a WCS; the image has none')


def test_hdu_out_of_range_names_the_hdus(tmp_path, cli_error):
    # Finding C2: "list index out of range".
    fits.HDUList([fits.PrimaryHDU(np.ones((20, 30), np.float32)),
                  fits.ImageHDU(np.ones((20, 30), np.float32), name='SCI')]
                 ).writeto(tmp_path / 'two.fits')
    assert main([str(tmp_path / 'two.fits'), '--hdu', '5', *FAST]) == 1
    err = cli_error()
    assert 'there is no HDU 5: the file has HDUs 0 to 1' in err
    assert '1: SCI' in err


def plane(shape, rng):
    y, x = np.mgrid[:shape[0], :shape[1]]
    return 1000 + 2 * x + y + rng.normal(0, 1, shape)


def test_channels_last_fits_cube_with_channel_axis_flag(tmp_path):
    # Finding A4: a (200, 300, 3) cube was fitted as 200 channels of 300 x 3.
    rng = np.random.default_rng(2)
    cube = np.stack([plane((200, 300), rng) * scale for scale in (1.0, 1.2, 0.8)],
                    axis=-1).astype(np.float32)
    fits.PrimaryHDU(cube).writeto(tmp_path / 'rgb.fits')
    assert main([str(tmp_path / 'rgb.fits'), '--channel-axis', 'last', '-o',
                 str(tmp_path / 'out'), '--report', str(tmp_path / 'out/'), *FAST]) == 0
    model = fits.getdata(tmp_path / 'out' / 'rgb_bgModel.fits')
    assert model.shape == (200, 300, 3)
    y, x = np.mgrid[:200, :300]
    for channel, scale in enumerate((1.0, 1.2, 0.8)):
        truth = scale * (1000 + 2 * x + y)
        assert np.max(np.abs(model[..., channel] - truth)[10:-10, 10:-10]) < 3
    assert fits.getdata(tmp_path / 'out' / 'rgb_bgSubtracted.fits').shape == (200, 300, 3)
    report = json.loads((tmp_path / 'out' / 'rgb_bgReport.json').read_text())
    assert len(report['residual']['noise']) == 3


def test_channel_axis_flag_is_for_fits_only(tmp_path, cli_error):
    grey_alpha_frame(tmp_path / 'grey.tif')
    assert main([str(tmp_path / 'grey.tif'), '--channel-axis', 'first', *FAST]) == 2
    err = cli_error()
    assert '--channel-axis applies to FITS inputs only' in err
    assert main([str(tmp_path / 'grey.tif'), '--channel-axis', 'middle', *FAST]) == 2


def test_transparent_tiff_pixels_are_masked(tmp_path):
    # Pixels with alpha 0 hold no image: a wild value there must not pull the model.
    grey, alpha = grey_alpha_frame(tmp_path / 'cut.tif')
    grey[:, :50] = 60000
    tifffile.imwrite(tmp_path / 'cut.tif', np.dstack([grey, alpha]), photometric='minisblack',
                     extrasamples=['unassalpha'])
    assert main([str(tmp_path / 'cut.tif'), '-o', str(tmp_path / 'out'), *FAST]) == 0
    assert_plane_model(tmp_path / 'out' / 'cut_bgModel.tif')


def test_output_dir_that_is_a_file(tmp_path, cli_error):
    # Finding C3: "[Errno 17] File exists".
    grey_alpha_frame(tmp_path / 'grey.tif')
    (tmp_path / 'taken').write_text('')
    assert main([str(tmp_path / 'grey.tif'), '-o', str(tmp_path / 'taken'), *FAST]) == 2
    err = cli_error()
    assert 'is an existing file: name a directory' in err
    assert 'Errno' not in err


@pytest.mark.parametrize('pedestal', ['nan', 'inf', '-inf'])
def test_non_finite_pedestal_is_refused(tmp_path, capsys, pedestal):
    # Finding A5: an all-NaN subtracted image.
    grey_alpha_frame(tmp_path / 'grey.tif')
    assert main([str(tmp_path / 'grey.tif'), f'--pedestal={pedestal}', *FAST]) == 2
    assert 'a finite number' in capsys.readouterr().err
    assert not list(tmp_path.glob('*_bg*'))
    with pytest.raises(ValueError, match='pedestal must be a finite number'):
        FrameOptions(pedestal=float(pedestal))


def test_points_only_with_too_few_points_says_how_many(tmp_path, cli_error):
    # Finding C5: "use fewer control points" when 4, the fewest, were in use.
    grey_alpha_frame(tmp_path / 'grey.tif')
    (tmp_path / 'points.txt').write_text('60 20\n150 100\n250 180\n')
    assert main([str(tmp_path / 'grey.tif'), '--points', str(tmp_path / 'points.txt'),
                 '--points-only', *FAST]) == 1
    err = cli_error()
    assert ('only 3 usable samples for n_points=4 control points, which need at least 7: give '
            'more sample points or mask less') in err
    assert 'fewer control points' not in err
