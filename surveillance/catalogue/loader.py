"""Load and validate the indicator catalogue (DESIGN.md section 5, docs/INTERFACES.md).

The catalogue is data (``indicators.yaml``); this module turns it into pydantic models, fills the
per-type defaults and returns one row per indicator as a :class:`pandas.DataFrame` indexed by
``indicator_id``. Anything wrong (duplicate id, missing field, unknown value, a field that does not
belong to the indicator's type) raises :class:`~surveillance.errors.ConfigError` naming the
indicator and the field.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from surveillance.errors import ConfigError

DEFAULT_PATH = Path(__file__).with_name("indicators.yaml")

Domain = Literal["safe", "effective", "caring", "responsive", "well_led"]
IndicatorType = Literal[
    "proportion", "ratio", "rate", "count", "score", "external_band", "rule", "cusum_z"
]
Polarity = Literal["higher_is_worse", "lower_is_worse"]
Cadence = Literal["quarterly", "annual", "rolling_12m", "monthly"]
DerivedFrom = Literal["", "spells", "staffing", "intelligence"]
SrMethod = Literal["SHMI", "CQC"]
Trim = Literal["winsorise", "truncate"]
Overdispersion = Literal["additive", "multiplicative"]
Flag = Literal["no_evidence", "risk", "elevated_risk"]
SeriesType = Literal["proportion", "ratio", "rate", "score"]

DOMAINS: tuple[str, ...] = Domain.__args__
TYPES: tuple[str, ...] = IndicatorType.__args__
CADENCES: tuple[str, ...] = Cadence.__args__
DERIVED_FROM: tuple[str, ...] = DerivedFrom.__args__

#: Types whose assessment is a z-score (transform, overdispersion, thresholds on z_adjusted).
Z_TYPES = ("proportion", "ratio", "rate", "score", "cusum_z")

#: Columns of the catalogue frame, in order (docs/INTERFACES.md), then the extra columns.
COLUMNS: list[str] = [
    "name",
    "domain",
    "tier",
    "type",
    "polarity",
    "source",
    "cadence",
    "level",
    "derived_from",
    "sr_method",
    "trim",
    "overdispersion",
    "risk_threshold",
    "elevated_threshold",
    "p_risk",
    "p_elevated",
    "min_denominator",
    "min_coverage",
    "applies_to_specialist",
    "band_map",
    "means",
    "does_not_mean",
    "series_type",
    "cusum_k",
    "cusum_h",
    "rule_min_count",
]

_ID_RE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$")


class Indicator(BaseModel):
    """One catalogue entry after defaults are filled in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    indicator_id: str
    name: str = Field(min_length=3)
    domain: Domain
    tier: Literal[1, 2]
    type: IndicatorType
    polarity: Polarity
    source: str = Field(min_length=2)
    cadence: Cadence
    level: Literal["trust"] = "trust"
    derived_from: DerivedFrom = ""
    sr_method: SrMethod | None = None
    trim: Trim | None = None
    overdispersion: Overdispersion | None = None
    risk_threshold: float | None = Field(default=None, gt=0)
    elevated_threshold: float | None = Field(default=None, gt=0)
    p_risk: float | None = Field(default=None, gt=0, lt=1)
    p_elevated: float | None = Field(default=None, gt=0, lt=1)
    min_denominator: float | None = Field(default=None, ge=0)
    min_coverage: float = Field(default=0.5, ge=0, le=1)
    applies_to_specialist: bool = True
    band_map: dict[str, Flag] | None = None
    means: str = Field(min_length=20)
    does_not_mean: str = Field(min_length=20)
    series_type: SeriesType | None = None
    cusum_k: float | None = Field(default=None, ge=0)
    cusum_h: float | None = Field(default=None, gt=0)
    rule_min_count: int | None = Field(default=None, ge=1)

    @field_validator("indicator_id")
    @classmethod
    def _snake_case_id(cls, value: str) -> str:
        if not _ID_RE.match(value):
            raise ValueError("must be snake_case with a family prefix, e.g. 'mort_ratio_all'")
        return value

    @field_validator("band_map", mode="before")
    @classmethod
    def _band_labels_are_strings(cls, value: Any) -> Any:
        # YAML reads bands such as 1, 2, 3 as ints; publishers' labels are strings on disk.
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _fields_match_type(self) -> Indicator:
        t = self.type
        if (t == "external_band") != (self.band_map is not None):
            raise ValueError(
                "band_map is required for external_band indicators and only allowed for them"
            )
        if self.band_map is not None and not self.band_map:
            raise ValueError("band_map must name at least one band")
        if (t == "cusum_z") != (self.series_type is not None):
            raise ValueError(
                "series_type is required for cusum_z indicators and only allowed for them"
            )
        uses_sr = t == "ratio" or (t == "cusum_z" and self.series_type == "ratio")
        if self.sr_method is not None and not uses_sr:
            raise ValueError("sr_method applies to ratio indicators only")
        if t in Z_TYPES and t != "cusum_z":
            if self.risk_threshold is None or self.elevated_threshold is None:
                raise ValueError(f"{t} indicators need risk_threshold and elevated_threshold")
            if self.elevated_threshold < self.risk_threshold:
                raise ValueError("elevated_threshold must not be below risk_threshold")
        if t == "count":
            if self.p_risk is None or self.p_elevated is None:
                raise ValueError("count indicators need p_risk and p_elevated")
            if self.p_elevated > self.p_risk:
                raise ValueError("p_elevated must not exceed p_risk")
        if t == "cusum_z" and (self.cusum_k is None or self.cusum_h is None):
            raise ValueError("cusum_z indicators need cusum_k and cusum_h")
        if t == "cusum_z" and self.cadence != "monthly":
            raise ValueError("cusum_z indicators are monthly series (cadence: monthly)")
        if t == "rule" and self.rule_min_count is None:
            raise ValueError("rule indicators need rule_min_count")
        if t not in Z_TYPES and (self.trim is not None or self.overdispersion is not None):
            raise ValueError(f"trim/overdispersion do not apply to {t} indicators")
        if self.trim == "truncate" and self.sr_method != "SHMI":
            raise ValueError("trim 'truncate' is the SHMI method's trimming (needs sr_method SHMI)")
        return self


class CatalogueFile(BaseModel):
    """Top level of ``indicators.yaml``."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    description: str = ""
    defaults: dict[str, Any] = Field(default_factory=dict)
    defaults_by_type: dict[IndicatorType, dict[str, Any]] = Field(default_factory=dict)
    indicators: list[dict[str, Any]] = Field(min_length=1)


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    field = ".".join(str(p) for p in error["loc"]) or "(entry)"
    if error["type"] == "missing":
        return field, "required field is missing"
    if error["type"] == "extra_forbidden":
        return field, "unknown field"
    return field, error["msg"]


def _entry_label(entry: dict[str, Any], position: int) -> str:
    ident = entry.get("indicator_id") if isinstance(entry, dict) else None
    return f"indicator '{ident}'" if ident else f"indicator #{position + 1} (no indicator_id)"


def parse_catalogue(document: dict[str, Any], origin: str = "catalogue") -> list[Indicator]:
    """Validate a parsed catalogue document and fill defaults; raise ConfigError listing every problem."""
    try:
        top = CatalogueFile.model_validate(document)
    except ValidationError as exc:
        problems = [f"{origin}: field '{f}': {m}" for f, m in map(_describe, exc.errors())]
        raise ConfigError("invalid catalogue:\n  " + "\n  ".join(problems)) from None

    problems: list[str] = []
    indicators: list[Indicator] = []
    seen: dict[str, int] = {}
    for position, entry in enumerate(top.indicators):
        label = _entry_label(entry, position)
        if not isinstance(entry, dict):
            problems.append(f"{origin}: {label}: entry must be a mapping")
            continue
        merged = dict(top.defaults)
        kind = entry.get("type")
        if isinstance(kind, str) and kind in top.defaults_by_type:
            merged.update(top.defaults_by_type[kind])  # type: ignore[index]
        merged.update(entry)
        try:
            indicator = Indicator.model_validate(merged)
        except ValidationError as exc:
            for field, message in map(_describe, exc.errors()):
                problems.append(f"{origin}: {label}: field '{field}': {message}")
            continue
        if indicator.indicator_id in seen:
            problems.append(
                f"{origin}: {label}: field 'indicator_id': duplicate id "
                f"(entries #{seen[indicator.indicator_id] + 1} and #{position + 1})"
            )
            continue
        seen[indicator.indicator_id] = position
        indicators.append(indicator)
    if problems:
        raise ConfigError("invalid catalogue:\n  " + "\n  ".join(problems))
    return indicators


def catalogue_frame(indicators: list[Indicator]) -> pd.DataFrame:
    """The catalogue as a frame indexed by ``indicator_id`` (columns :data:`COLUMNS`), sorted by id."""
    records = [ind.model_dump() for ind in indicators]
    frame = pd.DataFrame.from_records(records, columns=["indicator_id", *COLUMNS])
    for column in ("risk_threshold", "elevated_threshold", "p_risk", "p_elevated"):
        frame[column] = frame[column].astype(float)
    for column in ("min_denominator", "cusum_k", "cusum_h"):
        frame[column] = frame[column].astype(float)
    frame["tier"] = frame["tier"].astype("int64")
    frame["min_coverage"] = frame["min_coverage"].astype(float)
    frame["applies_to_specialist"] = frame["applies_to_specialist"].astype(bool)
    frame["rule_min_count"] = frame["rule_min_count"].astype("Int64")
    return frame.set_index("indicator_id").sort_index()


def read_catalogue_document(path: Path) -> dict[str, Any]:
    """Read the YAML file (no validation beyond being a mapping)."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read catalogue {path}: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"catalogue {path} must be a YAML mapping with an 'indicators' list")
    return document


def load_indicators(path: Path | None = None) -> list[Indicator]:
    """Validated :class:`Indicator` models, in file order."""
    path = Path(path) if path is not None else DEFAULT_PATH
    return parse_catalogue(read_catalogue_document(path), origin=path.name)


def load_catalogue(path: Path | None = None) -> pd.DataFrame:
    """Load the indicator catalogue: one row per indicator, index ``indicator_id``.

    Parameters
    ----------
    path
        A catalogue YAML file; the packaged ``indicators.yaml`` when ``None``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS` (docs/INTERFACES.md, then ``series_type``, ``cusum_k``,
        ``cusum_h``, ``rule_min_count``), sorted by ``indicator_id``. Absent numeric settings are
        NaN, absent method settings ``None``; ``band_map`` is a dict for external_band rows.

    Raises
    ------
    ConfigError
        On duplicate ids, missing fields, unknown enum values or fields that do not fit the
        indicator's type; the message names the indicator and the field.
    """
    return catalogue_frame(load_indicators(path))


def is_missing(value: Any) -> bool:
    """True for None and NaN (catalogue cells that are not set)."""
    return value is None or (isinstance(value, float) and math.isnan(value))
