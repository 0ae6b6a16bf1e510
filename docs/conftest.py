"""Doctests of the narrative docs: each page runs in a scratch directory."""
import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).parent.parent / 'tests' / 'data'


@pytest.fixture(autouse=True)
def _scratch_directory(tmp_path, monkeypatch):
    # The pages read and write files by bare name, as a script in a working
    # directory would; the region file of docs/ccdproc.rst lives with the tests.
    shutil.copy(DATA / 'a8280271_stars.reg', tmp_path)
    monkeypatch.chdir(tmp_path)
