"""
The optimizer's compiled program kept on disk between processes
(`astrobgopt._program_cache`): stored by the first process, loaded by the
next with the same results, replaced when damaged or of other code, and
never written where the configuration turns it off.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose

from astrobgopt import _program_cache
from astrobgopt._startup import import_tensorflow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One fit that runs the optimizer, in a fresh process; prints the programs it
# loaded from the cache and saves its background.
FIT_SCRIPT = """
import json, sys
import numpy as np
from astrobgopt import SplineOptBackground, _program_cache
from astrobgopt.datasets import make_light_pollution_sky
from astrobgopt.optimize import conf
conf.cache_compiled_program = {enabled}
image = make_light_pollution_sky((128, 160), seed=3).image
result = SplineOptBackground(n_points=16, epochs=40, mask_extended=False)(image)
assert result.model.stop_reason != 'no optimizer steps: robust initialization only'
np.save({output!r}, result.background)
print(json.dumps(sorted(_program_cache.loaded)))
"""


def _run_in_new_process(script, cache_home):
    """
    Run ``script`` in a fresh Python with ``cache_home`` as $XDG_CACHE_HOME
    (its astrobgopt directory created) and TensorFlow's log settings unset;
    return the finished process, which must have succeeded.
    """
    os.makedirs(cache_home / 'astrobgopt', exist_ok=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith('TF_')}
    env.update(XDG_CACHE_HOME=str(cache_home),
               PYTHONPATH=os.pathsep.join(p for p in [ROOT, env.get('PYTHONPATH')] if p))
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def _fit_in_new_process(cache_home, output, *, enabled=True):
    """The programs a fresh process's fit loaded, with ``cache_home`` as
    $XDG_CACHE_HOME; its stderr must be empty (a quiet library)."""
    done = _run_in_new_process(FIT_SCRIPT.format(enabled=enabled, output=str(output)),
                               cache_home)
    assert done.stderr == ''
    return json.loads(done.stdout.strip().splitlines()[-1])


def _programs(cache_home):
    return sorted(path.name for path in (cache_home / 'astrobgopt' / 'compiled').iterdir())


def test_a_program_stored_by_one_process_is_loaded_by_the_next_and_fits_alike(tmp_path):
    cache = tmp_path / 'cache'
    stale = cache / 'astrobgopt' / 'compiled' / 'optimizer-robust-2-None-0123456789abcdef0123'
    stale.mkdir(parents=True)  # the same program of an earlier version
    assert _fit_in_new_process(cache, tmp_path / 'first.npy') == []
    stored = _programs(cache)
    assert len(stored) == 1 and stored[0].startswith('optimizer-robust-2-None-')
    assert stored[0] != stale.name  # replaced by this version's

    assert _fit_in_new_process(cache, tmp_path / 'second.npy') == stored
    assert _programs(cache) == stored
    # Off: nothing written, the program traced as without the cache.
    other = tmp_path / 'off'
    assert _fit_in_new_process(other, tmp_path / 'off.npy', enabled=False) == []
    assert not (other / 'astrobgopt' / 'compiled').exists()

    first = np.load(tmp_path / 'first.npy')
    assert_allclose(np.load(tmp_path / 'second.npy'), first, rtol=1e-6, atol=0)
    assert_allclose(np.load(tmp_path / 'off.npy'), first, rtol=1e-6, atol=0)


@pytest.fixture
def cache_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(_program_cache, '_directory', lambda: tmp_path)
    return tmp_path


def _doubling():
    tf = import_tensorflow()
    return tf.function(lambda x: 2 * x, input_signature=[tf.TensorSpec(None, tf.float32)],
                       autograph=False)


def test_store_then_load_gives_the_same_function(cache_directory):
    _program_cache.store('double-abc', _doubling())
    assert [path.name for path in cache_directory.iterdir()] == ['double-abc']
    loaded = _program_cache.load('double-abc')
    assert np.array_equal(loaded(np.array([1.5, -2.0], np.float32)).numpy(), [3.0, -4.0])
    assert _program_cache.load('double-other') is None


def test_a_damaged_program_is_removed_and_stored_anew(cache_directory):
    damaged = cache_directory / 'double-abc'
    damaged.mkdir()
    (damaged / 'saved_model.pb').write_bytes(b'not a program')
    assert _program_cache.load('double-abc') is None
    assert not damaged.exists()
    _program_cache.store('double-abc', _doubling())
    assert _program_cache.load('double-abc') is not None


def test_nothing_is_stored_without_a_cache_directory(monkeypatch):
    monkeypatch.setattr(_program_cache, '_directory', lambda: None)
    _program_cache.store('double-abc', _doubling())  # no error
    assert _program_cache.load('double-abc') is None


def test_the_name_follows_the_code_and_the_device():
    name = _program_cache.program_name('optimizer', 'robust', 2, None, device='CPU')
    assert name.startswith('optimizer-robust-2-None-')
    assert name == _program_cache.program_name('optimizer', 'robust', 2, None, device='CPU')
    assert name != _program_cache.program_name('optimizer', 'robust', 2, None, device='GPU (x)')


# A fit traces the program; a child forked afterwards exits normally, which
# runs the exit handlers it inherited; the parent then exits without them.
FORKED_EXIT_SCRIPT = """
import os, sys
from astrobgopt import SplineOptBackground
from astrobgopt.datasets import make_light_pollution_sky
image = make_light_pollution_sky((128, 160), seed=3).image
SplineOptBackground(n_points=16, epochs=40, mask_extended=False)(image)
child = os.fork()
if child == 0:
    sys.exit(0)
os.waitpid(child, 0)
os._exit(0)
"""


def test_only_the_process_that_traced_the_program_stores_it(tmp_path):
    # A forked child may not run TensorFlow: it must leave the store to its
    # parent (which here exits without its handlers, so nothing is stored).
    cache = tmp_path / 'cache'
    _run_in_new_process(FORKED_EXIT_SCRIPT, cache)
    compiled = cache / 'astrobgopt' / 'compiled'
    assert not compiled.exists() or list(compiled.iterdir()) == []
