"""Tests of astrobgopt.chunked: images in bands of rows, larger than memory."""
import dask.array as da
import numpy as np
import pytest
from astropy.io import fits

from astrobgopt import SplineOptBackground, chunked
from astrobgopt.chunked import (ChunkedBackgroundResult, block_samples, create_fits,
                                fit_chunked)
from astrobgopt.datasets import make_light_pollution_sky
from astrobgopt.downsample import block_reduce_masked

SHAPE = (600, 900)


@pytest.fixture(scope='module')
def scene():
    sky = make_light_pollution_sky(SHAPE, seed=5)
    image = sky.image.copy()
    image[10:14, 300:305] = np.nan
    mask = np.zeros(SHAPE, dtype=bool)
    mask[400:470, 100:260] = True
    return image, mask


@pytest.fixture(scope='module')
def estimator():
    return SplineOptBackground(n_points=25, epochs=60, progress=False)


@pytest.fixture(scope='module')
def in_memory(scene, estimator):
    image, mask = scene
    return estimator(image, mask=mask)


@pytest.mark.parametrize('func', ['median', 'mean'])
def test_block_samples_in_tiles_equal_whole_image(func, monkeypatch):
    rng = np.random.default_rng(0)
    monkeypatch.setattr(chunked, 'BAND_PIXELS', 500)  # tiles of 7 x 70 pixels
    image = rng.normal(size=(530, 410, 1)).astype(np.float32)
    usable = (rng.uniform(size=(530, 410)) > 0.2).astype(np.float32)
    whole = block_reduce_masked(image, usable, 7, func=func)
    banded = block_samples(image, usable, 7, func=func)
    assert banded.values.shape == whole.values.shape
    np.testing.assert_array_equal(banded.values, whole.values)
    np.testing.assert_array_equal(banded.usable_fraction, whole.usable_fraction)
    np.testing.assert_array_equal(banded.y, whole.y)
    np.testing.assert_array_equal(banded.x, whole.x)
    if func == 'mean':
        assert banded.widths is None and whole.widths is None
    else:
        for banded_width, whole_width in zip(banded.widths, whole.widths, strict=True):
            np.testing.assert_array_equal(banded_width, whole_width)


def test_dask_image_gives_the_in_memory_background(scene, estimator, in_memory):
    image, mask = scene
    result = estimator(da.from_array(image, chunks=256), mask=da.from_array(mask, chunks=256))
    assert isinstance(result, ChunkedBackgroundResult)
    np.testing.assert_allclose(result.model.control_values, in_memory.model.control_values,
                               rtol=1e-12, atol=0)
    background = result.background.compute(scheduler='threads')
    scale = np.ptp(in_memory.background)
    np.testing.assert_allclose(background, in_memory.background, rtol=0, atol=1e-7 * scale)
    np.testing.assert_allclose(result.background_rms_mesh, in_memory._rms_mesh[..., 0],
                               rtol=1e-6, atol=0)
    np.testing.assert_allclose(result.background_rms.compute(), in_memory.background_rms,
                               rtol=1e-6, atol=0)
    np.testing.assert_allclose(result.subtracted.compute(), image - background, rtol=0,
                               atol=1e-6 * scale, equal_nan=True)


def test_a_crowded_field_gives_the_in_memory_rms_map():
    # In a crowded field (crowding weight 1) the RMS map leaves out the faint
    # stars a 3 x 3 mean finds, band by band: the same bands either way.
    from astrobgopt.validation import make_scene

    data = make_scene('milky_way', size=(720, 1080), seed=1).data
    estimator = SplineOptBackground(progress=False)
    in_memory = estimator(data)
    assert in_memory._samples.crowding_weight[0] == 1
    result = estimator(da.from_array(data, chunks=(180, 1080)))
    # The chunked path evaluates the model in float32: 2e-6 apart.
    np.testing.assert_allclose(result.background_rms_mesh, in_memory._rms_mesh[..., 0],
                               rtol=1e-5, atol=0)


def test_memmapped_fits_in_and_out(tmp_path, scene, estimator, in_memory):
    image, mask = scene
    fits.writeto(tmp_path / 'in.fits', image)
    # A memory map, and a section (read on demand, without one).
    with fits.open(tmp_path / 'in.fits', memmap=True) as hdul:
        mapped = fit_chunked(estimator, hdul[0].data, mask=mask, scheduler='sync')
        np.testing.assert_array_equal(mapped.background_rms_mesh, in_memory._rms_mesh[..., 0])
    with fits.open(tmp_path / 'in.fits', memmap=False) as hdul:
        result = fit_chunked(estimator, hdul[0].section, mask=mask, scheduler='sync')
        background = create_fits(tmp_path / 'bkg.fits', SHAPE, header=hdul[0].header)
        subtracted = create_fits(tmp_path / 'sub.fits', SHAPE)
        result.store(background=background, subtracted=subtracted)
        with pytest.raises(IndexError, match='whole rows'):
            background[:, :10] = 0
    scale = np.ptp(in_memory.background)
    written = fits.getdata(tmp_path / 'bkg.fits')
    assert written.shape == SHAPE
    np.testing.assert_allclose(written, in_memory.background, rtol=0, atol=1e-7 * scale)
    np.testing.assert_allclose(fits.getdata(tmp_path / 'sub.fits'), image - written, rtol=0,
                               atol=1e-6 * scale, equal_nan=True)
    with pytest.raises(OSError, match='exists'):
        create_fits(tmp_path / 'bkg.fits', SHAPE)


def test_chunked_rejects_what_it_cannot_do(scene):
    image, _ = scene
    chunked = da.from_array(image, chunks=256)
    with pytest.raises(ValueError, match='linear data'):
        SplineOptBackground(stretch='mtf', progress=False)(chunked)
    with pytest.raises(ValueError, match='mask= only'):
        SplineOptBackground(progress=False)(chunked, regions=[])
    with pytest.raises(ValueError, match='2-D'):
        SplineOptBackground(progress=False)(da.zeros((3, 60, 60), chunks=30))
    with pytest.raises(ValueError, match='shape of the data'):
        fit_chunked(SplineOptBackground(progress=False), chunked, mask=np.zeros((10, 10)))


def test_command_line_chunked(tmp_path, scene):
    from astrobgopt.cli import main

    image, _ = scene
    fits.writeto(tmp_path / 'mosaic.fits', image, header=fits.Header({'OBJECT': 'M31'}))
    options = ['-N', '25', '-e', '60']
    assert main([str(tmp_path / 'mosaic.fits'), '-o', str(tmp_path), '--chunked', '--quiet',
                 *options]) == 0
    model = fits.getdata(tmp_path / 'mosaic_bgModel.fits')
    expected = SplineOptBackground(n_points=25, epochs=60, progress=False)(image).background
    np.testing.assert_allclose(model, expected, rtol=0, atol=1e-7 * np.ptp(expected))
    subtracted = fits.getdata(tmp_path / 'mosaic_bgSubtracted.fits')
    np.testing.assert_allclose(subtracted, image - model, rtol=0, atol=1e-6, equal_nan=True)
    assert fits.getheader(tmp_path / 'mosaic_bgModel.fits')['OBJECT'] == 'M31'
    assert main([str(tmp_path / 'mosaic.fits'), '-o', str(tmp_path), '--chunked', '--quiet',
                 '--divide']) == 2
