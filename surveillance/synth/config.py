"""Parameters of the synthetic nation, read from the YAML/CSV data files beside this module."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from surveillance.errors import ConfigError

HERE = Path(__file__).resolve().parent
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available
DOMAINS = ("safe", "effective", "caring", "responsive", "well_led")
WORLDS = ("default", "harder")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sizes(_Strict):
    national_total: int = Field(gt=0)
    median: float = Field(gt=0)
    minimum: float = Field(gt=0)
    maximum: float = Field(gt=0)
    specialist_shift: float
    annual_growth: float
    seasonal_amplitude: float = Field(ge=0, lt=1)


class Quality(_Strict):
    domains: list[str]
    correlation: float = Field(ge=0, lt=1)
    failing_fraction: float = Field(ge=0, le=0.5)
    failing_shift: dict[str, float]
    drift_rho: float = Field(ge=0, lt=1)
    drift_sd: float = Field(ge=0)

    @model_validator(mode="after")
    def _domains(self) -> Quality:
        if tuple(self.domains) != DOMAINS or set(self.failing_shift) != set(DOMAINS):
            raise ValueError(f"quality domains must be {DOMAINS}")
        return self


class SpecialMeasures(_Strict):
    count: int = Field(ge=0)
    from_failing: int = Field(ge=0)
    start_date: str


class Recoding(_Strict):
    palliative: int = Field(ge=0)
    comorbidity: int = Field(ge=0)
    palliative_rate_after: float = Field(gt=0, le=1)
    comorbidity_extra: float = Field(gt=0)


class Mortality(_Strict):
    effective_sd: float = Field(ge=0)
    trust_noise_sd: float = Field(ge=0)
    in_hospital_share: float = Field(gt=0, le=1)
    palliative_death_rate: tuple[float, float]
    palliative_survivor_ratio: float = Field(ge=0, le=1)
    coding_depth_mean: float = Field(ge=0)
    deprivation_missing: tuple[float, float]
    deteriorations: int = Field(ge=0)
    odds_ratio_range: tuple[float, float]
    recoding: Recoding


class Inspections(_Strict):
    first_quarter: str
    per_quarter: float = Field(ge=0, le=1)
    never_inspected: float = Field(ge=0, le=1)
    noise_sd: float = Field(ge=0)
    thresholds: dict[str, float]

    @model_validator(mode="after")
    def _ratings(self) -> Inspections:
        if list(self.thresholds) != ["Outstanding", "Good", "Requires improvement"]:
            raise ValueError("inspection thresholds: Outstanding, Good, Requires improvement")
        return self


class Staffing(_Strict):
    spells_per_ward: float = Field(gt=0)
    min_wards: int = Field(gt=0)
    max_wards: int = Field(gt=0)
    ward_share_by_scale: dict[str, float] = Field(default_factory=dict)
    rn_day_hours: float = Field(gt=0)
    fill_mean: float = Field(gt=0)
    fill_quality_slope: float
    ward_sd: float = Field(ge=0)
    month_sd: float = Field(ge=0)


class WorseMinority(_Strict):
    """A minority of clearly worse trusts on top of the symmetric spread of trust effects."""

    fraction: float = Field(ge=0, le=0.5)
    logit_shift: tuple[float, float]  # uniform range of the extra logit-scale effect
    specialist_weight: float = Field(ge=0)  # selection weight of a specialist trust (general = 1)


class PalliativeTruth(_Strict):
    """Palliative care as a TRUE patient attribute (prevalence model and effect on death)."""

    intercept: float  # logit prevalence at age 65, no comorbidity, elective
    age_per_decade: float
    comorbidity: float  # per point of true comorbidity (capped as in the risk model)
    emergency: float
    log_odds_ratio: float = Field(gt=0)  # true effect on the logit of 30-day death
    sensitivity: tuple[float, float]  # uniform range of trusts' coding rate of true palliative


class AgeHinge(_Strict):
    knot: float  # years
    slope_per_year: float  # added to the logit per year of age past the knot


class DeprivationGaps(_Strict):
    trusts: int = Field(ge=0)
    missing_share: tuple[float, float]  # uniform range of those trusts' missing share


class HarderDeteriorations(_Strict):
    count: int = Field(ge=0)  # planted charts, clusters included
    large_charts: int = Field(ge=0)  # of them drawn with weight (expected deaths)^2
    odds_ratios: list[float]  # used in equal numbers (about half each for two)
    start_months: int = Field(ge=1, le=12)  # start in the first this-many monitored months
    clusters: int = Field(ge=0)  # diagnosis groups in which several trusts deteriorate at once
    cluster_size: tuple[int, int]  # inclusive range of trusts per clustered group
    cluster_start_spread: int = Field(ge=0)  # months either side of a cluster's common start

    @model_validator(mode="after")
    def _sizes(self) -> HarderDeteriorations:
        lo, hi = self.cluster_size
        if not 1 <= lo <= hi or self.clusters * hi > self.count:
            raise ValueError(
                "deteriorations: need 1 <= cluster_size[0] <= cluster_size[1] and "
                "clusters x cluster_size[1] <= count"
            )
        if not self.odds_ratios or min(self.odds_ratios) <= 1:
            raise ValueError("deteriorations: odds_ratios must be a non-empty list of values > 1")
        return self


class HarderWorld(_Strict):
    """The ``harder`` world: departures from the default nation that a fitted model must survive.

    The true model gains a palliative-care term, age hinges, a cosine winter effect and its own
    year trend; see nation.yaml (``worlds: harder``) and the README.
    """

    worse_minority: WorseMinority
    palliative: PalliativeTruth
    age_hinges: list[AgeHinge]
    year: float  # logit change per year since 2012-01 (replaces risk_model.yaml's `year`)
    winter_amplitude: float = Field(ge=0)  # amplitude x cos(2 pi (month - 1) / 12): peak January
    deprivation_gaps: DeprivationGaps
    deteriorations: HarderDeteriorations


class NationConfig(_Strict):
    """Everything that shapes the synthetic nation except the indicator profiles."""

    n_trusts: int = Field(gt=0)
    n_specialist: int = Field(ge=0)
    epoch: str
    sizes: Sizes
    quality: Quality
    special_measures: SpecialMeasures
    foundation_share: float = Field(ge=0, le=1)
    foundation_share_failing: float = Field(ge=0, le=1)
    regions: dict[str, int]
    specialist_types: dict[str, int]
    specialist_own_share: float = Field(ge=0, le=1)
    mortality: Mortality
    scales: dict[str, int]
    inspections: Inspections
    staffing: Staffing
    intelligence: dict[str, float]
    harder: HarderWorld  # the `--world harder` overlay (the default world ignores it)

    @model_validator(mode="after")
    def _counts(self) -> NationConfig:
        if sum(self.regions.values()) != self.n_trusts:
            raise ValueError("region trust counts must add up to n_trusts")
        if sum(self.specialist_types.values()) != self.n_specialist:
            raise ValueError("specialist_types counts must add up to n_specialist")
        return self


class RiskModelCoefficients(_Strict):
    """True logistic coefficients of 30-day death (see risk_model.yaml for the formula)."""

    age_per_decade: float
    age_squared: float
    male: float
    emergency: float
    comorbidity: float
    comorbidity_cap: int = Field(gt=0)
    deprivation: float
    winter: float
    year: float


def _read_yaml(path: Path) -> dict:
    try:
        return yaml.load(path.read_text(), Loader=_LOADER)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from exc


@lru_cache(maxsize=4)
def load_nation_config(path: Path | None = None) -> NationConfig:
    path = path or HERE / "nation.yaml"
    try:
        return NationConfig.model_validate(_read_yaml(path))
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


@lru_cache(maxsize=4)
def load_risk_model(path: Path | None = None) -> RiskModelCoefficients:
    path = path or HERE / "risk_model.yaml"
    try:
        return RiskModelCoefficients.model_validate(_read_yaml(path))
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


_GROUP_COLUMNS = {
    "diagnosis_group": str,
    "volume_weight": float,
    "base_mortality": float,
    "mean_age": float,
    "sd_age": float,
    "male_share": float,
    "elective_share": float,
    "mean_los": float,
    "specialty": str,
    "min_age": int,
    "max_age": int,
}


def load_diagnosis_groups(path: Path | None = None) -> pd.DataFrame:
    """Diagnosis groups with volume weights, base 30-day mortality and case-mix parameters."""
    path = path or HERE / "diagnosis_groups.csv"
    frame = pd.read_csv(path, dtype=_GROUP_COLUMNS, keep_default_na=False)
    missing = set(_GROUP_COLUMNS) - set(frame.columns)
    if missing:
        raise ConfigError(f"{path}: missing column(s) {sorted(missing)}")
    dup = frame["diagnosis_group"].duplicated()
    if dup.any():
        rows = (np.flatnonzero(dup) + 1).tolist()
        raise ConfigError(f"{path} row(s) {rows} column 'diagnosis_group': duplicate group")
    for col, lo, hi in (("base_mortality", 0, 1), ("male_share", 0, 1), ("elective_share", 0, 1)):
        bad = ~frame[col].between(lo, hi)
        if bad.any():
            rows = (np.flatnonzero(bad) + 1).tolist()
            raise ConfigError(f"{path} row(s) {rows} column '{col}': must be in [{lo}, {hi}]")
    if (frame["volume_weight"] <= 0).any() or (frame["base_mortality"] <= 0).any():
        raise ConfigError(f"{path}: volume_weight and base_mortality must be > 0")
    return frame
