"""Fixtures for the mortality tests: a seeded simulated nation with known coefficients, a fitted
model and a small threshold surface (cached in a temporary directory)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from surveillance.mortality.monitor import threshold_surface
from surveillance.mortality.risk_model import RiskModel
from surveillance.mortality.simulate import Deterioration, simulate_spells

PLANTED = [Deterioration("T003", "G001", "2013-01", 3.0)]


@pytest.fixture(scope="session")
def sim():
    return simulate_spells(
        n_spells=240_000, n_trusts=16, n_groups=6, seed=11, trust_sd=0.1, deteriorations=PLANTED
    )


@pytest.fixture(scope="session")
def spells(sim) -> pd.DataFrame:
    return sim.spells


@pytest.fixture(scope="session")
def model(spells) -> RiskModel:
    return RiskModel().fit(spells, end="2013Q3")


@pytest.fixture(scope="session")
def p(model, spells) -> np.ndarray:
    return model.predict(spells)


@pytest.fixture(scope="session")
def surface(tmp_path_factory):
    """A coarse surface (fits in a few seconds); production uses the default grid."""
    return threshold_surface(
        volumes=np.unique(np.round(np.geomspace(3, 5000, 10))),
        mean_risks=np.array([0.003, 0.01, 0.03, 0.1, 0.3]),
        spreads=np.array([0.0, 0.8, 1.6]),
        delta=0.05,
        m_max=300,
        cache_dir=tmp_path_factory.mktemp("surface"),
    )


@pytest.fixture(scope="session")
def planted() -> list[Deterioration]:
    return PLANTED


@pytest.fixture(scope="session")
def make_chart_frame():
    return chart_frame


def chart_frame(
    trust: np.ndarray, group: np.ndarray, day: np.ndarray, died: np.ndarray
) -> pd.DataFrame:
    """Minimal spells frame for monitoring tests (dates as day offsets from 2012-10-01)."""
    d = np.datetime64("2012-10-01") + day.astype("timedelta64[D]")
    return pd.DataFrame(
        {
            "trust_code": trust,
            "diagnosis_group": group,
            "admission_date": d.astype("datetime64[ns]"),
            "discharge_date": d.astype("datetime64[ns]"),
            "died_30d": died.astype(bool),
            "palliative_care": np.zeros(len(day), bool),
            "comorbidity": np.zeros(len(day), np.int16),
        }
    )
