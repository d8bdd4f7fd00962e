"""Shared fixtures. `shared_dir` points at ../shared when present (oracles, real data)."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not present beside the project (oracles and real data live there)")
    return SHARED


@pytest.fixture(scope="session")
def oracle_dir(shared_dir: Path) -> Path:
    path = shared_dir / "oracles"
    if not path.is_dir():
        pytest.skip("../shared/oracles is not present")
    return path
