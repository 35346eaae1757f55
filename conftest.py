"""
pytest configuration for the shared trial/pytest suite.

No reactor is imported here: importing it would install the default reactor before
pytest-twisted or ``--reactor`` could choose one.
"""

import os

import pytest

#: Test processes per core for ``-n auto``: most of a test's time is spent waiting on the
#: servers and peers it starts, so one process per core leaves the cores half idle.
_WORKERS_PER_CORE = 2

#: The most test processes ``-n auto`` starts: ``tests.support.freePort`` has this many
#: blocks of ports, one per process.
_MOST_WORKERS = 16


def pytest_xdist_auto_num_workers(config):
    """
    ``-n auto``: :data:`_WORKERS_PER_CORE` test processes per core this process may run
    on, at most :data:`_MOST_WORKERS`; ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still overrides.
    """
    chosen = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "")
    if chosen.isdigit():
        return int(chosen)
    return min(_WORKERS_PER_CORE * len(os.sched_getaffinity(0)), _MOST_WORKERS)


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
