"""Banding configuration as data: YAML files under ``models/banding/`` validated with pydantic.

``models/banding/banding.yaml`` says which model is the champion and where each model's own
config lives; ``cqc2013.yaml`` holds the replica's points, cut-points and overrides;
``learned.yaml`` the learned model's features and classifier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from surveillance.errors import ConfigError

MODELS_DIR = Path(__file__).resolve().parents[2] / "models" / "banding"
N_BANDS = 6
#: The October 2013 band sizes over 161 trusts: 24, 20, 30, 49 over bands 4-5, 38. The split of
#: the 49 between bands 4 and 5 was not published; 25/24 is our choice.
OCTOBER_2013_BAND_SIZES = (24, 20, 30, 25, 24, 38)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Points(_Strict):
    """Points per flag (CQC Intelligent Monitoring 2013: 0 / 1 / 2)."""

    no_evidence: int = 0
    risk: int = 1
    elevated_risk: int = 2

    @model_validator(mode="after")
    def _ordered(self) -> Points:
        if not (0 <= self.no_evidence <= self.risk <= self.elevated_risk):
            raise ValueError("points must satisfy 0 <= no_evidence <= risk <= elevated_risk")
        return self


DEFAULT_POINTS = Points()


class Overrides(_Strict):
    """Rules that replace the score-based band."""

    special_measures_band: int | None = Field(1, ge=1, le=N_BANDS)
    recent_inspection_months: int = Field(6, ge=0)
    #: at least 1: a trust with no applicable indicator has no proportion score, and its band
    #: would be the band_from_proportion placeholder 0, outside the contract's 1-6
    min_applicable: int = Field(10, ge=1)


class Uncertainty(_Strict):
    """Band uncertainty by parametric bootstrap of the adjusted z-scores."""

    n_draws: int = Field(1000, ge=1000)
    seed: int = 20131024
    method: Literal["bootstrap", "posterior_predictive"] = "bootstrap"


class CQC2013Config(_Strict):
    """The CQC-2013 replica: points, proportion score, six bands by cut-points."""

    model: Literal["cqc2013"] = "cqc2013"
    description: str = ""
    points: Points = Points()
    cut_points: tuple[float, float, float, float, float]
    band_sizes_reference: tuple[int, int, int, int, int, int] = OCTOBER_2013_BAND_SIZES
    overrides: Overrides = Overrides()
    uncertainty: Uncertainty = Uncertainty()

    @field_validator("cut_points")
    @classmethod
    def _descending(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(a <= b for a, b in zip(v, v[1:], strict=False)):
            raise ValueError(f"cut_points must be strictly descending (band 1 first), got {v}")
        if any(not 0.0 <= c <= 1.0 for c in v):
            raise ValueError(f"cut_points are proportion scores in [0, 1], got {v}")
        return v


class LearnedFeatures(_Strict):
    clip: float = Field(6.0, gt=0)
    z_threshold: float = 2.0
    domains: tuple[str, ...] = ("safe", "effective", "caring", "responsive", "well_led")
    use_inspection_history: bool = True


class Classifier(_Strict):
    C: float = Field(0.3, gt=0)
    calibration: Literal["sigmoid", "isotonic", "none"] = "sigmoid"
    cv: int = Field(5, ge=2)
    seed: int = 0


class LearnedConfig(_Strict):
    """The learned banding model: domain-aggregated z magnitudes + inspection history."""

    model: Literal["learned"] = "learned"
    description: str = ""
    features: LearnedFeatures = LearnedFeatures()
    classifier: Classifier = Classifier()
    band_sizes_reference: tuple[int, int, int, int, int, int] = OCTOBER_2013_BAND_SIZES
    failing_ratings: tuple[str, ...] = ("Inadequate", "Requires improvement")
    overrides: Overrides = Overrides()


class BandingSelection(_Strict):
    """Which model is the champion and the two model configs."""

    champion: Literal["cqc2013", "learned"] = "cqc2013"
    cqc2013: CQC2013Config
    learned: LearnedConfig


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: banding config not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _validated(model: type[BaseModel], data: dict, path: Path) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errs = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path}: invalid banding config: {errs}") from exc


def load_cqc2013_config(path: Path | None = None) -> CQC2013Config:
    path = Path(path) if path else MODELS_DIR / "cqc2013.yaml"
    return _validated(CQC2013Config, _read_yaml(path), path)  # type: ignore[return-value]


def load_learned_config(path: Path | None = None) -> LearnedConfig:
    path = Path(path) if path else MODELS_DIR / "learned.yaml"
    return _validated(LearnedConfig, _read_yaml(path), path)  # type: ignore[return-value]


def load_banding_config(path: Path | None = None) -> BandingSelection:
    """Load ``banding.yaml`` (champion + paths of the two model configs, relative to it)."""
    path = Path(path) if path else MODELS_DIR / "banding.yaml"
    data = _read_yaml(path)
    base = path.parent
    cqc_path = base / data.pop("cqc2013", "cqc2013.yaml")
    learned_path = base / data.pop("learned", "learned.yaml")
    data["cqc2013"] = load_cqc2013_config(cqc_path)
    data["learned"] = load_learned_config(learned_path)
    return _validated(BandingSelection, data, path)  # type: ignore[return-value]
