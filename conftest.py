"""
pytest configuration for the shared trial/pytest suite.

No reactor is imported here: importing it would install the default reactor before
pytest-twisted or ``--reactor`` could choose one.
"""

import pytest


@pytest.fixture(autouse=True)
def _scratch_directory(tmp_path, monkeypatch):
    """
    Run every test in its own directory, so trial's ``mktemp()`` does not litter the
    checkout when pytest runs the suite.
    """
    monkeypatch.chdir(tmp_path)
