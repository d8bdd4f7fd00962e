"""Fixtures for the contract tests: the packaged catalogue and a fresh valid bundle."""

from __future__ import annotations

import pandas as pd
import pytest
from contract_bundle import valid_frames

from surveillance.catalogue import load_catalogue


@pytest.fixture(scope="session")
def catalogue() -> pd.DataFrame:
    return load_catalogue()


@pytest.fixture()
def frames() -> dict[str, pd.DataFrame]:
    return valid_frames()
