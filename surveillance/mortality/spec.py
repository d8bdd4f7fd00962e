"""Risk-model specifications as data (``models/risk/*.yaml``), validated with pydantic."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from surveillance.errors import ConfigError

RISK_DIR = Path(__file__).resolve().parents[2] / "models" / "risk"
DEFAULT_SPEC = RISK_DIR / "default.yaml"
#: the alert charts' model (HSMR-style covariates, typical-trust baseline)
ALERT_SPEC = RISK_DIR / "alert.yaml"

COVARIATE_NAMES = (
    "age_band",
    "sex",
    "admission_method",
    "comorbidity_band",
    "deprivation",
    "admission_month",
    "year_index",
    "palliative",
)


class BandedCovariate(BaseModel):
    """A numeric column cut into bands at ``edges`` (left edges, first edge the minimum)."""

    model_config = ConfigDict(extra="forbid")
    source: str
    edges: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _increasing(self) -> BandedCovariate:
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError(f"edges must increase strictly, got {self.edges}")
        return self


class LevelsCovariate(BaseModel):
    """A categorical column with fixed levels (first level is the reference)."""

    model_config = ConfigDict(extra="forbid")
    source: str
    levels: list[str] = Field(min_length=1)
    missing_level: bool = False


class MonthCovariate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = "admission_date"
    encoding: Literal["month", "season"] = "month"


class YearCovariate(BaseModel):
    """Years before the reference month (0 = the 12 months ending there).

    ``levels``: one dummy per year (SHMI's year of discharge); ``linear``: one coefficient per
    year (a trend, HSMR style), which also predicts years the fit did not see (a lagged fit).
    """

    model_config = ConfigDict(extra="forbid")
    source: str = "admission_date"
    encoding: Literal["levels", "linear"] = "levels"


class FlagCovariate(BaseModel):
    """A true/false column as a two-level covariate (false is the reference).

    ``charts`` (palliative care only): ``spell`` = the alert charts' risk uses each spell's own
    code; ``trust_rate`` = the code the trust gave such patients in phase I instead
    (:mod:`surveillance.mortality.palliative`: the code is partly an outcome).
    """

    model_config = ConfigDict(extra="forbid")
    source: str
    charts: Literal["spell", "trust_rate"] = "spell"


class Covariates(BaseModel):
    model_config = ConfigDict(extra="forbid")
    age_band: BandedCovariate
    sex: LevelsCovariate
    admission_method: LevelsCovariate
    comorbidity_band: BandedCovariate
    deprivation: LevelsCovariate
    admission_month: MonthCovariate = MonthCovariate()
    year_index: YearCovariate = YearCovariate()
    # palliative-care coding: an adjustment in HSMR-style models (Dr Foster / Imperial), never in
    # SHMI (reported as context there); absent = one level, the pattern space is unchanged
    palliative: FlagCovariate | None = None


class ModelLevel(BaseModel):
    """One rung of the fallback ladder: covariates used and the minimum sizes to use it."""

    model_config = ConfigDict(extra="forbid")
    name: str
    covariates: list[str]
    min_spells: int = Field(ge=0)
    min_deaths: int = Field(ge=0)

    @model_validator(mode="after")
    def _known(self) -> ModelLevel:
        unknown = [c for c in self.covariates if c not in COVARIATE_NAMES]
        if unknown:
            raise ValueError(f"level {self.name!r}: unknown covariates {unknown}")
        return self


class BaselineSpec(BaseModel):
    """How the alert charts' in-control risk is set from the fitted model.

    ``national``: the model as fitted (expected = observed nationally, the SHMI convention).
    ``typical_trust``: the risk of a typical trust, by a robust two-way (trust x diagnosis group)
    Huber M-estimate on the fit window's cells (:mod:`surveillance.mortality.baseline`).
    """

    model_config = ConfigDict(extra="forbid")
    method: Literal["national", "typical_trust"] = "national"
    huber_c: float = Field(2.0, gt=0)  # Huber tuning constant on Pearson residuals
    min_trust_expected: float = Field(20.0, ge=0)  # trusts entering the typical-trust location
    # the typical trust: the median of the trust effects, or their median weighted by each
    # trust's expected deaths (the trust of the typical death)
    location: Literal["median", "weighted_median"] = "median"
    max_iter: int = Field(100, ge=1)
    tol: float = Field(1e-9, gt=0)


class RiskSpec(BaseModel):
    """Validated risk-model specification (see ``models/risk/default.yaml``)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    outcome: Literal["died_30d", "died_in_hospital"] = "died_30d"
    fit_months: int = Field(36, ge=12)
    # the fit window ends this many months before the quarter end (a phase I fit that leaves the
    # monitored months out, so a deterioration there cannot raise its own baseline; Steiner 2000)
    fit_lag_months: int = Field(0, ge=0)
    monitor_months: int = Field(12, ge=1)
    period_date: Literal["discharge_date", "admission_date"] = "discharge_date"
    ridge: float = Field(0.01, ge=0)
    # pseudo deaths and survivors for a group with no deaths (or no survivors) in the fit window:
    # 0 gives p = 0 (1), as SHMI; 0.5 (Jeffreys) a small rate, for charts whose fit window is
    # shorter than the data (a death in the monitored months would otherwise weigh log R_A at p=0)
    crude_prior: float = Field(0.0, ge=0)
    max_iter: int = Field(50, ge=1)
    tol: float = Field(1e-10, gt=0)
    covariates: Covariates
    levels: list[ModelLevel] = Field(min_length=1)
    contextual: list[str] = []
    baseline: BaselineSpec = BaselineSpec()

    @model_validator(mode="after")
    def _ladder(self) -> RiskSpec:
        if self.levels[-1].covariates:
            raise ValueError("the last fallback level must have no covariates (crude rate)")
        if self.levels[-1].min_spells > 1 or self.levels[-1].min_deaths > 0:
            raise ValueError("the last fallback level must accept any group (min sizes 1 and 0)")
        used = {c for lvl in self.levels for c in lvl.covariates}
        if "palliative" in used and self.covariates.palliative is None:
            raise ValueError("a level uses 'palliative' but covariates.palliative is not set")
        if (
            self.fit_lag_months
            and "year_index" in used
            and self.covariates.year_index.encoding != "linear"
        ):
            raise ValueError(
                "fit_lag_months > 0 needs year_index encoding 'linear' (the monitored year has "
                "no data of its own to estimate a year level from)"
            )
        return self

    @property
    def n_years(self) -> int:
        """Levels of the year index: the years from the quarter end back to the fit start."""
        return -(-(self.fit_months + self.fit_lag_months) // 12)

    def digest(self) -> str:
        """sha256 of the canonical JSON form (for manifests and MLflow params)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


def load_risk_spec(path: Path | str | None = None) -> RiskSpec:
    """Read and validate a risk-model spec; raises :class:`ConfigError` naming the file."""
    path = Path(path) if path is not None else DEFAULT_SPEC
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read risk-model spec: {exc}") from exc
    try:
        return RiskSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid risk-model spec:\n{exc}") from exc
