"""Scoring shared by the banding models: points per flag, proportion score, overrides, band table.

CQC Intelligent Monitoring (2013): each applicable indicator scores 0 (no evidence), 1 (risk) or
2 (elevated risk); score S = sum of points, maximum M = 2 x applicable, proportion P = S / M.

References
----------
Care Quality Commission. Intelligent Monitoring: NHS acute hospitals, statistical methodology (2014).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from surveillance.banding.config import DEFAULT_POINTS, N_BANDS, Overrides, Points
from surveillance.contracts import BANDS_COLUMNS
from surveillance.errors import SurveillanceError
from surveillance.periods import Quarter

FLAG_LEVELS = ("no_evidence", "risk", "elevated_risk", "not_applicable")
BAND_LABELS = tuple(str(b) for b in range(1, N_BANDS + 1)) + ("recently_inspected", "not_banded")
P_BAND_COLUMNS = [f"p_band_{b}" for b in range(1, N_BANDS + 1)]
_REQUIRED_FLAG_COLUMNS = ("trust_code", "indicator_id", "domain", "flag")
_REQUIRED_TRUST_COLUMNS = ("trust_code", "trust_name", "region")


def check_flags(flags: pd.DataFrame) -> None:
    """Validate a flags frame once at the boundary (columns, flag values, unique keys)."""
    missing = [c for c in _REQUIRED_FLAG_COLUMNS if c not in flags.columns]
    if missing:
        raise SurveillanceError(f"flags: missing column(s) {missing}")
    bad = ~flags["flag"].isin(FLAG_LEVELS)
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())[:5] + 1
        raise SurveillanceError(
            f"flags rows {rows.tolist()} column 'flag': value not in {FLAG_LEVELS}: "
            f"{flags.loc[bad, 'flag'].unique()[:5].tolist()}"
        )
    dup = flags.duplicated(["trust_code", "indicator_id"])
    if dup.any():
        rows = np.flatnonzero(dup.to_numpy())[:5] + 1
        raise SurveillanceError(f"flags rows {rows.tolist()}: duplicate trust_code x indicator_id")


def flag_points(flag: pd.Series, points: Points = DEFAULT_POINTS) -> pd.Series:
    """Points for each flag; ``not_applicable`` -> NaN (does not count)."""
    mapping = {
        "no_evidence": points.no_evidence,
        "risk": points.risk,
        "elevated_risk": points.elevated_risk,
    }
    return flag.map(mapping).astype(float)


def score_table(
    flags: pd.DataFrame,
    trust_codes: Sequence[str] | None = None,
    points: Points = DEFAULT_POINTS,
    excluded: Iterable[str] = (),
) -> pd.DataFrame:
    """Per-trust applicable count, risks, elevated risks, score S, max M and proportion P = S/M.

    Indicators in ``excluded`` (below national coverage this quarter) do not count.
    Trusts in ``trust_codes`` with no applicable indicator get zeros and P = NaN.
    """
    use = flags[~flags["indicator_id"].isin(set(excluded)) & (flags["flag"] != "not_applicable")]
    pts = flag_points(use["flag"], points)
    grouped = (
        pd.DataFrame(
            {
                "trust_code": use["trust_code"].to_numpy(),
                "applicable": 1,
                "risks": (use["flag"] == "risk").to_numpy().astype(int),
                "elevated_risks": (use["flag"] == "elevated_risk").to_numpy().astype(int),
                "score": pts.to_numpy(),
            }
        )
        .groupby("trust_code", sort=True)[["applicable", "risks", "elevated_risks", "score"]]
        .sum()
    )
    codes = sorted(set(flags["trust_code"]) if trust_codes is None else set(trust_codes))
    table = grouped.reindex(codes, fill_value=0)
    table.index.name = "trust_code"
    table["score"] = table["score"].astype(int)
    table["max_score"] = points.elevated_risk * table["applicable"]
    with np.errstate(invalid="ignore", divide="ignore"):
        table["proportion_score"] = np.where(
            table["max_score"] > 0, table["score"] / table["max_score"].clip(lower=1), np.nan
        )
    return table


def band_from_proportion(proportion: np.ndarray, cut_points: Sequence[float]) -> np.ndarray:
    """Band 1..6 from proportion scores: band k if P >= cut_points[k-1] (first match), else 6.

    Ties at a cut-point go to the higher-priority (lower-numbered) band. NaN -> 0 (no band).
    """
    p = np.asarray(proportion, dtype=float)
    cuts = np.asarray(cut_points, dtype=float)
    band = np.full(p.shape, N_BANDS, dtype=np.int64)
    for k in range(len(cuts) - 1, -1, -1):
        band[p >= cuts[k]] = k + 1
    band[np.isnan(p)] = 0
    return band


def calibrate_cut_points(
    proportion_scores: Sequence[float], band_sizes: Sequence[int]
) -> tuple[float, ...]:
    """Cut-points that split the scores into ``band_sizes`` (band 1 first) as nearly as ties allow.

    Each cut-point is the midpoint between the last score of a band and the first of the next,
    after sorting descending; sizes are rescaled to the number of scores (largest remainder).
    Used to choose the fixed cut-points in ``models/banding/cqc2013.yaml``.
    """
    p = np.sort(np.asarray(proportion_scores, dtype=float)[~np.isnan(proportion_scores)])[::-1]
    sizes = rescale_sizes(band_sizes, len(p))
    ends = np.cumsum(sizes)[:-1]
    cuts = []
    for e in ends:
        lo, hi = p[min(e, len(p) - 1)], p[max(e - 1, 0)]
        cuts.append(float((lo + hi) / 2.0))
    # strictly descending, as the config requires; nudge ties apart by a tiny amount
    for i in range(1, len(cuts)):
        if cuts[i] >= cuts[i - 1]:
            cuts[i] = cuts[i - 1] - 1e-6
    return tuple(cuts)


def rescale_sizes(band_sizes: Sequence[int], n: int) -> np.ndarray:
    """Band sizes rescaled to total ``n`` by largest remainder (stable: ties to lower bands)."""
    sizes = np.asarray(band_sizes, dtype=float)
    if sizes.sum() <= 0:
        raise ValueError("band sizes must sum to a positive number")
    exact = sizes * n / sizes.sum()
    out = np.floor(exact).astype(np.int64)
    rem = n - out.sum()
    order = np.argsort(-(exact - out), kind="stable")
    out[order[:rem]] += 1
    return out


def bands_by_rank(risk: pd.Series, band_sizes: Sequence[int]) -> pd.Series:
    """Band 1..6 by descending risk with the given sizes (rescaled to len(risk)); ties by code."""
    sizes = rescale_sizes(band_sizes, len(risk))
    frame = pd.DataFrame({"risk": risk.to_numpy(), "code": risk.index.to_numpy()})
    order = frame.sort_values(["risk", "code"], ascending=[False, True], kind="mergesort").index
    bands = np.repeat(np.arange(1, len(sizes) + 1), sizes)
    out = np.empty(len(risk), dtype=np.int64)
    out[order.to_numpy()] = bands
    return pd.Series(out, index=risk.index, name="band")


def _as_bool(series: pd.Series, column: str) -> pd.Series:
    if series.dtype == bool:
        return series
    text = series.astype("string").str.strip().str.lower()
    truthy = text.isin(["true", "1", "yes", "t", "y"])
    falsy = text.isin(["false", "0", "no", "f", "n", ""]) | text.isna()
    bad = ~(truthy | falsy)
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())[:5] + 1
        raise SurveillanceError(f"trusts rows {rows.tolist()} column '{column}': not a boolean")
    return truthy


def override_labels(
    trusts: pd.DataFrame, applicable: pd.Series, quarter: Quarter | str, overrides: Overrides
) -> tuple[pd.Series, pd.Series]:
    """Override band label and reason per trust ('' where no override applies).

    Precedence: special measures (band ``special_measures_band``) > recently inspected (last
    inspection within ``recent_inspection_months`` before the quarter end, on or before it) >
    ``not_banded`` (fewer than ``min_applicable`` applicable indicators).
    """
    q = Quarter.parse(str(quarter))
    t = trusts.set_index("trust_code")
    idx = applicable.index
    label = pd.Series("", index=idx, dtype=object)
    reason = pd.Series("", index=idx, dtype=object)

    n = applicable.to_numpy()
    few = n < overrides.min_applicable
    label[few] = "not_banded"
    reason[few] = [
        f"{k} applicable indicator(s), fewer than the minimum {overrides.min_applicable}"
        for k in n[few]
    ]

    if "last_inspection_date" in t.columns and overrides.recent_inspection_months > 0:
        dates = pd.to_datetime(t["last_inspection_date"].reindex(idx), errors="coerce")
        window_start = q.end - pd.DateOffset(months=overrides.recent_inspection_months)
        recent = (dates > window_start) & (dates <= q.end)
        label[recent] = "recently_inspected"
        reason[recent] = [
            f"inspected {d:%Y-%m-%d}, within {overrides.recent_inspection_months} months "
            f"before the quarter end {q.end:%Y-%m-%d}"
            for d in dates[recent]
        ]

    if overrides.special_measures_band is not None and "special_measures" in t.columns:
        sm = _as_bool(t["special_measures"].reindex(idx), "special_measures").fillna(False)
        sm = sm.to_numpy(dtype=bool)
        label[sm] = str(overrides.special_measures_band)
        reason[sm] = f"special measures: band {overrides.special_measures_band} by override"
    return label, reason


def trust_frame(trusts: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in _REQUIRED_TRUST_COLUMNS if c not in trusts.columns]
    if missing:
        raise SurveillanceError(f"trusts: missing column(s) {missing}")
    if trusts["trust_code"].duplicated().any():
        dups = trusts.loc[trusts["trust_code"].duplicated(), "trust_code"].tolist()[:5]
        raise SurveillanceError(f"trusts column 'trust_code': duplicate codes {dups}")
    return trusts.sort_values("trust_code", kind="mergesort").reset_index(drop=True)


def assemble_bands(
    trusts: pd.DataFrame,
    table: pd.DataFrame,
    band: pd.Series,
    reason: pd.Series,
    probabilities: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Put the bands.csv columns together in contract order, sorted by trust_code."""
    t = trust_frame(trusts).set_index("trust_code")
    out = table.reindex(t.index).copy()
    for col in ("applicable", "risks", "elevated_risks", "score", "max_score"):
        out[col] = out[col].fillna(0).astype(int)
    out.insert(0, "trust_name", t["trust_name"])
    out.insert(1, "region", t["region"])
    out["band"] = band.reindex(t.index).astype(str)
    out["band_reason"] = reason.reindex(t.index).astype(str)
    probs = (
        probabilities.reindex(t.index)
        if probabilities is not None
        else pd.DataFrame(np.nan, index=t.index, columns=P_BAND_COLUMNS)
    )
    for col in P_BAND_COLUMNS:
        out[col] = probs[col].to_numpy()
    out["previous_band"] = ""
    out["movement"] = "new"
    out = out.reset_index()
    return out[BANDS_COLUMNS]
