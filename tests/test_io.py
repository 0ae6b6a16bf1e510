"""Tests of astrobgopt.io: FITS/XISF/TIFF reading and atomic writing."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import astropy
import astropy.units as u
import ccdproc
import numpy as np
import pytest
import tifffile
import xisf
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS

from astrobgopt import __version__
from astrobgopt.io import cast_like, image_format, read_ccddata, read_image, write_image

M13_DIR = Path(astropy.__file__).parent / 'io/fits/hdu/compressed/tests/data'
RAW_FRAME = Path(ccdproc.__file__).parent / 'tests/data/a8280271.fits'


def science_header(shape):
    """A header with a TAN WCS, a unit and a few observation cards."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [83.82, -5.39]
    wcs.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    wcs.wcs.cdelt = [-0.0005, 0.0005]
    header = wcs.to_header()
    header['OBJECT'] = ('M42', 'target')
    header['EXPTIME'] = (120.0, 's')
    header['FILTER'] = 'Ha'
    header['BUNIT'] = 'electron'
    header.add_comment('made for a test')
    return header


def assert_same_wcs(header, expected):
    for key in ('CTYPE1', 'CTYPE2'):
        assert header[key] == expected[key], key
    for key in ('CRVAL1', 'CRVAL2', 'CRPIX1', 'CRPIX2'):
        assert header[key] == pytest.approx(expected[key]), key


@pytest.fixture
def fits_image(tmp_path):
    data = np.random.default_rng(0).normal(100, 5, (40, 50)).astype(np.float32)
    path = tmp_path / 'input.fits'
    fits.PrimaryHDU(data, science_header(data.shape)).writeto(path)
    return path, data


def test_fits_round_trip_keeps_header_wcs_and_unit(fits_image, tmp_path):
    path, data = fits_image
    image = read_image(path)
    assert image.format == 'fits' and image.hdu == 0 and image.unit == u.electron
    assert image.wcs is not None and np.array_equal(image.data, data)

    out = write_image(tmp_path / 'out.fits', (image.data - 100) * image.unit, like=image,
                      provenance={'n_points': 32, 'loss': 'robust'},
                      history=['background subtracted by astrobgopt'])
    result = read_image(out)
    assert np.array_equal(result.data, data - 100)
    assert result.unit == u.electron and result.data.dtype == np.float32
    for key in ('OBJECT', 'EXPTIME', 'FILTER'):
        assert result.header[key] == image.header[key]
        assert result.header.comments[key] == image.header.comments[key]
    assert 'made for a test' in str(result.header['COMMENT'])
    assert_same_wcs(result.header, image.header)
    assert result.wcs.wcs.compare(image.wcs.wcs)
    assert result.header['BGOPTVER'] == __version__
    assert result.header['BGOPTPAR'] == 'n_points=32, loss=robust'
    assert 'T' in result.header['BGOPTDAT']
    assert list(result.header['HISTORY']) == ['background subtracted by astrobgopt']


def test_compressed_fits_round_trip_is_lossless(fits_image, tmp_path):
    path, data = fits_image
    image = read_image(path)
    for dtype in (np.float32, np.int16, np.uint16):
        values = cast_like(data, dtype)
        out = write_image(tmp_path / f'out_{np.dtype(dtype).name}.fits', values, like=image,
                          compress=True)
        with fits.open(out) as hdul:
            assert isinstance(hdul[1], fits.CompImageHDU)
        result = read_image(out)
        assert result.hdu == 1 and result.data.dtype == dtype
        assert np.array_equal(result.data, values)
        assert_same_wcs(result.header, image.header)


def test_real_compressed_m13_frame():
    # astropy's test frames: the same M13 image stored plain and Rice-compressed.
    plain = read_image(M13_DIR / 'm13.fits')
    compressed = read_image(M13_DIR / 'm13_rice.fits')
    assert compressed.hdu == 1 and compressed.data.shape == (300, 300)
    assert np.array_equal(compressed.data, plain.data)
    assert compressed.wcs.wcs.ctype[0] == 'RA---TAN'
    assert compressed.wcs.wcs.crval == pytest.approx([250.4226, 36.4602])


def test_real_raw_ccd_frame():
    # ccdproc's raw frame has no BUNIT: read_ccddata assumes adu and says so.
    image = read_image(RAW_FRAME)
    assert image.data.shape == (520, 536) and image.data.dtype == np.uint16
    assert image.unit is None and image.header['INSTRUME'] == 'STE3 CCD'
    with pytest.warns(AstropyUserWarning, match='no BUNIT; assuming adu'):
        ccd = read_ccddata(RAW_FRAME)
    assert ccd.unit == u.adu and np.array_equal(ccd.data, image.data)
    assert read_ccddata(RAW_FRAME, unit='electron').unit == u.electron


def test_hdu_by_index_and_name(tmp_path):
    path = tmp_path / 'multi.fits'
    science = np.arange(12, dtype=np.float32).reshape(3, 4)
    fits.HDUList([fits.PrimaryHDU(),
                  fits.ImageHDU(science, name='SCI'),
                  fits.ImageHDU(science * 0.1, name='ERR'),
                  fits.BinTableHDU.from_columns([fits.Column('a', 'E', array=[1.0])],
                                                name='CAT')]).writeto(path)
    assert read_image(path).hdu == 1                       # first HDU with an image
    assert np.array_equal(read_image(path, hdu='ERR').data, science * 0.1)
    assert read_image(path, hdu=2).hdu == 2
    assert read_ccddata(path, hdu='ERR', unit='adu').data[0, 1] == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"no HDU 'NOPE'.*1: SCI"):
        read_image(path, hdu='NOPE')
    with pytest.raises(ValueError, match="HDU 'CAT' holds no image"):
        read_image(path, hdu='CAT')
    with pytest.raises(ValueError, match='multi.fits'):
        read_image(path, hdu=9)


def test_extra_hdus_carry_the_wcs(fits_image, tmp_path):
    path, data = fits_image
    image = read_image(path)
    out = write_image(tmp_path / 'with_model.fits', data, like=image,
                      extra_hdus={'BACKGROUND': np.full(data.shape, 100.0, np.float32),
                                  'BKGRMS': np.full(data.shape, 5.0, np.float32) * u.electron})
    background = read_image(out, hdu='BACKGROUND')
    rms = read_image(out, hdu='BKGRMS')
    assert np.all(background.data == 100) and rms.unit == u.electron
    assert_same_wcs(background.header, image.header)
    with pytest.raises(ValueError, match='only be written to FITS'):
        write_image(tmp_path / 'x.tif', data, extra_hdus={'BACKGROUND': data})


def test_no_overwrite_without_permission(fits_image, tmp_path):
    path, data = fits_image
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match='overwrite=True'):
        write_image(path, data * 2)
    assert path.read_bytes() == before
    write_image(path, data * 2, overwrite=True)
    assert np.array_equal(read_image(path).data, data * 2)


@pytest.mark.parametrize('suffix, module, writer', [('.fits', fits.HDUList, 'writeto'),
                                                    ('.xisf', xisf.XISF, 'write'),
                                                    ('.tif', tifffile, 'imwrite')])
def test_failed_write_leaves_target_untouched(tmp_path, monkeypatch, suffix, module, writer):
    target = tmp_path / f'image{suffix}'
    target.write_bytes(b'previous result')

    def write_half_then_fail(*args, **kwargs):
        destination = next(arg for arg in args if isinstance(arg, (str, os.PathLike)))
        Path(destination).write_bytes(b'half-written')
        raise OSError('disk full')

    monkeypatch.setattr(module, writer, write_half_then_fail)
    with pytest.raises(OSError, match='disk full'):
        write_image(target, np.zeros((4, 4), np.float32), overwrite=True)
    assert target.read_bytes() == b'previous result'
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


@pytest.mark.parametrize('dtype, shape', [(np.uint16, (30, 40)), (np.float32, (30, 40)),
                                          (np.uint16, (30, 40, 3)), (np.float32, (30, 40, 3))])
@pytest.mark.parametrize('suffix', ['.xisf', '.tif'])
@pytest.mark.parametrize('compress', [False, True])
def test_xisf_and_tiff_round_trips(tmp_path, dtype, shape, suffix, compress):
    rng = np.random.default_rng(1)
    values = rng.uniform(0, 1, shape)
    data = cast_like(values * 60000, dtype) if dtype == np.uint16 else values.astype(dtype)
    out = write_image(tmp_path / f'image{suffix}', data, compress=compress,
                      provenance={'n_points': 16}, history='background subtracted')
    image = read_image(out)
    assert image.format == image_format(out)
    assert image.data.dtype == dtype and image.data.shape == shape
    assert np.array_equal(image.data, data)
    if suffix == '.xisf':
        assert image.header['BGOPTPAR'] == 'n_points=16'
        assert list(image.header['HISTORY']) == ['background subtracted']
    else:
        assert '"BGOPTPAR": "n_points=16"' in image.meta['ImageDescription']


def test_tiff_planar_colour_reads_channels_last_and_stacks_are_refused(tmp_path):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 65535, (3, 30, 40), dtype=np.uint16)
    tifffile.imwrite(tmp_path / 'planar.tif', rgb, photometric='rgb', planarconfig='separate')
    image = read_image(tmp_path / 'planar.tif')
    assert image.data.shape == (30, 40, 3)
    assert np.array_equal(image.data, np.moveaxis(rgb, 0, -1))
    # A stack of one image is that image.
    tifffile.imwrite(tmp_path / 'single.tif', rgb[:1].astype(np.float32))
    assert read_image(tmp_path / 'single.tif').data.shape == (30, 40)
    tifffile.imwrite(tmp_path / 'stack.tif', np.zeros((5, 30, 40), np.float32))
    with pytest.raises(ValueError, match=r"stack.tif.*shape \(5, 30, 40\).*own file"):
        read_image(tmp_path / 'stack.tif')


def test_xisf_keeps_fits_keywords_and_wcs(fits_image, tmp_path):
    path, data = fits_image
    fits_input = read_image(path)
    out = write_image(tmp_path / 'converted.xisf', data, like=fits_input)
    converted = read_image(out)
    assert converted.header['OBJECT'] == 'M42' and converted.header['EXPTIME'] == 120
    assert converted.unit == u.electron
    assert converted.wcs.wcs.crval == pytest.approx(fits_input.wcs.wcs.crval)
    # XISF to XISF keeps the keywords and the image properties.
    again = write_image(tmp_path / 'again.xisf', converted.data, like=converted, compress=True)
    assert read_image(again).header['FILTER'] == 'Ha'
    with pytest.raises(ValueError, match='XISF cannot store int16'):
        write_image(tmp_path / 'bad.xisf', data.astype(np.int16))


def test_cast_like_rounds_and_clips():
    values = np.array([-1.6, 2.4, 2.6, 70000.0, np.nan, np.inf, -np.inf])
    assert cast_like(values, np.uint16).tolist() == [0, 2, 3, 65535, 0, 65535, 0]
    assert cast_like(values, np.int16).tolist() == [-2, 2, 3, 32767, 0, 32767, -32768]
    assert cast_like(values, np.float32).dtype == np.float32
    with pytest.raises(TypeError, match='integer or float'):
        cast_like(values, bool)


def test_clear_errors_for_unknown_or_unreadable_files(tmp_path):
    with pytest.raises(ValueError, match=r"image.jpg.*known extensions: \.fits"):
        read_image(tmp_path / 'image.jpg')
    with pytest.raises(FileNotFoundError, match='missing.fits'):
        read_image(tmp_path / 'missing.fits')
    for name in ('garbage.fits', 'garbage.xisf', 'garbage.tiff'):
        (tmp_path / name).write_bytes(b'not an image at all' * 10)
        with pytest.raises(ValueError, match=f'could not read .* file .*{name}'):
            read_image(tmp_path / name)
    with pytest.raises(ValueError, match='applies to FITS files only'):
        read_image(tmp_path / 'garbage.xisf', hdu=1)
    with pytest.raises(ValueError, match='extension'):
        write_image(tmp_path / 'out.png', np.zeros((4, 4)))
    with pytest.raises(ValueError, match='2-D or 3-D'):
        write_image(tmp_path / 'out.fits', np.zeros(4))


def test_grey_alpha_tiff_keeps_its_alpha_apart_and_writes_it_back(tmp_path):
    # Finding A1: a grey+alpha TIFF was written as a stack of 2-pixel-wide pages.
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 65535, (30, 45), dtype=np.uint16)
    alpha = np.where(np.arange(45) < 20, 65535, 0).astype(np.uint16) * np.ones((30, 1), np.uint16)
    tifffile.imwrite(tmp_path / 'ga.tif', np.dstack([grey, alpha]), photometric='minisblack',
                     extrasamples=['unassalpha'])
    image = read_image(tmp_path / 'ga.tif')
    assert image.data.shape == (30, 45) and image.channel_axis is None
    assert np.array_equal(image.data, grey) and np.array_equal(image.alpha, alpha)

    out = write_image(tmp_path / 'out.tif', image.data.astype(np.float32) / 2, like=image,
                      dtype=np.uint16)
    with tifffile.TiffFile(out) as tiff:
        assert len(tiff.pages) == 1 and tiff.series[0].shape == (30, 45, 2)
        assert [int(kind) for kind in tiff.pages[0].extrasamples] == [2]   # unassociated alpha
    result = read_image(out)
    assert np.array_equal(result.data, cast_like(grey / 2, np.uint16))
    assert np.array_equal(result.alpha, alpha)
    # An alpha given by hand is written as unassociated alpha.
    by_hand = read_image(write_image(tmp_path / 'plain.tif', grey))
    by_hand.alpha = np.dstack([alpha, alpha // 2])
    with tifffile.TiffFile(write_image(tmp_path / 'two.tif', grey, like=by_hand)) as tiff:
        assert [int(kind) for kind in tiff.pages[0].extrasamples] == [2, 2]
    assert np.array_equal(read_image(tmp_path / 'two.tif').alpha, by_hand.alpha)
    # FITS has no alpha channel: it is dropped, and said so.
    with pytest.warns(AstropyUserWarning, match="alpha channel of 'ga.tif' is not written"):
        write_image(tmp_path / 'out.fits', image.data, like=image)


def test_rgba_tiff_alpha_is_not_a_colour_channel(tmp_path):
    rgba = np.random.default_rng(4).integers(0, 255, (20, 30, 4), dtype=np.uint8)
    tifffile.imwrite(tmp_path / 'rgba.tif', rgba, photometric='rgb', extrasamples=['assocalpha'])
    image = read_image(tmp_path / 'rgba.tif')
    assert image.data.shape == (20, 30, 3) and image.channel_axis == -1
    assert np.array_equal(image.alpha, rgba[..., 3])
    out = write_image(tmp_path / 'out.tif', image.data, like=image)
    with tifffile.TiffFile(out) as tiff:
        assert [int(kind) for kind in tiff.pages[0].extrasamples] == [1]   # associated
    assert np.array_equal(tifffile.imread(out), rgba)


@pytest.mark.parametrize('channels', [2, 4, 5])
def test_any_channel_count_round_trips_or_is_refused(tmp_path, channels):
    # Finding A1: (H, W, 2) was written as H pages of W x 2 pixels.
    data = np.random.default_rng(5).uniform(0, 1, (30, 45, channels)).astype(np.float32)
    image = read_image(write_image(tmp_path / 'image.tif', data))
    assert image.alpha is None and image.channel_axis == -1
    assert image.data.shape == data.shape and np.array_equal(image.data, data)
    # The xisf package writes grey and RGB only.
    with pytest.raises(ValueError, match=f'{channels} channels: write FITS or TIFF'):
        write_image(tmp_path / 'image.xisf', data)
    assert sorted(path.name for path in tmp_path.iterdir()) == ['image.tif']


def test_fits_cube_layout_is_told_from_the_shape_or_chosen(tmp_path):
    # Finding A4: a channels-last FITS cube was read as 200 channels of 300 x 3 pixels.
    rgb = np.random.default_rng(6).normal(100, 5, (200, 300, 3)).astype(np.float32)
    fits.PrimaryHDU(rgb).writeto(tmp_path / 'last.fits')
    fits.PrimaryHDU(np.moveaxis(rgb, -1, 0)).writeto(tmp_path / 'first.fits')
    fits.PrimaryHDU(np.zeros((5, 40, 50), np.float32)).writeto(tmp_path / 'frames.fits')
    fits.PrimaryHDU(np.zeros((3, 300, 3), np.float32)).writeto(tmp_path / 'either.fits')
    last = read_image(tmp_path / 'last.fits')
    assert last.channel_axis == -1 and np.array_equal(last.data, rgb)
    assert read_image(tmp_path / 'first.fits').channel_axis == 0
    assert read_image(tmp_path / 'frames.fits').channel_axis == 0
    assert read_image(tmp_path / 'last.fits', channel_axis=0).channel_axis == 0
    assert read_image(tmp_path / 'first.fits', channel_axis=2).channel_axis == -1
    with pytest.raises(ValueError, match=r'either.fits.*\(3, 300, 3\).*channel_axis=0 or -1'):
        read_image(tmp_path / 'either.fits')
    assert read_image(tmp_path / 'either.fits', channel_axis=0).data.shape == (3, 300, 3)
    assert read_image(write_image(tmp_path / 'grey.fits', rgb[..., 0])).channel_axis is None
    with pytest.raises(ValueError, match='channel_axis must be 0'):
        read_image(tmp_path / 'last.fits', channel_axis=1)
    tifffile.imwrite(tmp_path / 'rgb.tif', rgb, photometric='rgb')
    assert read_image(tmp_path / 'rgb.tif').channel_axis == -1
    with pytest.raises(ValueError, match='channel_axis= applies to FITS files only'):
        read_image(tmp_path / 'rgb.tif', channel_axis=-1)


@pytest.mark.parametrize('suffix', ['.fits', '.xisf', '.tif'])
def test_non_ascii_names_are_stored_escaped(tmp_path, suffix):
    # Finding B1: "FITS header values must contain standard printable ASCII characters".
    data = np.ones((10, 12), np.float32)
    out = write_image(tmp_path / f'résultat ✓{suffix}', data,
                      provenance={'input': 'imäge ✓.fits', 'tab': 'a\tb'},
                      history='from imäge ✓.fits')
    image = read_image(out)
    assert np.array_equal(image.data, data)
    expected = r'input=im\xe4ge \u2713.fits, tab=a\tb'
    if suffix == '.tif':
        assert tifffile.TiffFile(out).shaped_metadata[0]['BGOPTPAR'] == expected
    else:
        assert image.header['BGOPTPAR'] == expected
        assert list(image.header['HISTORY']) == [r'from im\xe4ge \u2713.fits']


def test_pixel_types_no_format_stores(tmp_path):
    # Finding B9: complex, bool and float16 raised a bare KeyError.
    with pytest.raises(TypeError, match='cannot write complex64 pixels.*real part'):
        write_image(tmp_path / 'c.fits', np.zeros((4, 4), np.complex64))
    with pytest.raises(TypeError, match='cannot write complex128'):
        write_image(tmp_path / 'c.fits', np.zeros((4, 4)),
                    extra_hdus={'BACKGROUND': np.zeros((4, 4), complex)})
    with pytest.raises(TypeError, match='cannot write <U1 pixels.*convert them to integers'):
        write_image(tmp_path / 'c.tif', np.full((4, 4), 'a'))
    assert not list(tmp_path.iterdir())
    flags = np.eye(4, dtype=bool)
    half = np.linspace(0, 1, 16, dtype='>f2').reshape(4, 4)
    for suffix in ('.fits', '.xisf', '.tif'):
        stored = read_image(write_image(tmp_path / f'bool{suffix}', flags)).data
        assert stored.dtype == np.uint8 and np.array_equal(stored, flags)
        stored = read_image(write_image(tmp_path / f'half{suffix}', half)).data
        assert stored.dtype == np.float32 and np.array_equal(stored, half)


@pytest.mark.parametrize('suffix', ['.fits', '.xisf', '.tif'])
def test_big_endian_pixels_are_written_native(tmp_path, suffix):
    # Finding C9: "XISF cannot store >f4 pixels".
    data = np.arange(20, dtype='>f4').reshape(4, 5)
    image = read_image(write_image(tmp_path / f'be{suffix}', data))
    assert image.data.dtype == np.float32 and np.array_equal(image.data, data)


def test_hdu_out_of_range_lists_the_hdus(fits_image):
    # Finding C2: --hdu 5 said "list index out of range".
    path, data = fits_image
    with pytest.raises(ValueError, match=r'there is no HDU 5: the file has HDUs 0 to 0 '
                                         r'\(0: PRIMARY'):
        read_image(path, hdu=5)
    assert read_image(path, hdu=-1).hdu == 0


def test_directory_is_not_called_missing(tmp_path):
    # Finding C10: a directory named *.fits was said not to exist.
    (tmp_path / 'folder.fits').mkdir()
    with pytest.raises(ValueError, match='folder.fits.* is a directory, not an image file'):
        read_image(tmp_path / 'folder.fits')


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from astrobgopt.io import _replace_atomically

def write_then_die(temporary):
    temporary.write_bytes(b'half-written')
    os.kill(os.getpid(), signal.SIGKILL)

_replace_atomically(Path(sys.argv[1]), write_then_die)
"""


@pytest.mark.skipif(os.name != 'posix', reason='stranded temporaries are found by PID on POSIX')
def test_rerun_removes_temporaries_a_killed_writer_left(tmp_path):
    # Finding "Leftovers": kill -9 mid-write stranded hidden .tmp-* files.
    target = tmp_path / 'out.fits'
    other = tmp_path / 'other.fits'
    for path in (target, other):
        killed = subprocess.run([sys.executable, '-c', KILLED_WRITER, str(path)],
                                env={**os.environ, 'PYTHONPATH': str(Path(__file__).parents[1])})
        assert killed.returncode == -signal.SIGKILL
    stranded = sorted(p.name for p in tmp_path.iterdir())
    assert len(stranded) == 2 and all(name.startswith('.tmp-astrobgopt-') for name in stranded)
    # A temporary of a writer that still runs (this process) is left alone:
    # .tmp-astrobgopt-<host>-<pid>-<random>-<name>
    fields = next(name for name in stranded if name.endswith('-out.fits')).split('-', 5)
    fields[3] = str(os.getpid())
    live = tmp_path / '-'.join(fields)
    live.write_bytes(b'being written')

    write_image(target, np.zeros((4, 4), np.float32))
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([live.name, target.name, *(n for n in stranded if 'other' in n)])
