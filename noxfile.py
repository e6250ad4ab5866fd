"""The test matrix: ``nox -s tests`` runs the suite (SQLite) on Python 3.12 and 3.13 with
Django 5.2 and 6.1; ``nox -s django_prerelease`` probes the newest Django pre-release for the
private internals django_dbperf depends on, then runs the tests that exercise them.

``make test`` covers the matrix's corners without nox (Python 3.12 + Django 5.2, Python 3.13 +
Django 6.1, with PostgreSQL and Redis too); ``make test-prerelease`` runs the second session.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import nox

PYTHONS = ["3.12", "3.13"]
DJANGO = {"5.2": "Django>=5.2,<5.3", "6.1": "Django>=6.1,<6.2"}
# The tests of the files scripts/django_internals.py lists (cache/shape.py, cache/payload.py,
# capture/, managers.py, integrations/nplusone.py, stats/flusher.py), and of the probe.
INTERNALS_TESTS = [
    "tests/test_django_internals.py",
    "tests/test_cache_shape.py",
    "tests/test_cache_differential.py",
    "tests/test_cache_payload.py",
    "tests/test_cache.py",
    "tests/test_cache_narrow.py",
    "tests/test_capture.py",
    "tests/test_callsites.py",
    "tests/test_managers.py",
    "tests/test_nplusone_detection.py",
    "tests/test_nplusone_integration.py",
    "tests/test_stats.py",
]
PYTEST = ["pytest", "-q", "-p", "no:cacheprovider"]

nox.options.envdir = ".venv-nox"  # beside .venv, and ignored like it (.venv-*/)
nox.options.sessions = ["tests"]
nox.options.reuse_venv = "yes"


def _pyenv_pythons() -> list[str]:
    """pyenv's own bin directories of 3.12 and 3.13: its shims answer only for the versions
    selected (``pyenv global``), so nox would find a python3.13 that refuses to run."""
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    found = []
    for version in PYTHONS:
        found += sorted(glob.glob(f"{root}/versions/{version}.*/bin"), reverse=True)[:1]
    return found


os.environ["PATH"] = os.pathsep.join([*_pyenv_pythons(), os.environ.get("PATH", "")])


@nox.session(python=PYTHONS)
@nox.parametrize("django", list(DJANGO))
def tests(session: nox.Session, django: str) -> None:
    """The suite on SQLite (the packaging test runs in ``make test``: it builds the wheel)."""
    session.install("-e", ".[test]", DJANGO[django])
    session.run("python", "-m", "django", "--version")
    session.run(*PYTEST, "--ignore=tests/test_packaging.py", *session.posargs)


@nox.session(python=PYTHONS[-1])
def django_prerelease(session: nox.Session) -> None:
    """The newest Django, pre-releases included: the probe, then the tests behind it."""
    session.install("-e", ".[test]")
    session.install("--pre", "--upgrade", "Django")
    session.run("python", "-m", "django", "--version")
    probe = session.run("python", "scripts/django_internals.py", success_codes=[0, 1], silent=True)
    print(probe)
    # The tests run even when the probe found a break: they show what it breaks.
    session.run(*PYTEST, *(session.posargs or INTERNALS_TESTS))
    if not str(probe).rstrip().endswith(" 0 broken."):
        session.error("Private Django internals changed: see the BROKEN rows above.")
