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


#: Names whose use in a test class means it starts real processes (servers, peers, builds,
#: the docs' commands): its tests are marked ``slow``.
_PROCESS_NAMES = frozenset(
    {
        "subprocess",
        "Popen",
        "spawnProcess",
        "startServer",
        "ServerProcess",
        "twistdArgv",
        "journeyArgv",
        "fallbackArgv",
        "runChild",
    }
)


def _names(code):
    """
    The global and attribute names ``code`` and the functions nested in it use.
    """
    names = set(code.co_names)
    for constant in code.co_consts:
        if hasattr(constant, "co_names"):
            names |= _names(constant)
    return names


def _startsProcesses(cls):
    """
    Whether any method of ``cls`` (or of its bases) uses one of ``_PROCESS_NAMES``.
    """
    for klass in cls.__mro__:
        for value in vars(klass).values():
            code = getattr(value, "__code__", None)
            if code is not None and _names(code) & _PROCESS_NAMES:
                return True
    return False


def pytest_collection_modifyitems(config, items):
    """
    Mark ``slow`` the tests of classes that start real processes, so that
    ``-m "not slow"`` runs the fast subset while working; the whole suite still runs
    without ``-m``.
    """
    verdicts = {}
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is None:
            continue
        if cls not in verdicts:
            verdicts[cls] = _startsProcesses(cls)
        if verdicts[cls]:
            item.add_marker(pytest.mark.slow)
