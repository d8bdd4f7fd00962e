"""Indicator assessment: every catalogue indicator x trust to a flag (DESIGN.md sections 5-6).

``assess`` turns indicator rows (``indicators.csv`` plus derived rows in the same shape) into the
``flags.csv`` frame: one row per catalogue indicator x trust with ``z``, ``z_adjusted``,
``p_value``, ``flag``, ``method``, ``phi`` and ``tau2``.

Per type (METHODS.md sections 1, 2 and 4):

* proportion, ratio, rate, score: variance-stabilised z (``surveillance.stats.transforms``),
  overdispersion adjustment with the catalogue's trim / overdispersion
  (``surveillance.stats.overdispersion.adjust``), oriented so positive = worse; ``risk`` when
  z_adjusted > ``risk_threshold``, ``elevated_risk`` when > ``elevated_threshold``;
  p_value = 1 - Phi(z_adjusted) (one-sided, adverse direction).
* count: upper-tail Poisson / negative-binomial p-value against the activity-scaled national rate
  (``surveillance.stats.counts.count_test``); ``elevated_risk`` when p < ``p_elevated``, ``risk``
  when p < ``p_risk``. ``z`` is the Pearson residual (x - mu)/sqrt(mu); ``z_adjusted`` is the
  normal deviate of the mid-p value, Phi^-1(1 - (P(X > x) + P(X = x)/2)), clipped to
  [-8.3, 8.3], so that count magnitudes sit on the same scale as the other types (the flag uses
  the ordinary p-value).
* external_band: the catalogue's ``band_map`` from the publisher's label to a flag.
* rule: ``rule_flag`` (default ``elevated_risk``) when the count of validated cases reaches the
  catalogue's ``rule_min_count``.
* cusum_z: the monthly series' z-scores (the catalogue's ``series_type``) are computed and
  overdispersion-adjusted month by month across trusts, oriented, and run through the normal
  CUSUM C_t = max(0, C_{t-1} + z_t - k), signal when C_t > h, reset to 0
  (``surveillance.stats.cusum.normal_cusum``, k and h from the catalogue: 0.5 and 5.48). A signal
  in one of the quarter's months -> ``elevated_risk``. ``z_adjusted`` is the quarter's combined
  adjusted z, sum(z_t)/sqrt(n); ``cusum`` (extra) the largest statistic in the quarter; ``phi``
  and ``tau2`` the medians over the 12 months.

``not_applicable`` (with ``reason``): no row for the trust; the indicator does not apply to
specialist trusts; below ``min_denominator``; required values missing; the indicator's source is
missing. An indicator whose applicable trusts are below ``min_coverage`` of the trusts in scope is
still assessed but ``in_banding`` is False for the quarter (see :func:`excluded_from_banding`).

Orientation: ``z`` and ``z_adjusted`` in flags.csv are oriented, positive = worse.

References
----------
Spiegelhalter DJ. Funnel plots for comparing institutional performance. Stat Med 2005;24:1185.
Spiegelhalter DJ. Handling over-dispersion of performance indicators. QSHC 2005;14:347.
Care Quality Commission. Intelligent Monitoring: NHS acute hospitals, statistical methodology (2014).
Page ES. Continuous inspection schemes. Biometrika 1954;41:100.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from surveillance.contracts import FLAGS_COLUMNS, INDICATOR_COLUMNS
from surveillance.errors import ConfigError, SurveillanceError
from surveillance.periods import Quarter
from surveillance.stats.counts import count_test
from surveillance.stats.cusum import normal_cusum
from surveillance.stats.overdispersion import adjust
from surveillance.stats.transforms import (
    Transformed,
    transform_proportion,
    transform_rate,
    transform_ratio,
    transform_score,
)

EXTRA_COLUMNS = [
    "value",
    "denominator",
    "reason",
    "in_banding",
    "persistent",
    "polarity",
    "z_sd",
    "threshold_risk",
    "threshold_elevated",
    "p_risk",
    "p_elevated",
    "band",
    "cusum",
]
Z_CROSS_TYPES = ("proportion", "ratio", "rate", "score")
Z_CLIP = 8.3  # Phi^-1(1 - 1e-16): the p-value deviate of counts is clipped here
_NUMERIC = ("numerator", "denominator", "value", "standard_error")


# ----------------------------------------------------------------------------------------------
# input handling


def _numeric(frame: pd.DataFrame, column: str, origin: str) -> np.ndarray:
    """Column as float; empty -> NaN; a non-empty value that is not a number raises."""
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    raw = frame[column]
    if pd.api.types.is_numeric_dtype(raw):
        return raw.to_numpy(dtype=float)
    text = raw.astype("string").str.strip()
    num = pd.to_numeric(text.replace("", pd.NA), errors="coerce")
    bad = num.isna() & text.notna() & (text != "")
    if bad.any():
        rows = (np.flatnonzero(bad.to_numpy()) + 1)[:10].tolist()
        raise SurveillanceError(
            f"{origin} row(s) {rows} column '{column}': [numeric] not a number: "
            f"{text[bad].head(3).tolist()}"
        )
    return num.to_numpy(dtype=float)


def _prepare_rows(frames: list[tuple[str, pd.DataFrame]], catalogue: pd.DataFrame) -> pd.DataFrame:
    parts = []
    for origin, frame in frames:
        if frame is None or len(frame) == 0:
            continue
        missing = {"trust_code", "indicator_id"} - set(frame.columns)
        if missing:
            raise SurveillanceError(f"{origin}: missing column(s) {sorted(missing)}")
        part = pd.DataFrame(
            {
                "trust_code": frame["trust_code"].astype(str).to_numpy(),
                "indicator_id": frame["indicator_id"].astype(str).to_numpy(),
                "_origin": origin,
                "_row": np.arange(1, len(frame) + 1),
            }
        )
        for col in _NUMERIC:
            part[col] = _numeric(frame, col, origin)
        part["band"] = (
            frame["band"].astype("string").str.strip().to_numpy()
            if "band" in frame.columns
            else pd.NA
        )
        part["period_start"] = (
            pd.to_datetime(frame["period_start"]).to_numpy()
            if "period_start" in frame.columns
            else pd.NaT
        )
        unknown = ~part["indicator_id"].isin(catalogue.index)
        if unknown.any():
            rows = part.loc[unknown, "_row"].head(10).tolist()
            raise SurveillanceError(
                f"{origin} row(s) {rows} column 'indicator_id': [catalogue] unknown indicator(s) "
                f"{part.loc[unknown, 'indicator_id'].unique()[:5].tolist()}"
            )
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["trust_code", "indicator_id", "_origin", "_row", *_NUMERIC])
    return pd.concat(parts, ignore_index=True)


# ----------------------------------------------------------------------------------------------
# assessment of one block (indicators x trusts)


@dataclass
class _Block:
    """Results for a block of indicators (rows) x trusts (columns)."""

    ids: list[str]
    observed: np.ndarray
    expected: np.ndarray
    z: np.ndarray
    z_adjusted: np.ndarray
    p_value: np.ndarray
    flag: np.ndarray  # object array of flag strings ('' = decide later / not applicable)
    method: np.ndarray  # per row
    phi: np.ndarray  # per row
    tau2: np.ndarray  # per row
    value: np.ndarray
    denominator: np.ndarray
    reason: np.ndarray  # object array
    z_sd: np.ndarray
    band: np.ndarray | None = None
    cusum: np.ndarray | None = None


def _pivot(rows: pd.DataFrame, ids: list[str], pos: dict[str, int], cols: Iterable[str]):
    """Dense (indicators x trusts) arrays of the given columns; NaN where no row."""
    ipos = {i: k for k, i in enumerate(ids)}
    r = rows["indicator_id"].map(ipos).to_numpy()
    c = rows["trust_code"].map(pos).to_numpy()
    keep = ~pd.isna(c)
    r, c = r[keep].astype(int), c[keep].astype(int)
    out = {}
    present = np.zeros((len(ids), len(pos)), dtype=bool)
    present[r, c] = True
    for col in cols:
        arr = np.full((len(ids), len(pos)), np.nan)
        arr[r, c] = rows[col].to_numpy(float)[keep]
        out[col] = arr
    return present, out


def _transform(kind: str, sr_method: str | None, d: dict[str, np.ndarray]) -> Transformed:
    if kind == "proportion":
        return transform_proportion(d["numerator"], d["denominator"])
    if kind == "ratio":
        return transform_ratio(d["numerator"], d["denominator"], method=sr_method or "CQC")
    if kind == "rate":
        return transform_rate(d["numerator"], d["denominator"])
    if kind == "score":
        return transform_score(d["value"], d["standard_error"])
    raise ValueError(f"no z-transform for type {kind!r}")


def _natural(kind: str, d: dict[str, np.ndarray], tr: Transformed):
    """(observed, expected, value, denominator) on the natural scale for a z-type block."""
    num, den = d["numerator"], d["denominator"]
    t = np.asarray(tr.target, dtype=float).reshape(-1, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind == "proportion":
            return num, den * np.sin(t) ** 2, num / den, den
        if kind == "ratio":
            return num, den, num / den, den
        if kind == "rate":
            return num, den * np.exp(t), num / den, den
    v = d["value"]
    return v, np.broadcast_to(t, v.shape).copy(), v, den


def _validity(
    kind: str, present: np.ndarray, d: dict[str, np.ndarray], min_den: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Applicable mask and reasons (object array) for z / count / rule blocks."""
    reason = np.full(present.shape, "", dtype=object)
    reason[~present] = "no data for this trust"
    if kind == "score":
        need = (
            np.isfinite(d["value"]) & np.isfinite(d["standard_error"]) & (d["standard_error"] > 0)
        )
    elif kind == "rule":
        need = np.isfinite(d["numerator"])
    else:
        need = np.isfinite(d["numerator"]) & np.isfinite(d["denominator"]) & (d["denominator"] > 0)
    reason[present & ~need] = "values needed for this type are missing or zero"
    ok = present & need
    den = d["denominator"]
    md = min_den.reshape(-1, 1)
    with np.errstate(invalid="ignore"):
        small = ok & np.isfinite(md) & np.isfinite(den) & (den < md)
    for i, j in zip(*np.nonzero(small), strict=True):
        reason[i, j] = f"denominator {den[i, j]:g} below min_denominator {md[i, 0]:g}"
    return ok & ~small, reason


def _z_block(
    kind: str,
    key: tuple,
    ids: list[str],
    cat: pd.DataFrame,
    rows: pd.DataFrame,
    pos: dict[str, int],
) -> _Block:
    _, sr_method, trim, overdispersion = key
    present, d = _pivot(rows, ids, pos, _NUMERIC)
    sub = cat.loc[ids]
    ok, reason = _validity(kind, present, d, sub["min_denominator"].to_numpy(float))
    dm = {k: np.where(ok, v, np.nan) for k, v in d.items()}
    tr = _transform(kind, sr_method, dm)
    adj = adjust(tr.Y, tr.s, tr.target, trim=trim, overdispersion=overdispersion)
    sign = np.where(sub["polarity"].to_numpy() == "lower_is_worse", -1.0, 1.0)[:, None]
    z = np.asarray(adj.z) * sign
    z_adj = np.asarray(adj.z_adjusted) * sign
    observed, expected, value, den = _natural(kind, dm, tr)
    r_thr = sub["risk_threshold"].to_numpy(float)[:, None]
    e_thr = sub["elevated_threshold"].to_numpy(float)[:, None]
    finite = np.isfinite(z_adj) | np.isinf(z_adj)
    reason[ok & ~finite] = "not assessable (transform undefined)"
    ok = ok & finite
    flag = np.where(
        z_adj > e_thr, "elevated_risk", np.where(z_adj > r_thr, "risk", "no_evidence")
    ).astype(object)
    flag[~ok] = "not_applicable"
    scale_name = {
        "proportion": "asin",
        "ratio": "sqrt(CQC)" if sr_method == "CQC" else "log(SHMI)",
        "rate": "log",
        "score": "identity",
    }[kind]
    method = np.array([f"{scale_name}+{m}" for m in np.atleast_1d(adj.method)], dtype=object)
    with np.errstate(invalid="ignore", divide="ignore"):
        z_sd = 1.0 / np.asarray(adj.scale)
    # An indicator whose transform is undefined at every trust (e.g. a rate with no events
    # nationally: log target = -inf) has no overdispersion estimate: NaN, never inf.
    phi = np.atleast_1d(np.asarray(adj.phi, dtype=float))
    tau2 = np.atleast_1d(np.asarray(adj.tau2, dtype=float))
    undefined = ~np.isfinite(phi) | ~np.isfinite(tau2)
    phi = np.where(undefined, np.nan, phi)
    tau2 = np.where(undefined, np.nan, tau2)
    return _Block(
        ids=ids,
        observed=np.where(ok, observed, np.nan),
        expected=np.where(ok, expected, np.nan),
        z=np.where(ok, z, np.nan),
        z_adjusted=np.where(ok, z_adj, np.nan),
        p_value=np.where(ok, sps.norm.sf(z_adj), np.nan),
        flag=flag,
        method=method,
        phi=phi,
        tau2=tau2,
        value=np.where(ok, value, np.nan),
        denominator=np.where(ok, den, np.nan),
        reason=reason,
        z_sd=np.where(ok, z_sd, np.nan),
    )


def _count_block(ids, cat, rows, pos) -> _Block:
    present, d = _pivot(rows, ids, pos, _NUMERIC)
    sub = cat.loc[ids]
    ok, reason = _validity("count", present, d, sub["min_denominator"].to_numpy(float))
    n_i, n_t = ok.shape
    blk = _empty_block(ids, n_t)
    blk.reason = reason
    for i, ind in enumerate(ids):
        if sub.loc[ind, "polarity"] != "higher_is_worse":
            raise ConfigError(f"catalogue indicator '{ind}': count indicators test the upper tail")
        m = ok[i]
        if not m.any():
            blk.method[i] = "poisson"
            continue
        x = np.where(m, d["numerator"][i], np.nan)
        a = np.where(m, d["denominator"][i], np.nan)
        res = count_test(x, a, method="auto")
        p = res.p_value
        mu = res.expected
        with np.errstate(invalid="ignore", divide="ignore"):
            blk.z[i] = np.where(m, (x - mu) / np.sqrt(mu), np.nan)
            blk.z_adjusted[i] = np.where(m, _mid_p_deviate(x, mu, p, res.alpha), np.nan)
        blk.p_value[i] = np.where(m, p, np.nan)
        blk.observed[i], blk.expected[i] = np.where(m, x, np.nan), np.where(m, mu, np.nan)
        blk.value[i], blk.denominator[i] = blk.observed[i], np.where(m, a, np.nan)
        p_r, p_e = sub.loc[ind, "p_risk"], sub.loc[ind, "p_elevated"]
        f = np.where(p < p_e, "elevated_risk", np.where(p < p_r, "risk", "no_evidence"))
        blk.flag[i] = np.where(m, f, "not_applicable")
        blk.method[i] = res.method
        blk.phi[i] = res.phi
        blk.z_sd[i] = np.where(m, 1.0, np.nan)
    return blk


def _finite_median(values: np.ndarray) -> float:
    """Median of the finite values (months whose estimate is undefined are skipped); NaN if none."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else np.nan


def _mid_p_deviate(x: np.ndarray, mu: np.ndarray, p: np.ndarray, alpha: float) -> np.ndarray:
    """Normal deviate of the mid-p value P(X > x) + P(X = x)/2, clipped to [-Z_CLIP, Z_CLIP].

    The mid-p keeps x = 0 finite (the ordinary p = P(X >= 0) = 1 has an infinite deviate), so
    count magnitudes can be averaged with other z-scores (learned model features).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        if alpha > 0:
            size = 1.0 / alpha
            pmf = sps.nbinom.pmf(x, size, size / (size + mu))
        else:
            pmf = sps.poisson.pmf(x, mu)
        return np.clip(sps.norm.isf(p - 0.5 * pmf), -Z_CLIP, Z_CLIP)


def _empty_block(ids: list[str], n_t: int) -> _Block:
    shape = (len(ids), n_t)
    nan = lambda: np.full(shape, np.nan)  # noqa: E731
    return _Block(
        ids=ids,
        observed=nan(),
        expected=nan(),
        z=nan(),
        z_adjusted=nan(),
        p_value=nan(),
        flag=np.full(shape, "not_applicable", dtype=object),
        method=np.full(len(ids), "", dtype=object),
        phi=np.full(len(ids), np.nan),
        tau2=np.full(len(ids), np.nan),
        value=nan(),
        denominator=nan(),
        reason=np.full(shape, "no data for this trust", dtype=object),
        z_sd=nan(),
    )


def _rule_block(ids, cat, rows, pos, rule_flag: str) -> _Block:
    present, d = _pivot(rows, ids, pos, _NUMERIC)
    sub = cat.loc[ids]
    ok, reason = _validity("rule", present, d, np.full(len(ids), np.nan))
    blk = _empty_block(ids, len(pos))
    blk.reason = reason
    need = sub["rule_min_count"].astype(float).fillna(1.0).to_numpy()[:, None]
    n = d["numerator"]
    blk.flag = np.where(ok, np.where(n >= need, rule_flag, "no_evidence"), "not_applicable").astype(
        object
    )
    blk.observed = np.where(ok, n, np.nan)
    blk.value = blk.observed.copy()
    blk.method[:] = [f"rule(>={int(k)})" for k in need[:, 0]]
    return blk


def _band_block(ids, cat, rows, pos) -> _Block:
    blk = _empty_block(ids, len(pos))
    blk.band = np.full((len(ids), len(pos)), None, dtype=object)
    ipos = {i: k for k, i in enumerate(ids)}
    for ind, grp in rows.groupby("indicator_id", sort=False):
        i = ipos[ind]
        mapping = cat.loc[ind, "band_map"]
        blk.method[i] = "band_map"
        for code, label, origin, rown in zip(
            grp["trust_code"], grp["band"], grp["_origin"], grp["_row"], strict=True
        ):
            j = pos.get(code)
            if j is None:
                continue
            if label is None or pd.isna(label) or str(label) == "":
                blk.reason[i, j] = "band missing"
                continue
            label = str(label)
            if label not in mapping:
                raise SurveillanceError(
                    f"{origin} row {rown} column 'band': [band_map] label {label!r} is not one of "
                    f"{sorted(mapping)} for indicator '{ind}'"
                )
            blk.flag[i, j] = mapping[label]
            blk.band[i, j] = label
            blk.reason[i, j] = ""
    return blk


def _cusum_block(ids, cat, rows, pos, quarter: Quarter) -> _Block:
    months = quarter.lookback_months(12)
    first = pd.Period(months[0], freq="M")
    first_month = first.year * 12 + first.month - 1
    in_quarter = np.isin(months, quarter.months())
    blk = _empty_block(ids, len(pos))
    blk.cusum = np.full((len(ids), len(pos)), np.nan)
    for i, ind in enumerate(ids):
        row = cat.loc[ind]
        kind = row["series_type"]
        sub = rows[rows["indicator_id"] == ind]
        start = pd.DatetimeIndex(sub["period_start"])
        month_no = start.year * 12 + start.month - 1  # months since year 0, no string work
        sub = sub.assign(
            _m=pd.Series(month_no - first_month, index=sub.index).where(
                lambda m: (m >= 0) & (m < len(months))
            ),
            _t=sub["trust_code"].map(pos),
        ).dropna(subset=["_m", "_t"])
        shape = (len(months), len(pos))
        d = {}
        for col in _NUMERIC:
            arr = np.full(shape, np.nan)
            arr[sub["_m"].astype(int), sub["_t"].astype(int)] = sub[col].to_numpy(float)
            d[col] = arr
        present = np.zeros(shape, dtype=bool)
        present[sub["_m"].astype(int), sub["_t"].astype(int)] = True
        ok, _ = _validity(kind, present, d, np.full(len(months), row["min_denominator"]))
        dm = {k: np.where(ok, v, np.nan) for k, v in d.items()}
        tr = _transform(kind, row["sr_method"], dm)
        adj = adjust(tr.Y, tr.s, tr.target, trim=row["trim"], overdispersion=row["overdispersion"])
        sign = -1.0 if row["polarity"] == "lower_is_worse" else 1.0
        z_adj = np.asarray(adj.z_adjusted) * sign
        z_raw = np.asarray(adj.z) * sign
        k, h = float(row["cusum_k"]), float(row["cusum_h"])
        blk.method[i] = f"cusum(k={k:g},h={h:g})"
        blk.phi[i] = _finite_median(adj.phi)
        blk.tau2[i] = _finite_median(adj.tau2)
        obs, exp_, _, _ = _natural(kind, dm, tr)
        for j in range(len(pos)):
            col = z_adj[:, j]
            have = np.isfinite(col)
            if not have[in_quarter].any():
                blk.reason[i, j] = (
                    "no monthly data in the quarter" if present[:, j].any() else "no data"
                )
                continue
            path = normal_cusum(col[have], k=k, h=h, reset=0.0)
            q_have = in_quarter[have]
            signal = bool(path.signal[q_have].any())
            zq = col[in_quarter & have]
            blk.flag[i, j] = "elevated_risk" if signal else "no_evidence"
            blk.reason[i, j] = ""
            # the path stores the post-reset value at a signal: report the peak before reset
            prev = np.r_[0.0, path.statistic[:-1]]
            peak = np.maximum(0.0, prev + col[have] - k)
            blk.cusum[i, j] = float(peak[q_have].max())
            blk.z_adjusted[i, j] = float(zq.sum() / np.sqrt(len(zq)))
            zr = z_raw[in_quarter & have, j]
            blk.z[i, j] = float(zr.sum() / np.sqrt(len(zr)))
            blk.observed[i, j] = float(np.nansum(obs[in_quarter & have, j]))
            blk.expected[i, j] = float(np.nansum(exp_[in_quarter & have, j]))
    return blk


# ----------------------------------------------------------------------------------------------
# public API


def _block_frame(blk: _Block, codes: np.ndarray, cat: pd.DataFrame) -> pd.DataFrame:
    n_i, n_t = len(blk.ids), len(codes)
    ids = np.repeat(np.asarray(blk.ids, dtype=object), n_t)
    sub = cat.loc[blk.ids]
    rep = lambda a: np.repeat(np.asarray(a), n_t)  # noqa: E731
    frame = pd.DataFrame(
        {
            "trust_code": np.tile(codes, n_i),
            "indicator_id": ids,
            "domain": rep(sub["domain"].to_numpy()),
            "type": rep(sub["type"].to_numpy()),
            "observed": blk.observed.ravel(),
            "expected": blk.expected.ravel(),
            "z": blk.z.ravel(),
            "z_adjusted": blk.z_adjusted.ravel(),
            "p_value": blk.p_value.ravel(),
            "flag": blk.flag.ravel(),
            "method": rep(blk.method),
            "phi": rep(blk.phi),
            "tau2": rep(blk.tau2),
            "value": blk.value.ravel(),
            "denominator": blk.denominator.ravel(),
            "reason": blk.reason.ravel(),
            "polarity": rep(sub["polarity"].to_numpy()),
            "z_sd": blk.z_sd.ravel(),
            "threshold_risk": rep(sub["risk_threshold"].to_numpy(float)),
            "threshold_elevated": rep(sub["elevated_threshold"].to_numpy(float)),
            "p_risk": rep(sub["p_risk"].to_numpy(float)),
            "p_elevated": rep(sub["p_elevated"].to_numpy(float)),
            "band": blk.band.ravel()
            if blk.band is not None
            else np.full(n_i * n_t, None, dtype=object),
            "cusum": blk.cusum.ravel() if blk.cusum is not None else np.full(n_i * n_t, np.nan),
        }
    )
    return frame


def assess(
    bundle_indicators: pd.DataFrame,
    catalogue: pd.DataFrame,
    quarter: Quarter | str,
    derived: pd.DataFrame | None = None,
    *,
    trusts: pd.DataFrame | None = None,
    precomputed: pd.DataFrame | None = None,
    missing_sources: Iterable[str] = (),
    rule_flag: str = "elevated_risk",
) -> pd.DataFrame:
    """Assess every catalogue indicator for every trust in one quarter (see module docstring).

    Parameters
    ----------
    bundle_indicators : DataFrame
        ``indicators.csv`` rows (columns as DESIGN.md section 4).
    catalogue : DataFrame
        ``load_catalogue()``.
    quarter : Quarter or "2013Q3"
    derived : DataFrame, optional
        Extra rows in the indicators.csv shape (staffing / intelligence from
        :func:`derive_staffing` / :func:`derive_intelligence`, mortality ratios and monthly
        mortality z from the mortality module).
    trusts : DataFrame, optional
        ``trusts.csv``: the trusts to assess (all get a row per indicator) and ``trust_type`` for
        ``applies_to_specialist``. Default: every trust code seen in the inputs.
    precomputed : DataFrame, optional
        Flags computed elsewhere (e.g. the mortality alert indicator ``mort_alert`` from the
        CUSUM monitor): at least ``trust_code, indicator_id, flag``; any flags.csv column given
        is kept. For an indicator given here every in-scope trust without a row is
        ``not_applicable``.
    missing_sources : iterable of str
        Sources absent from the bundle (``derived_from`` values such as ``staffing``, or
        catalogue ``source`` names): their indicators are ``not_applicable`` with that reason.
    rule_flag : {"elevated_risk", "risk"}
        Flag for a rule indicator that reaches its ``rule_min_count``.

    Returns
    -------
    DataFrame
        flags.csv columns in contract order, then :data:`EXTRA_COLUMNS`; one row per catalogue
        indicator x trust, sorted by trust_code, indicator_id. ``attrs["excluded_from_banding"]``
        lists the indicators below national coverage (also ``in_banding == False``).
    """
    q = Quarter.parse(str(quarter))
    if rule_flag not in ("risk", "elevated_risk"):
        raise ValueError(f"rule_flag must be 'risk' or 'elevated_risk', got {rule_flag!r}")
    cat = catalogue
    rows = _prepare_rows([("indicators.csv", bundle_indicators), ("derived", derived)], cat)
    pre = _prepare_precomputed(precomputed, cat)

    if trusts is not None:
        codes = np.asarray(sorted(trusts["trust_code"].astype(str).unique()), dtype=object)
    else:
        seen = set(rows["trust_code"]) | (set(pre["trust_code"]) if pre is not None else set())
        codes = np.asarray(sorted(seen), dtype=object)
    pos = {c: k for k, c in enumerate(codes)}

    monthly = cat["type"] == "cusum_z"
    cross = rows[~rows["indicator_id"].map(monthly)]
    dup = cross.duplicated(["trust_code", "indicator_id"], keep=False)
    if dup.any():
        first = cross[dup].head(5)
        where = ", ".join(
            f"{o} row {r}" for o, r in zip(first["_origin"], first["_row"], strict=True)
        )
        raise SurveillanceError(
            f"{where}: [unique] more than one row for the same trust_code x indicator_id "
            f"(non-monthly indicators have one row per quarter)"
        )

    pre_ids = set(pre["indicator_id"]) if pre is not None else set()
    frames = []
    ind_types = cat["type"]

    def rows_for(ids):
        return rows[rows["indicator_id"].isin(ids)]

    z_ids = [i for i in cat.index if ind_types[i] in Z_CROSS_TYPES and i not in pre_ids]
    keys = {}
    for i in z_ids:
        r = cat.loc[i]
        key = (
            r["type"],
            r["sr_method"] if r["type"] == "ratio" else None,
            r["trim"],
            r["overdispersion"],
        )
        keys.setdefault(key, []).append(i)
    for key, ids in sorted(keys.items(), key=lambda kv: str(kv[0])):
        frames.append(_block_frame(_z_block(key[0], key, ids, cat, rows_for(ids), pos), codes, cat))
    for kind, fn in (
        ("count", lambda ids: _count_block(ids, cat, rows_for(ids), pos)),
        ("rule", lambda ids: _rule_block(ids, cat, rows_for(ids), pos, rule_flag)),
        ("external_band", lambda ids: _band_block(ids, cat, rows_for(ids), pos)),
        ("cusum_z", lambda ids: _cusum_block(ids, cat, rows_for(ids), pos, q)),
    ):
        ids = [i for i in cat.index if ind_types[i] == kind and i not in pre_ids]
        if ids:
            frames.append(_block_frame(fn(ids), codes, cat))
    if pre_ids:
        frames.append(_precomputed_frame(pre, sorted(pre_ids), codes, cat))

    flags = pd.concat(frames, ignore_index=True)
    flags = _apply_scope(flags, cat, trusts, rows, missing_sources)
    flags, excluded = _coverage(flags, cat)
    flags["persistent"] = False
    flags = flags.sort_values(["trust_code", "indicator_id"], kind="mergesort").reset_index(
        drop=True
    )
    flags = flags[FLAGS_COLUMNS + EXTRA_COLUMNS]
    flags.attrs["excluded_from_banding"] = excluded
    return flags


def _prepare_precomputed(pre: pd.DataFrame | None, cat: pd.DataFrame) -> pd.DataFrame | None:
    if pre is None or len(pre) == 0:
        return None
    missing = {"trust_code", "indicator_id", "flag"} - set(pre.columns)
    if missing:
        raise SurveillanceError(f"precomputed flags: missing column(s) {sorted(missing)}")
    pre = pre.assign(
        trust_code=pre["trust_code"].astype(str), indicator_id=pre["indicator_id"].astype(str)
    )
    bad = ~pre["flag"].isin(["no_evidence", "risk", "elevated_risk", "not_applicable"])
    if bad.any():
        rows = (np.flatnonzero(bad.to_numpy()) + 1)[:10].tolist()
        raise SurveillanceError(
            f"precomputed flags row(s) {rows} column 'flag': unknown flag value"
        )
    unknown = ~pre["indicator_id"].isin(cat.index)
    if unknown.any():
        raise SurveillanceError(
            f"precomputed flags: unknown indicator(s) {pre.loc[unknown, 'indicator_id'].unique()[:5].tolist()}"
        )
    if pre.duplicated(["trust_code", "indicator_id"]).any():
        raise SurveillanceError("precomputed flags: duplicate trust_code x indicator_id rows")
    return pre


def _precomputed_frame(pre, ids, codes, cat) -> pd.DataFrame:
    blk = _empty_block(ids, len(codes))
    blk.method[:] = "precomputed"
    frame = _block_frame(blk, codes, cat)
    key = frame.set_index(["trust_code", "indicator_id"]).index
    given = pre.set_index(["trust_code", "indicator_id"])
    hit = key.isin(given.index)
    for col in (
        "observed",
        "expected",
        "z",
        "z_adjusted",
        "p_value",
        "flag",
        "method",
        "phi",
        "tau2",
        "value",
        "denominator",
        "reason",
        "cusum",
    ):
        if col in given.columns:
            vals = given[col].reindex(key[hit]).to_numpy()
            if col == "method":
                vals = np.where(pd.isna(vals) | (vals == ""), "precomputed", vals)
            frame.loc[hit, col] = vals
    frame.loc[hit & frame["reason"].isna(), "reason"] = ""
    frame.loc[hit & (frame["flag"] != "not_applicable"), "reason"] = ""
    return frame


def _apply_scope(flags, cat, trusts, rows, missing_sources) -> pd.DataFrame:
    flags = flags.copy()
    missing = set(missing_sources)
    if missing:
        hit_ids = [
            i
            for i in cat.index
            if cat.loc[i, "derived_from"] in missing or cat.loc[i, "source"] in missing
        ]
        m = flags["indicator_id"].isin(hit_ids)
        src = flags.loc[m, "indicator_id"].map(
            lambda i: (
                cat.loc[i, "derived_from"]
                if cat.loc[i, "derived_from"] in missing
                else cat.loc[i, "source"]
            )
        )
        _blank(flags, m)
        flags.loc[m, "reason"] = "source missing: " + src.astype(str)
    have_rows = set(rows["indicator_id"])
    no_rows = ~flags["indicator_id"].isin(have_rows) & (flags["method"] != "precomputed")
    no_rows &= flags["flag"] == "not_applicable"
    flags.loc[no_rows & (flags["reason"].isin(["no data for this trust", "no data"])), "reason"] = (
        "source missing: no data for this indicator this quarter"
    )
    if trusts is not None and "trust_type" in trusts.columns:
        specialist = set(
            trusts.loc[trusts["trust_type"].astype(str) == "acute_specialist", "trust_code"].astype(
                str
            )
        )
        not_spec = set(cat.index[~cat["applies_to_specialist"].astype(bool)])
        m = flags["trust_code"].isin(specialist) & flags["indicator_id"].isin(not_spec)
        _blank(flags, m)
        flags.loc[m, "reason"] = "does not apply to specialist trusts"
    return flags


def _blank(flags: pd.DataFrame, mask: pd.Series) -> None:
    for col in (
        "observed",
        "expected",
        "z",
        "z_adjusted",
        "p_value",
        "value",
        "denominator",
        "z_sd",
        "cusum",
    ):
        flags.loc[mask, col] = np.nan
    flags.loc[mask, "flag"] = "not_applicable"


def _coverage(flags: pd.DataFrame, cat: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    in_scope = flags["reason"] != "does not apply to specialist trusts"
    applicable = flags["flag"] != "not_applicable"
    cov = (applicable & in_scope).groupby(flags["indicator_id"]).sum() / in_scope.groupby(
        flags["indicator_id"]
    ).sum().clip(lower=1)
    need = cat["min_coverage"].reindex(cov.index).astype(float)
    excluded = sorted(cov.index[cov < need])
    flags = flags.copy()
    flags["in_banding"] = ~flags["indicator_id"].isin(excluded)
    return flags, excluded


def excluded_from_banding(flags: pd.DataFrame) -> list[str]:
    """Indicators below national coverage this quarter (``in_banding`` False)."""
    if "in_banding" in flags.columns:
        return sorted(flags.loc[~flags["in_banding"].astype(bool), "indicator_id"].unique())
    return list(flags.attrs.get("excluded_from_banding", []))


def coverage_table(flags: pd.DataFrame, catalogue: pd.DataFrame) -> pd.DataFrame:
    """Per indicator: trusts applicable, trusts in scope, coverage, min_coverage, in_banding."""
    in_scope = flags["reason"] != "does not apply to specialist trusts"
    applicable = (flags["flag"] != "not_applicable") & in_scope
    out = pd.DataFrame(
        {
            "applicable": applicable.groupby(flags["indicator_id"]).sum(),
            "in_scope": in_scope.groupby(flags["indicator_id"]).sum(),
        }
    )
    out["coverage"] = out["applicable"] / out["in_scope"].clip(lower=1)
    out["min_coverage"] = catalogue["min_coverage"].reindex(out.index).astype(float)
    out["in_banding"] = out["coverage"] >= out["min_coverage"]
    return out.reset_index()


# ----------------------------------------------------------------------------------------------
# derived indicators (staffing.csv, intelligence.csv) in the indicators.csv shape

STAFF_GROUP_CODES = {"registered_nurse": "rn", "care_staff": "cs"}
FILL_THRESHOLD = 0.9


def _ratio_se(actual: pd.Series, planned: pd.Series) -> float:
    """Standard error of the ratio estimator R = sum a / sum p over n ward-months.

    se(R) = sqrt(sum (a_i - R p_i)^2 / (n (n - 1))) / mean(p) (Cochran 1977, section 6.3).
    NaN when n < 2.
    """
    n = len(actual)
    if n < 2 or planned.sum() <= 0:
        return float("nan")
    r = actual.sum() / planned.sum()
    resid = actual - r * planned
    return float(np.sqrt((resid**2).sum() / (n * (n - 1))) / planned.mean())


def derive_staffing(
    staffing: pd.DataFrame, quarter: Quarter | str, frequent_share: float = 0.5
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ward fill-rate indicators from ``staffing.csv`` for the quarter's months.

    Returns ``(rows, wards)``:

    * ``rows`` in the indicators.csv shape: ``staff_fill_{rn,cs}_{day,night}`` (score: value =
      actual / planned hours over the trust's ward-months, standard_error by the ratio estimator,
      numerator / denominator = actual / planned hours) and ``staff_wards_under90`` (proportion:
      ward-months whose registered-nurse fill rate, day and night together, is under 90%, over
      ward-months with registered-nurse hours planned). No fixed staffing ratio is assumed.
    * ``wards``: one row per trust x ward with ``months``, ``months_under_90``,
      ``share_under_90``, ``rn_fill`` and ``frequently_under_90`` (share under 90% >=
      ``frequent_share``), for the reports' list of wards frequently failing to meet planned
      levels.
    """
    q = Quarter.parse(str(quarter))
    need = {
        "trust_code",
        "ward_code",
        "month",
        "staff_group",
        "shift",
        "planned_hours",
        "actual_hours",
    }
    if missing := need - set(staffing.columns):
        raise SurveillanceError(f"staffing.csv: missing column(s) {sorted(missing)}")
    s = staffing.assign(
        trust_code=staffing["trust_code"].astype(str),
        ward_code=staffing["ward_code"].astype(str),
        month=staffing["month"].astype(str).str.slice(0, 7),
        planned_hours=_numeric(staffing, "planned_hours", "staffing.csv"),
        actual_hours=_numeric(staffing, "actual_hours", "staffing.csv"),
    )
    s = s[s["month"].isin(q.months())]
    unknown = ~s["staff_group"].isin(list(STAFF_GROUP_CODES))
    if unknown.any():
        raise SurveillanceError(
            f"staffing.csv column 'staff_group': unknown value(s) {s.loc[unknown, 'staff_group'].unique()[:5].tolist()}"
        )
    start, end = q.start.strftime("%Y-%m-%d"), q.end.strftime("%Y-%m-%d")
    out = []
    wm = s.groupby(["trust_code", "staff_group", "shift", "ward_code", "month"], sort=True)[
        ["planned_hours", "actual_hours"]
    ].sum()
    for (trust, group, shift), g in wm.groupby(level=[0, 1, 2], sort=True):
        planned, actual = g["planned_hours"], g["actual_hours"]
        value = actual.sum() / planned.sum() if planned.sum() > 0 else np.nan
        out.append(
            {
                "trust_code": trust,
                "indicator_id": f"staff_fill_{STAFF_GROUP_CODES[group]}_{shift}",
                "numerator": float(actual.sum()),
                "denominator": float(planned.sum()),
                "value": float(value),
                "standard_error": _ratio_se(actual, planned),
            }
        )
    rn = s[s["staff_group"] == "registered_nurse"]
    ward_month = rn.groupby(["trust_code", "ward_code", "month"], sort=True)[
        ["planned_hours", "actual_hours"]
    ].sum()
    ward_month = ward_month[ward_month["planned_hours"] > 0]
    ward_month["fill"] = ward_month["actual_hours"] / ward_month["planned_hours"]
    ward_month["under"] = ward_month["fill"] < FILL_THRESHOLD
    per_trust = ward_month.groupby(level=0)["under"].agg(["sum", "count"])
    for trust, r in per_trust.iterrows():
        out.append(
            {
                "trust_code": trust,
                "indicator_id": "staff_wards_under90",
                "numerator": float(r["sum"]),
                "denominator": float(r["count"]),
                "value": float(r["sum"] / r["count"]),
                "standard_error": np.nan,
            }
        )
    rows = pd.DataFrame(
        out,
        columns=[
            "trust_code",
            "indicator_id",
            "numerator",
            "denominator",
            "value",
            "standard_error",
        ],
    )
    rows.insert(2, "period_start", start)
    rows.insert(3, "period_end", end)
    rows["band"] = pd.NA
    rows = rows.sort_values(["trust_code", "indicator_id"], kind="mergesort").reset_index(drop=True)

    wards = ward_month.groupby(level=[0, 1]).agg(
        months=("under", "size"),
        months_under_90=("under", "sum"),
        planned_hours=("planned_hours", "sum"),
        actual_hours=("actual_hours", "sum"),
    )
    wards["share_under_90"] = wards["months_under_90"] / wards["months"]
    wards["rn_fill"] = wards["actual_hours"] / wards["planned_hours"]
    wards["frequently_under_90"] = wards["share_under_90"] >= frequent_share
    wards = wards.reset_index()[
        [
            "trust_code",
            "ward_code",
            "months",
            "months_under_90",
            "share_under_90",
            "rn_fill",
            "frequently_under_90",
        ]
    ]
    return rows[INDICATOR_COLUMNS], wards


INTELLIGENCE_RULES = {
    "intel_whistleblowing": "whistleblowing",
    "intel_qsg_concern": "qsg_concern",
    "intel_coroner_reports": "coroner_report",
    "intel_healthwatch": "healthwatch",
}


def spells_activity(spells: pd.DataFrame, quarter: Quarter | str, months: int = 12) -> pd.Series:
    """Admitted spells per trust discharged in the ``months`` to the quarter end (activity)."""
    q = Quarter.parse(str(quarter))
    dates = pd.to_datetime(spells["discharge_date"])
    m = (dates >= q.lookback_start(months)) & (dates <= q.end)
    codes = spells.loc[m, "trust_code"]
    if isinstance(codes.dtype, pd.CategoricalDtype):  # dictionary-encoded (Parquet): count codes
        counts = codes.value_counts(sort=False)
        counts = counts[counts > 0]
        counts.index = counts.index.astype(str)
        return counts.sort_index().astype(float)
    return codes.astype(str).value_counts().sort_index().astype(float)


def derive_intelligence(
    intelligence: pd.DataFrame,
    quarter: Quarter | str,
    trust_codes: Iterable[str],
    activity: pd.Series | None = None,
    catalogue: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Soft-intelligence indicators from ``intelligence.csv`` in the indicators.csv shape.

    Over the look-back of each indicator's cadence (12 months for rolling_12m):
    ``intel_whistleblowing``, ``intel_qsg_concern``, ``intel_coroner_reports``,
    ``intel_healthwatch``: count of *validated* items of that source (rule);
    ``intel_complaints_rate``: complaints per spell (rate; numerator complaints, denominator
    spells; ``value`` per 1,000 spells); ``intel_complaints_harm``: complaints with severity death
    or serious injury (count; activity = spells). The last two need ``activity`` (spells per
    trust, :func:`spells_activity`); without it they are not produced (source missing).
    Every trust in ``trust_codes`` gets a row (zero counts included).
    """
    q = Quarter.parse(str(quarter))
    need = {"trust_code", "received_date", "source", "severity", "validated"}
    if missing := need - set(intelligence.columns):
        raise SurveillanceError(f"intelligence.csv: missing column(s) {sorted(missing)}")
    months = 12
    if catalogue is not None and "intel_whistleblowing" in catalogue.index:
        months = 3 if catalogue.loc["intel_whistleblowing", "cadence"] == "quarterly" else 12
    start = q.lookback_start(months)
    dates = pd.to_datetime(intelligence["received_date"])
    it = intelligence[(dates >= start) & (dates <= q.end)].assign(
        trust_code=lambda d: d["trust_code"].astype(str)
    )
    validated = it["validated"]
    if validated.dtype != bool:
        validated = validated.astype(str).str.strip().str.lower().isin(["true", "1", "yes"])
    codes = sorted(set(map(str, trust_codes)))
    rows = []

    def counts(mask) -> pd.Series:
        return it.loc[mask, "trust_code"].value_counts().reindex(codes, fill_value=0).astype(float)

    for ind, source in INTELLIGENCE_RULES.items():
        c = counts((it["source"] == source) & validated)
        rows.append(
            pd.DataFrame({"trust_code": codes, "indicator_id": ind, "numerator": c.to_numpy()})
        )
    if activity is not None:
        act = activity.reindex(codes).astype(float)
        complaints = counts(it["source"] == "complaint")
        harm = counts(
            (it["source"] == "complaint") & it["severity"].isin(["death", "serious_injury"])
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = 1000.0 * complaints / act
        rows.append(
            pd.DataFrame(
                {
                    "trust_code": codes,
                    "indicator_id": "intel_complaints_rate",
                    "numerator": complaints.to_numpy(),
                    "denominator": act.to_numpy(),
                    "value": rate.to_numpy(),
                }
            )
        )
        rows.append(
            pd.DataFrame(
                {
                    "trust_code": codes,
                    "indicator_id": "intel_complaints_harm",
                    "numerator": harm.to_numpy(),
                    "denominator": act.to_numpy(),
                    "value": harm.to_numpy(),
                }
            )
        )
    out = pd.concat(rows, ignore_index=True)
    out["period_start"] = start.strftime("%Y-%m-%d")
    out["period_end"] = q.end.strftime("%Y-%m-%d")
    for col in INDICATOR_COLUMNS:
        if col not in out.columns:
            out[col] = np.nan if col != "band" else pd.NA
    return (
        out[INDICATOR_COLUMNS]
        .sort_values(["trust_code", "indicator_id"], kind="mergesort")
        .reset_index(drop=True)
    )
