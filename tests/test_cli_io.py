"""The command line on odd inputs the I/O and region code must handle (issue 12)."""

import numpy as np
import tifffile
from astropy.io import fits

from astrobgopt.cli import main
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
    model = read_image(tmp_path / 'out' / 'imäge ✓_bgModel.tif').data.astype(float)
    y, x = np.mgrid[:200, :300]
    assert np.max(np.abs(model - (20000 + 10 * x + 5 * y))[20:-20, 70:-20]) < 30


def test_sky_region_without_wcs_says_why_in_one_line(tmp_path, capsys):
    # Finding C1: the message was a region repr, cut off.
    grey_alpha_frame(tmp_path / 't16.tif')
    (tmp_path / 'sky.reg').write_text('fk5\ncircle(150,2,10")\n')
    assert main([str(tmp_path / 't16.tif'), '--regions', str(tmp_path / 'sky.reg'), *FAST]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"astrobgopt: error: {tmp_path / 't16.tif'}: sky region circle at "
                             'RA 150.00000, Dec 2.00000 deg needs a WCS; the image has none')


def test_hdu_out_of_range_names_the_hdus(tmp_path, capsys):
    # Finding C2: "list index out of range".
    fits.HDUList([fits.PrimaryHDU(np.ones((20, 30), np.float32)),
                  fits.ImageHDU(np.ones((20, 30), np.float32), name='SCI')]
                 ).writeto(tmp_path / 'two.fits')
    assert main([str(tmp_path / 'two.fits'), '--hdu', '5', *FAST]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'there is no HDU 5: the file has HDUs 0 to 1' in err[0]
    assert '1: SCI' in err[0]
