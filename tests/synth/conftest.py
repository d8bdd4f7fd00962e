"""Fixtures for the synthetic-nation tests: one small nation (scale ``test``) per session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from surveillance.synth import synthesise

SEED = 2013
QUARTER = "2013Q3"
PREVIOUS = "2013Q2"


@pytest.fixture(scope="session")
def nation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "nation"
    synthesise(out, seed=SEED, scale="test", quarter=QUARTER, quarters=2)
    return out


@pytest.fixture(scope="session")
def truth(nation_dir: Path) -> dict:
    return json.loads((nation_dir / "ground_truth.json").read_text())


@pytest.fixture(scope="session")
def harder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The harder world at scale ``test`` (two bundles, oracle sidecar for the final one)."""
    out = tmp_path_factory.mktemp("synth") / "harder"
    synthesise(out, seed=SEED, scale="test", quarter=QUARTER, quarters=2, world="harder")
    return out


@pytest.fixture(scope="session")
def harder_truth(harder_dir: Path) -> dict:
    return json.loads((harder_dir / "ground_truth.json").read_text())
