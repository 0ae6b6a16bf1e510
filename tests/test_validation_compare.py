"""Tests of the estimator comparison and the report of astrobgopt.validation."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from photutils.background import Background2D

from astrobgopt import SplineOptBackground
from astrobgopt.validation import (Background2DEstimator, compare_backgrounds,
                                   default_estimators, iterative_source_mask,
                                   make_sinc_blemish_scene, notebook_estimators, run_validation,
                                   validation_main)


@pytest.fixture(scope='module')
def scene():
    return make_sinc_blemish_scene((240, 240), n_blemishes=2, n_sources=70, seed=1)


@pytest.fixture(scope='module')
def mask(scene):
    return iterative_source_mask(scene.scene - scene.noiseless)


class _Flat:
    """An estimator returning an object with a constant ``background``."""

    def __init__(self, level):
        self.background = level


def test_compare_scores_known_estimators(scene, mask, tmp_path):
    truth = scene.noiseless
    estimators = {
        'perfect': lambda data, mask: truth,
        'flat': lambda data, mask: _Flat(np.full(data.shape, np.median(data))),
        'leaky': lambda data, mask: truth + 0.01 * mask,
        'b2d': Background2DEstimator(24, filter_size=3),
    }
    table = compare_backgrounds(scene.scene, truth, estimators, mask=mask, widths=[2, 4, 8],
                                noise_residual=scene.noise_residual, sources=scene.sources,
                                output_dir=tmp_path)
    assert list(table['name']) == list(estimators)
    perfect, flat, leaky, b2d = table
    assert perfect['rms'] == 0 and perfect['peak'] == 0 and perfect['bias'] == 0
    assert flat['rms'] == pytest.approx(truth.std())
    assert flat['peak'] == pytest.approx((truth.mean() - truth).max())  # residual = c - truth
    assert leaky['bias'] == pytest.approx(0.01)
    assert leaky['bias_significance'] > 5 and leaky['bias_shifted_significance'] > 5
    assert 0 < b2d['rms'] < flat['rms']
    assert np.all(table['time_s'] >= 0)
    # The perfect estimate leaves the noise (and masked sources): ratio near 1 at all widths.
    np.testing.assert_allclose(perfect['rms_ratio'], 1.0, rtol=0.1)
    assert table['rms_ratio'].shape == (4, 3)
    assert table.meta['widths'] == [2, 4, 8]
    for name in ('residual_maps', 'rms_vs_scale', 'bias_perfect', 'bias_b2d'):
        assert Path(table.meta['figures'][name]).stat().st_size > 1000


def test_compare_without_mask_skips_the_bias_test(scene):
    table = compare_backgrounds(scene.scene, scene.noiseless,
                                {'perfect': lambda data, mask: scene.noiseless}, widths=[4])
    assert np.isnan(table['bias_significance'][0])
    assert 'rms_ratio' not in table.colnames and table.meta['figures'] == {}


@pytest.mark.parametrize('estimators, match', [
    ({}, 'empty'),
    ({'cropped': lambda data, mask: data[1:]}, 'shape'),
])
def test_compare_rejects_bad_estimators(scene, estimators, match):
    with pytest.raises(ValueError, match=match):
        compare_backgrounds(scene.scene, scene.noiseless, estimators)


def test_compare_rejects_non_callable_estimators(scene):
    with pytest.raises(TypeError, match='not callable|callables'):
        compare_backgrounds(scene.scene, scene.noiseless, {'array': scene.noiseless})


def test_compare_rejects_mismatched_truth(scene):
    with pytest.raises(ValueError, match='truth'):
        compare_backgrounds(scene.scene, scene.noiseless[:-1], {'x': lambda data, mask: data})


def test_notebook_estimators_rank_as_in_the_notebook(scene, mask):
    estimators = notebook_estimators()
    assert list(estimators) == ['B2D box50 f3', 'B2D box10 f5', 'B2D box10 f5 IDW',
                                'B2D box6 f3 IDW']
    rms = {}
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # photutils' deprecation warnings stay inside
        for name, estimator in estimators.items():
            background = estimator(scene.scene, mask=mask)
            assert isinstance(background, Background2D)
            rms[name] = (background.background - scene.noiseless).std()
    # The notebook's finest IDW configuration beats its coarse first attempt.
    assert rms['B2D box6 f3 IDW'] < 0.5 * rms['B2D box50 f3']


def test_default_estimators_add_the_spline():
    estimators = default_estimators()
    assert list(estimators)[:4] == list(notebook_estimators())
    spline = estimators['SplineOpt 256']
    assert isinstance(spline, SplineOptBackground)
    assert 'n_points=256' in repr(spline) and "initializer='grid'" in repr(spline)


def test_run_validation_writes_a_report(tmp_path):
    summary = run_validation(tmp_path, shape=(160, 160), n_sources=32, n_blemishes=2,
                             estimators=notebook_estimators(), widths=[2, 4, 8])
    assert len(summary['table']) == 4
    assert 0.05 < summary['mask_fraction'] < 0.5
    figures = json.loads(Path(summary['figures_json']).read_text())
    assert {figure['name'] for figure in figures} == set(summary['figures'])
    assert {'scene', 'residual_maps', 'rms_vs_scale'} <= set(summary['figures'])
    for figure in figures:
        assert (tmp_path / figure['file']).stat().st_size > 1000 and figure['caption']
    markdown = Path(summary['report_md']).read_text()
    html = Path(summary['report_html']).read_text()
    for name in notebook_estimators():
        assert name in markdown and name in html
    assert Path(summary['comparison']).exists()


def test_validation_main(tmp_path, capsys):
    assert validation_main(['-o', str(tmp_path), '--size', '128', '--notebook-only']) == 0
    assert 'B2D box6 f3 IDW' in capsys.readouterr().out
    assert (tmp_path / 'report.html').exists()
    with pytest.raises(SystemExit) as error:
        validation_main(['--size', '10'])
    assert error.value.code == 2
