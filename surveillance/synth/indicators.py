"""Indicator rows (``indicators.csv``) generated from latent quality and the indicator profiles.

For every catalogue indicator read from ``indicators.csv`` (``derived_from`` empty) the profile in
``indicator_profiles.yaml`` gives the national level, the denominator per 10,000 admitted spells a
year, the between-trust standard deviation ``tau`` on the METHODS.md section 1 transformed scale,
and the loadings on latent quality. A trust's effect is

    tau * (sum_d loading_d * q_d + sqrt(1 - sum_d loading_d^2) * e),

with ``q_d`` its latent quality in domain ``d`` (positive = worse) at the quarter and ``e`` a
persistent trust x indicator N(0, 1) term, applied in the indicator's worse direction. Within-trust
sampling noise (binomial, Poisson, survey error) comes on top, so phi ~ 1 + tau^2 / s^2 > 1.
Indicators use national-scale trust sizes at every scale (only spells shrink in the demo).
"""

from __future__ import annotations

import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.special import ndtri

from surveillance.contracts import INDICATOR_COLUMNS
from surveillance.errors import ConfigError
from surveillance.periods import Quarter
from surveillance.synth.config import _LOADER, DOMAINS, HERE
from surveillance.synth.io import format_date, format_fixed
from surveillance.synth.world import (
    STREAM_INDICATORS,
    Nation,
    month_ordinal,
    quarter_ordinal,
    rng_for,
)

PERIOD_YEARS = {"quarterly": 0.25, "annual": 1.0, "rolling_12m": 1.0, "monthly": 1.0 / 12.0}
MISSING_AT_RANDOM = 0.015  # share of trust x indicator rows a publisher simply lacks
PATCHY_SHARE = 0.12  # share of indicators with patchy coverage (audits with late submitters)
PATCHY_MISSING = (0.05, 0.2)


@lru_cache(maxsize=2)
def load_profiles(path: Path | None = None) -> dict[str, dict]:
    path = path or HERE / "indicator_profiles.yaml"
    try:
        profiles = yaml.load(path.read_text(), Loader=_LOADER)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from exc
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: expected a mapping of indicator_id -> profile")
    return profiles


def indicator_key(indicator_id: str) -> int:
    """A stable integer for an indicator (CRC-32 of its id) to key its random stream."""
    return zlib.crc32(indicator_id.encode())


def generated_indicators(catalogue: pd.DataFrame, profiles: dict[str, dict]) -> list[str]:
    """Catalogue indicators read from ``indicators.csv``; each must have a profile."""
    ids = catalogue.index[catalogue["derived_from"].fillna("") == ""].tolist()
    missing = [i for i in ids if i not in profiles]
    if missing:
        raise ConfigError(f"indicator_profiles.yaml: no profile for {missing}")
    return sorted(ids)


def _standardised_badness(nation: Nation, quarter: Quarter) -> np.ndarray:
    """Latent quality at ``quarter`` as (n_trusts, 5) with positive = worse."""
    return -nation.latent_quality(quarter)


def trust_effect(nation: Nation, indicator_id: str, profile: dict, quarter: Quarter) -> np.ndarray:
    """Standardised trust effect (positive = worse), before multiplying by ``tau``."""
    loadings = profile.get("loadings", {})
    bad = _standardised_badness(nation, quarter)
    l2 = sum(v * v for v in loadings.values())
    e = rng_for(nation.seed, STREAM_INDICATORS, indicator_key(indicator_id)).standard_normal(
        nation.n_trusts
    )
    x = np.sqrt(max(0.0, 1.0 - l2)) * e
    for d, w in loadings.items():
        x = x + w * bad[:, DOMAINS.index(d)]
    return x


def _periods(cadence: str, quarter: Quarter) -> list[tuple[pd.Timestamp, pd.Timestamp, int]]:
    """(start, end, stream key) for each row period the cadence implies."""
    if cadence == "quarterly":
        return [(quarter.start, quarter.end, quarter_ordinal(quarter))]
    if cadence in ("annual", "rolling_12m"):
        return [(quarter.lookback_start(12), quarter.end, quarter_ordinal(quarter))]
    out = []
    for m in quarter.lookback_months(12):
        p = pd.Period(m, freq="M")
        out.append((p.start_time.normalize(), p.end_time.normalize(), 100_000 + month_ordinal(p)))
    return out


def _proportion_at_national(y: np.ndarray, weight: np.ndarray, p0: float) -> np.ndarray:
    """Trust proportions sin^2(y + c), with c solved by bisection so the weighted mean is p0."""
    lo, hi = -np.pi / 2, np.pi / 2
    for _ in range(60):
        c = 0.5 * (lo + hi)
        p = np.sin(np.clip(y + c, 0.0, np.pi / 2)) ** 2
        if np.average(p, weights=weight) < p0:
            lo = c
        else:
            hi = c
    return np.sin(np.clip(y + 0.5 * (lo + hi), 0.0, np.pi / 2)) ** 2


def _draw(
    rng: np.random.Generator,
    kind: str,
    profile: dict,
    size10k: np.ndarray,
    years: float,
    worse: np.ndarray,
) -> dict[str, np.ndarray]:
    """One period's columns for every trust; ``worse`` is the signed effect on the z scale."""
    n = size10k.size
    tau = float(profile.get("tau", 0.0))
    # Trust effects are centred (weighted by size where the level is a pooled rate) so that the
    # profile's `national` is the expected national level whatever the mix of trust qualities.
    if kind == "proportion":
        p0 = float(profile["national"])
        denom = np.maximum(rng.poisson(profile["denominator_per_10k"] * size10k * years), 1)
        y = np.arcsin(np.sqrt(p0)) + tau * worse
        p = _proportion_at_national(y, size10k, p0)
        return {"numerator": rng.binomial(denom, p), "denominator": denom}
    multiplier = np.exp(tau * worse)
    multiplier = multiplier / np.average(multiplier, weights=size10k)
    if kind == "ratio":
        expected = profile["denominator_per_10k"] * size10k * years * rng.uniform(0.9, 1.1, n)
        observed = rng.poisson(expected * multiplier)
        # Expected counts are calibrated nationally (indirect standardisation: sum O = sum E).
        expected = expected * observed.sum() / max(expected.sum(), 1e-9)
        return {"numerator": observed, "denominator": expected}
    if kind == "rate":
        exposure = np.maximum(
            rng.poisson(profile["denominator_per_10k"] * size10k * years), 1
        ).astype(float)
        mu = profile["national"] / profile["per"] * exposure * multiplier
        return {"numerator": rng.poisson(mu), "denominator": exposure}
    if kind == "count":
        activity = np.rint(profile["denominator_per_10k"] * size10k * years)
        mu = profile["national"] * size10k * years * multiplier
        return {"numerator": rng.poisson(mu), "denominator": activity}
    if kind == "score":
        se = profile["se"] * rng.uniform(0.8, 1.25, n)
        value = profile["national"] + tau * (worse - worse.mean()) + rng.normal(0.0, se)
        return {"value": value, "standard_error": se}
    if kind == "rule":
        mu = profile["national"] * years * np.exp(tau * worse)
        mu = mu * profile["national"] * years / mu.mean()  # per-trust mean as profiled
        return {"numerator": rng.poisson(mu)}
    if kind == "external_band":
        labels = list(profile["bands"])  # worst first
        shares = np.array([profile["bands"][k] for k in labels], dtype=float)
        # Ordinal model: score ~ N(0, 1) (plus the trust's worse effect); worst band at the top.
        score = worse + rng.normal(0.0, 0.5, n)
        cuts = np.sqrt(1.25) * ndtri(1.0 - np.cumsum(shares)[:-1])
        idx = np.searchsorted(-cuts, -score, side="right")
        return {"band": np.asarray(labels, dtype=object)[idx]}
    raise ConfigError(f"indicator_profiles.yaml: unknown kind {kind!r}")


def palliative_coding_share(
    nation: Nation,
    rng: np.random.Generator,
    cols: dict[str, np.ndarray],
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> dict[str, np.ndarray]:
    """Deaths coded palliative: the same trust coding rates (and recoding jumps) as the spells.

    The share of the period's months after a recoding trust's start gets the raised rate, so the
    2013 recoding pattern shows in the data-quality indicator as it would in HES.
    """
    rate = nation.trusts["palliative_rate"].to_numpy().copy()
    months = pd.period_range(start, end, freq="M")
    after_rate = nation.config.mortality.recoding.palliative_rate_after
    for row in nation.recoding.itertuples():
        if row.kind == "palliative":
            share = np.mean([m >= pd.Period(row.start_month, freq="M") for m in months])
            rate[row.trust_index] = (1 - share) * rate[row.trust_index] + share * after_rate
    denominator = cols["denominator"]
    return {"numerator": rng.binomial(denominator, rate), "denominator": denominator}


#: Indicators whose values follow the spells' coding truth rather than latent quality.
CODING_INDICATORS = {"dq_palliative_coding": palliative_coding_share}


def generate_indicators(
    nation: Nation, quarter: Quarter, catalogue: pd.DataFrame, profiles: dict[str, dict]
) -> pd.DataFrame:
    """``indicators.csv`` rows for ``quarter`` (formatted strings, sorted by key columns)."""
    t = nation.trusts
    specialist = (t["trust_type"] == "acute_specialist").to_numpy()
    size10k = t["annual_spells"].to_numpy(float) / 10_000.0
    codes = t["trust_code"].to_numpy()
    frames = []
    for ident in generated_indicators(catalogue, profiles):
        row = catalogue.loc[ident]
        profile = profiles[ident]
        kind = profile["kind"]
        sign = 1.0 if row["polarity"] == "higher_is_worse" else -1.0
        applies = ~specialist | bool(row["applies_to_specialist"])
        key = indicator_key(ident)
        # Coverage: a few indicators are patchy; otherwise a little missing at random.
        cov_rng = rng_for(nation.seed, STREAM_INDICATORS, key, 1)
        miss_share = (
            cov_rng.uniform(*PATCHY_MISSING)
            if cov_rng.random() < PATCHY_SHARE
            else MISSING_AT_RANDOM
        )
        series_present = cov_rng.random(nation.n_trusts) >= miss_share
        for start, end, stream in _periods(row["cadence"], quarter):
            period_quarter = Quarter(end.year, (end.month - 1) // 3 + 1)
            effect = trust_effect(nation, ident, profile, period_quarter)
            worse = effect if kind == "external_band" else sign * effect
            rng = rng_for(nation.seed, STREAM_INDICATORS, key, stream)
            cols = _draw(rng, kind, profile, size10k, PERIOD_YEARS[row["cadence"]], worse)
            if ident in CODING_INDICATORS:
                cols = CODING_INDICATORS[ident](nation, rng, cols, start, end)
            if row["cadence"] == "monthly":  # a series is published whole or not at all
                present = applies & series_present
            else:
                present = applies & (rng.random(nation.n_trusts) >= miss_share)
            data = {
                "trust_code": codes[present],
                "indicator_id": ident,
                "period_start": start,
                "period_end": end,
            }
            for c in ("numerator", "denominator", "value", "standard_error", "band"):
                blank = np.full(nation.n_trusts, None if c == "band" else np.nan)
                data[c] = np.asarray(cols.get(c, blank))[present]
            frames.append((kind, pd.DataFrame(data)))
    return format_indicators(frames)


def format_indicators(frames: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """Fixed formats: integer counts, 2-decimal expected, 1-decimal exposure, 4-decimal scores."""
    frame = pd.concat([f.assign(_kind=kind) for kind, f in frames], ignore_index=True)
    kind = frame.pop("_kind").to_numpy()
    frame["period_start"] = format_date(frame["period_start"])
    frame["period_end"] = format_date(frame["period_end"])
    frame["numerator"] = format_fixed(frame["numerator"], 0)
    denominator = format_fixed(frame["denominator"], 0).to_numpy()
    for k, decimals in (("ratio", 2), ("rate", 1)):
        denominator = np.where(kind == k, format_fixed(frame["denominator"], decimals), denominator)
    frame["denominator"] = denominator
    frame["value"] = format_fixed(frame["value"], 4)
    frame["standard_error"] = format_fixed(frame["standard_error"], 4)
    frame["band"] = frame["band"].fillna("").astype(object)
    return frame.sort_values(["trust_code", "indicator_id", "period_start"], ignore_index=True)[
        INDICATOR_COLUMNS
    ]
