"""Mortality outlier programme: risk models, expected deaths, SHMI-style ratios, monthly
risk-adjusted CUSUM alerts and coding data-quality signals (METHODS.md section 5).

Typical use::

    model = RiskModel().fit(spells, end="2013Q3")          # 36 months of spells
    result = run_mortality(spells, "2013Q3", model)       # mortality.csv, alerts.csv, ...
    monthly = monitor_month(spells, model, "2013-10")     # next month, same model
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from surveillance.contracts import MORTALITY_COLUMNS
from surveillance.mortality.encode import read_spells
from surveillance.mortality.indicators import (
    alert_flags,
    load_indicator_groups,
    mortality_indicators,
)
from surveillance.mortality.monitor import (
    ALERT_COLUMNS,
    CusumSettings,
    monitor,
    monitor_month,
    threshold_surface,
)
from surveillance.mortality.quality import quality_by_quarter, quality_changes, quality_context
from surveillance.mortality.ratios import mortality_table
from surveillance.mortality.risk_model import RiskModel
from surveillance.mortality.spec import RiskSpec, load_risk_spec
from surveillance.periods import Quarter
from surveillance.stats.thresholds import ThresholdSurface


def expected_deaths(model: RiskModel, spells: pd.DataFrame) -> np.ndarray:
    """Expected deaths per spell: the fitted model's risk of the outcome (input order)."""
    return model.predict(spells)


@dataclass
class MortalityResult:
    mortality: pd.DataFrame  # mortality.csv
    alerts: pd.DataFrame  # alerts.csv (every signal in the 12-month window)
    indicators: pd.DataFrame  # indicators.csv-shaped rows for derived_from: spells indicators
    flags: pd.DataFrame  # mort_alert flags (elevated_risk when any alert in the quarter)
    quality: pd.DataFrame  # trust x quarter coding measures with change tests
    p: np.ndarray  # risk per spell


def run_mortality(
    spells: pd.DataFrame,
    quarter: Quarter | str,
    model: RiskModel | None = None,
    settings: CusumSettings | None = None,
    surface: ThresholdSurface | None = None,
) -> MortalityResult:
    """Everything the quarterly run needs from the spells (fits the model when not given)."""
    from surveillance.mortality.partials import run_in_memory

    done = run_in_memory(spells, quarter, model, settings, surface, keep_p=True)
    return MortalityResult(
        done.mortality, done.alerts, done.indicators, done.flags, done.quality, done.p
    )


__all__ = [
    "ALERT_COLUMNS",
    "MORTALITY_COLUMNS",
    "CusumSettings",
    "MortalityResult",
    "RiskModel",
    "RiskSpec",
    "alert_flags",
    "expected_deaths",
    "load_indicator_groups",
    "load_risk_spec",
    "monitor",
    "monitor_month",
    "mortality_indicators",
    "mortality_table",
    "quality_by_quarter",
    "quality_changes",
    "quality_context",
    "read_spells",
    "run_mortality",
    "threshold_surface",
]
