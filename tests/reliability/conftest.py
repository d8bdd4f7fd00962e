"""Fixtures for the reliability tests: a fixed code version and one small published quarter."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parents[1]
for path in (HERE, HERE.parent / "contracts", PROJECT_ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

#: a fixed code version: other engineers commit while the tests run, and hashing the package's
#: source for every run would make two runs of one test differ for reasons outside the test.
CODE = {"package": "test", "git_commit": None, "source_sha256": "reliability-tests"}
QUARTER = "2013Q3"


@pytest.fixture(scope="session")
def code() -> dict:
    return dict(CODE)
