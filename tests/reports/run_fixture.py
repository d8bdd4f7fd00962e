"""A small hand-made run directory that follows the DESIGN.md section 6 output contract exactly.

Twelve trusts in four regions, eight indicators of every kind of type, two mortality alerts with
their CUSUM paths, ward staffing and band history extras, and ``explanations.csv`` as the pipeline
writes it. One indicator (the inpatient survey) is left out of banding nationally while two trusts
are still flagged on it, so counts can be checked against ``bands.csv``. Deliberately hostile strings: a trust
name containing ``<script>alert(1)</script>``, a trust name that is a spreadsheet formula, a
region with ``&`` and a catalogue text with HTML markup. Small counts (1-4) appear in mortality,
alerts and never events so suppression can be checked.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

SCRIPT_NAME = "<script>alert(1)</script> Hospitals NHS Trust"
#: indicators left out of banding this quarter (national coverage below the minimum), with reason
EXCLUDED = {
    "inpatient_survey": "national coverage 5/12 trusts is below the minimum 50%; most common: "
    "no data for this trust",
}
FORMULA_NAME = "=cmd|' /C calc'!A0"
QUARTER = "2013Q3"

TRUSTS = [
    # code, name, region, band, previous_band, movement, reason
    ("RAA", "Aldgate University Hospitals NHS Trust", "London", "1", "2", "up", "score"),
    ("RBB", SCRIPT_NAME, "London", "2", "2", "same", "score"),
    (
        "RCC",
        "Carlisle & District NHS Foundation Trust",
        "North of England",
        "1",
        "1",
        "same",
        "special measures: band 1 by override",
    ),
    ("RDD", FORMULA_NAME, "North of England", "3", "5", "up", "score"),
    ("REE", "Ely Hospitals NHS Trust", "Midlands & East", "4", "3", "down", "score"),
    ("RFF", "Frome Community Hospitals NHS Trust", "Midlands & East", "5", "5", "same", "score"),
    ("RGG", "Grantham General NHS Trust", "Midlands & East", "6", "6", "same", "score"),
    (
        "RHH",
        "Hove Heart and Chest NHS Foundation Trust",
        "South",
        "not_banded",
        "not_banded",
        "same",
        "too_few_indicators",
    ),
    (
        "RJJ",
        "Jarrow NHS Trust",
        "North of England",
        "recently_inspected",
        "4",
        "new",
        "inspected 2013-06-12, within 6 months before the quarter end 2013-09-30",
    ),
    ("RKK", "Kendal Royal NHS Trust", "South", "3", "", "new", "score"),
    ("RLL", "Luton Valley NHS Trust", "South", "5", "6", "up", "score"),
    ("RMM", "Margate Bay NHS Foundation Trust", "London", "6", "4", "down", "score"),
]

CATALOGUE_ROWS = [
    # id, name, domain, type, polarity, derived_from, sr_method
    (
        "shmi",
        "Summary hospital-level mortality indicator",
        "effective",
        "ratio",
        "higher_is_worse",
        "spells",
        "SHMI",
    ),
    ("ae_4h", "A&E waits over 4 hours", "responsive", "proportion", "higher_is_worse", "", ""),
    ("never_events", "Never events", "safe", "count", "higher_is_worse", "", ""),
    ("staff_engagement", "Staff survey: engagement", "well_led", "score", "lower_is_worse", "", ""),
    (
        "whistleblowing",
        "Validated whistleblowing alerts",
        "well_led",
        "rule",
        "higher_is_worse",
        "intelligence",
        "",
    ),
    (
        "inpatient_survey",
        "Inpatient survey: overall experience",
        "caring",
        "external_band",
        "higher_is_worse",
        "",
        "",
    ),
    (
        "mortality_monthly",
        "Monthly mortality CUSUM",
        "effective",
        "cusum_z",
        "higher_is_worse",
        "spells",
        "",
    ),
    (
        "rn_fill_day",
        "Registered nurse day fill rate",
        "safe",
        "proportion",
        "lower_is_worse",
        "staffing",
        "",
    ),
    (
        "dq_nrls_submission",
        "Data quality: late or missing NRLS uploads",
        "well_led",
        "rule",
        "higher_is_worse",
        "",
        "",
    ),
]


def fixture_catalogue() -> pd.DataFrame:
    """A catalogue frame with the columns of ``load_catalogue()`` for the fixture indicators."""
    rows = []
    for ind, name, domain, typ, polarity, derived, sr in CATALOGUE_ROWS:
        rows.append(
            {
                "indicator_id": ind,
                "name": name,
                "domain": domain,
                "tier": 1,
                "type": typ,
                "polarity": polarity,
                "source": "fixture",
                "cadence": "quarterly",
                "level": "trust",
                "derived_from": derived,
                "sr_method": sr or None,
                "trim": "winsorise" if typ != "ratio" else "truncate",
                "overdispersion": "additive",
                "risk_threshold": 1.96,
                "elevated_threshold": 3.0,
                "p_risk": 0.025,
                "p_elevated": 0.001,
                "min_denominator": 0,
                "min_coverage": 0.5,
                "applies_to_specialist": True,
                "band_map": None,
                "means": f"{name} is higher or lower than expected for this trust's case mix <b>here</b>.",
                "does_not_mean": f"A flag on {name.lower()} does not mean care is unsafe.",
            }
        )
    return pd.DataFrame(rows).set_index("indicator_id")


def _flag(z_adj: float) -> str:
    if not np.isfinite(z_adj):
        return "not_applicable"
    return "elevated_risk" if z_adj > 3.0 else "risk" if z_adj > 1.96 else "no_evidence"


def _dl_tau2(z: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """Winsorised phi and DerSimonian-Laird tau2 (METHODS.md section 2), for fixture realism."""
    lo, hi = np.quantile(z, [0.1, 0.9])
    zw = np.clip(z, lo, hi)
    i = len(z)
    phi = float(np.mean(zw**2))
    w = 1.0 / s**2
    tau2 = (
        0.0
        if i * phi < i - 1
        else max(0.0, (i * phi - (i - 1)) / (w.sum() - (w**2).sum() / w.sum()))
    )
    return phi, float(tau2)


def _flags(rng: np.random.Generator) -> pd.DataFrame:
    codes = [t[0] for t in TRUSTS]
    n = len(codes)
    rows = []
    # shmi: SHMI-method ratio, trust RAA and RCC high.
    e = np.round(rng.uniform(400, 3000, n), 2)
    rr = np.exp(rng.normal(0, 0.05, n))
    rr[0], rr[2] = 1.30, 1.18
    o = rng.poisson(e * rr).astype(float)
    y, s = np.log(o / e), 1 / np.sqrt(e)
    phi, tau2 = _dl_tau2(y / s, s)
    za = y / np.sqrt(s**2 + tau2)
    for i, c in enumerate(codes):
        rows.append(
            (
                c,
                "shmi",
                "effective",
                "ratio",
                o[i],
                e[i],
                y[i] / s[i],
                za[i],
                float(2 * (1 - _norm_cdf(abs(za[i])))),
                _flag(za[i]),
                "SHMI",
                phi,
                tau2,
            )
        )
    # ae_4h: proportion of attendances waiting over four hours; observed = breaches,
    # expected = attendances x national proportion.
    att = rng.integers(30000, 120000, n).astype(float)
    p = np.clip(rng.normal(0.08, 0.015, n), 0.01, 0.5)
    p[3] = 0.14
    br = rng.binomial(att.astype(int), p).astype(float)
    p0 = br.sum() / att.sum()
    y = np.arcsin(np.sqrt(br / att))
    s = 1 / (2 * np.sqrt(att))
    t0 = np.arcsin(np.sqrt(p0))
    phi, tau2 = _dl_tau2((y - t0) / s, s)
    za = (y - t0) / np.sqrt(s**2 + tau2)
    for i, c in enumerate(codes):
        if c == "RHH":  # specialist trust without a type 1 A&E
            rows.append(
                (
                    c,
                    "ae_4h",
                    "responsive",
                    "proportion",
                    np.nan,
                    np.nan,
                    np.nan,
                    np.nan,
                    np.nan,
                    "not_applicable",
                    "arcsine",
                    phi,
                    tau2,
                )
            )
            continue
        rows.append(
            (
                c,
                "ae_4h",
                "responsive",
                "proportion",
                br[i],
                att[i] * p0,
                (y[i] - t0) / s[i],
                za[i],
                float(1 - _norm_cdf(za[i])),
                _flag(za[i]),
                "arcsine",
                phi,
                tau2,
            )
        )
    # never_events: small counts, Poisson tail test.
    activity = rng.uniform(0.5, 2.5, n)
    ne = np.array([3, 0, 4, 1, 0, 2, 0, 0, 1, 0, 6, 0], dtype=float)
    mu = activity * ne.sum() / activity.sum()
    for i, c in enumerate(codes):
        pv = float(_poisson_sf(int(ne[i]), mu[i]))
        flag = "elevated_risk" if pv < 0.001 else "risk" if pv < 0.025 else "no_evidence"
        rows.append(
            (
                c,
                "never_events",
                "safe",
                "count",
                ne[i],
                round(mu[i], 4),
                np.nan,
                np.nan,
                pv,
                flag,
                "poisson",
                np.nan,
                np.nan,
            )
        )
    # staff_engagement: survey score, lower is worse (z oriented so positive = worse).
    v = np.round(rng.normal(3.75, 0.06, n), 3)
    v[4] = 3.55
    se = np.full(n, 0.02)
    t0 = float(v.mean())
    z = -(v - t0) / se
    phi, tau2 = _dl_tau2(z, se)
    za = -(v - t0) / np.sqrt(se**2 + tau2)
    for i, c in enumerate(codes):
        rows.append(
            (
                c,
                "staff_engagement",
                "well_led",
                "score",
                v[i],
                round(t0, 6),
                z[i],
                za[i],
                float(1 - _norm_cdf(za[i])),
                _flag(za[i]),
                "normal",
                phi,
                tau2,
            )
        )
    # whistleblowing: rule on validated cases.
    wb = [2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    for i, c in enumerate(codes):
        rows.append(
            (
                c,
                "whistleblowing",
                "well_led",
                "rule",
                float(wb[i]),
                np.nan,
                np.nan,
                np.nan,
                np.nan,
                "elevated_risk" if wb[i] else "no_evidence",
                "rule",
                np.nan,
                np.nan,
            )
        )
    # dq_nrls_submission: late or missing incident uploads (a data-quality rule), REE only.
    for c in codes:
        late = 1.0 if c == "REE" else 0.0
        flag = "risk" if late else "no_evidence"
        row = (c, "dq_nrls_submission", "well_led", "rule", late, np.nan, np.nan, np.nan, np.nan)
        rows.append((*row, flag, "rule", np.nan, np.nan))
    # inpatient_survey: publisher's band mapped to a flag.
    for c in codes:
        flag = "risk" if c in ("RAA", "REE") else "no_evidence"
        rows.append(
            (
                c,
                "inpatient_survey",
                "caring",
                "external_band",
                np.nan,
                np.nan,
                np.nan,
                np.nan,
                np.nan,
                flag,
                "band_map",
                np.nan,
                np.nan,
            )
        )
    # mortality_monthly: CUSUM of monthly adjusted z.
    for c in codes:
        stat = 6.1 if c == "RAA" else round(float(rng.uniform(0, 4)), 3)
        rows.append(
            (
                c,
                "mortality_monthly",
                "effective",
                "cusum_z",
                stat,
                5.48,
                np.nan,
                np.nan,
                np.nan,
                "elevated_risk" if stat > 5.48 else "no_evidence",
                "cusum",
                np.nan,
                np.nan,
            )
        )
    # rn_fill_day: registered nurse day fill (lower is worse): observed = actual hours,
    # expected = planned x national fill, denominator (extra column) = planned hours.
    planned = rng.uniform(80000, 300000, n).round(0)
    fill = np.clip(rng.normal(0.97, 0.02, n), 0.8, 1.0)
    fill[0] = 0.86
    actual = (planned * fill).round(0)
    y = np.arcsin(np.sqrt(np.minimum(actual / planned, 1)))
    s = 1 / (2 * np.sqrt(planned))
    p0_fill = actual.sum() / planned.sum()
    t0 = np.arcsin(np.sqrt(p0_fill))
    z = -(y - t0) / s
    phi, tau2 = _dl_tau2(z, s)
    za = -(y - t0) / np.sqrt(s**2 + tau2)
    for i, c in enumerate(codes):
        rows.append(
            (
                c,
                "rn_fill_day",
                "safe",
                "proportion",
                actual[i],
                planned[i] * p0_fill,
                z[i],
                za[i],
                float(1 - _norm_cdf(za[i])),
                _flag(za[i]),
                "arcsine",
                phi,
                tau2,
            )
        )
    cols = [
        "trust_code",
        "indicator_id",
        "domain",
        "type",
        "observed",
        "expected",
        "z",
        "z_adjusted",
        "p_value",
        "flag",
        "method",
        "phi",
        "tau2",
    ]
    frame = pd.DataFrame(rows, columns=cols)
    # Extra columns the assessment writes after the contract ones.
    den = dict(zip(codes, att, strict=True))
    frame["denominator"] = np.nan
    m = (frame.indicator_id == "ae_4h") & (frame.flag != "not_applicable")
    frame.loc[m, "denominator"] = frame.loc[m, "trust_code"].map(den)
    m = frame.indicator_id == "rn_fill_day"
    frame.loc[m, "denominator"] = frame.loc[m, "trust_code"].map(
        dict(zip(codes, planned, strict=True))
    )
    # the columns added to the contract (surveillance.contracts.ADDED_COLUMNS)
    frame["trust_name"] = frame["trust_code"].map({t[0]: t[1] for t in TRUSTS})
    frame["indicator_name"] = frame["indicator_id"].map({r[0]: r[1] for r in CATALOGUE_ROWS})
    frame["infinite_note"] = ""
    frame["reason"] = np.where(frame.flag == "not_applicable", "no data for this trust", "")
    frame.loc[(frame.trust_code == "RHH") & (frame.indicator_id == "ae_4h"), "reason"] = (
        "does not apply to specialist trusts"
    )
    # Hove has too few deaths for its monthly chart (a raw reason with a small expected count).
    few = (frame.trust_code == "RHH") & (frame.indicator_id == "mortality_monthly")
    frame.loc[few, ["observed", "expected", "flag", "reason"]] = (
        np.nan,
        np.nan,
        "not_applicable",
        "denominator 0.120607 below min_denominator 3",
    )
    # Luton sent no staff survey return (a gap to ask for).
    gap = (frame.trust_code == "RLL") & (frame.indicator_id == "staff_engagement")
    frame.loc[gap, ["observed", "expected", "z", "z_adjusted", "p_value", "flag", "reason"]] = (
        np.nan,
        np.nan,
        np.nan,
        np.nan,
        np.nan,
        "not_applicable",
        "no data for this trust",
    )
    # The inpatient survey reached too few trusts this quarter: left out of banding nationally,
    # though Aldgate and Ely are still flagged on it (their flags must not be counted).
    frame["in_banding"] = ~frame.indicator_id.isin(EXCLUDED)
    survey = frame.indicator_id == "inpatient_survey"
    unpublished = survey & frame.trust_code.isin(["RFF", "RGG", "RHH", "RJJ", "RKK", "RLL", "RMM"])
    frame.loc[unpublished, ["flag", "reason"]] = ("not_applicable", "no data for this trust")
    frame["persistent"] = (frame.trust_code == "RAA") & (frame.indicator_id == "shmi")
    return frame.sort_values(["trust_code", "indicator_id"])


def _norm_cdf(x: float) -> float:
    from math import erf, sqrt

    return 0.5 * (1 + erf(x / sqrt(2)))


def _poisson_sf(x: int, mu: float) -> float:
    """P(X >= x) for X ~ Poisson(mu)."""
    from math import exp, factorial

    return 1.0 - sum(exp(-mu) * mu**k / factorial(k) for k in range(x))


def _bands(rng: np.random.Generator, flags: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for code, name, region, band, prev, movement, reason in TRUSTS:
        f = flags[(flags.trust_code == code) & flags.in_banding]
        applicable = int((f.flag != "not_applicable").sum())
        risks = int((f.flag == "risk").sum())
        elevated = int((f.flag == "elevated_risk").sum())
        score = risks + 2 * elevated
        probs = rng.dirichlet(np.ones(6) * 0.6)
        if not band.isdigit():
            probs = np.full(6, np.nan)
        else:
            probs = 0.5 * probs
            probs[int(band) - 1] += 0.5
        if code == "RKK":  # an uncertain band 3 that may belong in band 1 or 2
            probs = np.array([0.05, 0.25, 0.4, 0.2, 0.1, 0.0])
        probs = np.round(probs, 3)
        probs[-1] = round(1 - probs[:-1].sum(), 3)
        rows.append(
            {
                "trust_code": code,
                "trust_name": name,
                "region": region,
                "applicable": applicable,
                "risks": risks,
                "elevated_risks": elevated,
                "score": score,
                "max_score": 2 * applicable,
                "proportion_score": round(score / (2 * applicable), 6),
                "band": band,
                "band_reason": reason,
                **{f"p_band_{b + 1}": probs[b] for b in range(6)},
                "previous_band": prev,
                "movement": movement,
            }
        )
    return pd.DataFrame(rows).sort_values("trust_code")


def _mortality_row(code: str, group: str, o: float, e: float) -> tuple:
    z95, z998 = 1.959964, 3.090232
    lim = {
        k: (float(np.exp(-z / np.sqrt(e))), float(np.exp(z / np.sqrt(e))))
        for k, z in (("95", z95), ("998", z998))
    }
    ratio = o / e
    banding = (
        "higher_than_expected"
        if ratio > lim["998"][1]
        else "lower_than_expected"
        if ratio < lim["998"][0]
        else "as_expected"
    )
    return (
        code,
        group,
        o,
        e,
        round(ratio, 6),
        lim["95"][0],
        lim["95"][1],
        lim["998"][0],
        lim["998"][1],
        banding,
    )


def _mortality(rng: np.random.Generator) -> pd.DataFrame:
    """Trust x group ratios; ``ALL`` is the sum of the trust's groups (an ``OTHER`` group holds
    the deaths of the groups not listed), as the contract's ``all_totals`` rule requires, so a
    suppressed group could be worked out from the total if nothing else were hidden."""
    rows = []
    for code, *_ in TRUSTS:
        totals: dict[str, tuple[float, float]] = {}
        for group, scale in (
            ("ALL", 900.0),
            ("AMI", 40.0),
            ("STROKE", 60.0),
            ("FRACTURED_NOF", 3.0),
        ):
            e = round(float(scale * rng.uniform(0.6, 1.4)), 2)
            rr = 1.35 if (code, group) in (("RAA", "ALL"), ("RAA", "AMI")) else 1.0
            o = float(rng.poisson(e * rr))
            if (code, group) == ("RAA", "FRACTURED_NOF"):
                o, e = 3.0, 1.37  # small count: must show as "<5" in reports
            totals[group] = (o, e)
        all_o, all_e = totals.pop("ALL")
        other_o = all_o - sum(o for o, _ in totals.values())
        other_e = round(all_e - sum(e for _, e in totals.values()), 2)
        totals["OTHER"] = (other_o, other_e)
        rows.append(_mortality_row(code, "ALL", all_o, all_e))
        for group, (o, e) in totals.items():
            rows.append(_mortality_row(code, group, o, e))
    cols = [
        "trust_code",
        "diagnosis_group",
        "observed",
        "expected",
        "ratio",
        "lower95",
        "upper95",
        "lower998",
        "upper998",
        "banding",
    ]
    return pd.DataFrame(rows, columns=cols).sort_values(["trust_code", "diagnosis_group"])


def _alerts_and_paths(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """alerts.csv as the monitor publishes it: every signal of the 12-month window, with the
    chart's first signal month and its status (new: first signal in 2013Q3)."""
    months = [str(p) for p in pd.period_range(end="2013-09", periods=12, freq="M")]
    quarter = set(months[-3:])
    alerts, paths = [], []
    for code, group, h, signal_months in (
        ("RAA", "AMI", 4.62, ("2013-08", "2013-09")),  # first signal in the quarter: new
        ("RCC", "STROKE", 4.81, ("2013-04", "2013-08")),  # began in April: persisting
        # signalled in May and restarted below h, nothing since: persisting, no quarter row
        ("RFF", "AMI", 4.55, ("2013-05",)),
    ):
        first = signal_months[0]
        status = "new" if first in quarter else "persisting"
        obs_total = exp_total = 0.0
        for m in months:
            signal = m in signal_months
            e = float(rng.uniform(2.5, 4.0))
            o = float(rng.poisson(e * (2.5 if signal else 1.0)))
            c = round(h * float(rng.uniform(1.02, 1.2) if signal else rng.uniform(0.0, 0.9)), 4)
            paths.append((code, group, m, c, h, o, round(e, 4), signal))
            obs_total += o
            exp_total += e
            if signal:
                alerts.append(
                    (code, group, m, first, c, h, obs_total, round(exp_total, 4), 0.001, status)
                )
    # A third alert with a small observed count (must be suppressed in reports).
    # It expected 0.9 deaths: below the minimum expected (1) for an alert, so it carries a caution.
    alerts.append(("REE", "FRACTURED_NOF", "2013-08", "2013-08", 4.7, 4.5, 4.0, 0.9, 0.001, "new"))
    a_cols = [
        "trust_code",
        "diagnosis_group",
        "signal_month",
        "first_signal_month",
        "cusum",
        "threshold",
        "observed",
        "expected",
        "false_alarm_rate",
        "status",
    ]
    p_cols = [
        "trust_code",
        "diagnosis_group",
        "month",
        "cusum",
        "threshold",
        "observed",
        "expected",
        "signal",
    ]
    frame = pd.DataFrame(alerts, columns=a_cols)
    # the columns added to the contract (surveillance.contracts.ADDED_COLUMNS)
    from surveillance.mortality.monitor import alert_caution

    frame["caution"] = alert_caution(frame["observed"], frame["expected"], 1.0)
    return (
        frame.sort_values(["trust_code", "diagnosis_group", "signal_month"]),
        pd.DataFrame(paths, columns=p_cols),
    )


def _wards() -> pd.DataFrame:
    rows = [
        ("RAA", "RAA-W01", "Ward 1 (Acute Medicine)", 12, 9, 0.75, 0.84),
        ("RAA", "RAA-W07", "Ward 7 (Elderly care)", 12, 5, 0.4167, 0.88),
        ("RAA", "RAA-W09", "Ward 9 (Surgery)", 12, 1, 0.0833, 0.96),
        ("RDD", "RDD-W03", FORMULA_NAME, 12, 6, 0.5, 0.87),
        ("RBB", "RBB-W02", "<img src=x onerror=alert(2)>", 12, 5, 0.4167, 0.9),
    ]
    cols = [
        "trust_code",
        "ward_code",
        "ward_name",
        "ward_months",
        "months_under_90",
        "share_under_90",
        "mean_fill_rate",
    ]
    frame = pd.DataFrame(rows, columns=cols)
    # As the assessment writes it: every ward, flagged when under 90% fill in >= 1/3 of months.
    frame["frequently_under_90"] = frame["share_under_90"] >= 1 / 3
    return frame


def _band_history() -> pd.DataFrame:
    rows = []
    for code, _n, _r, _band, prev, *_ in TRUSTS:
        for q, b in (("2012Q4", "4"), ("2013Q1", "3"), ("2013Q2", prev)):
            if b:
                rows.append((code, q, b))
    return pd.DataFrame(rows, columns=["trust_code", "quarter", "band"])


def write_fixture_run(directory: Path, seed: int = 5) -> Path:
    """Write the hand-made run into ``directory`` (created) and return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    flags = _flags(rng)
    bands = _bands(rng, flags)
    mortality = _mortality(rng)
    alerts, paths = _alerts_and_paths(rng)
    flags.to_csv(directory / "flags.csv", index=False)
    alerts.to_csv(directory / "alerts.csv", index=False)
    mortality.to_csv(directory / "mortality.csv", index=False)
    bands.to_csv(directory / "bands.csv", index=False)
    paths.to_csv(directory / "cusum_paths.csv", index=False)
    from surveillance.banding.explain import contributions

    contributions(flags, top_n=None, excluded=sorted(EXCLUDED)).to_csv(
        directory / "explanations.csv", index=False
    )
    _wards().to_csv(directory / "staffing_wards.csv", index=False)
    _band_history().to_csv(directory / "band_history.csv", index=False)
    manifest = {
        "run_id": "fixture-2013Q3",
        "quarter": QUARTER,
        "inputs": {"trusts.csv": "0" * 64, "indicators.csv": "1" * 64},
        "catalogue_sha256": "2" * 64,
        "model_config_sha256": "3" * 64,
        "code_version": "0.1.0",
        "mlflow_run_id": "",
        "row_counts": {"flags.csv": len(flags), "bands.csv": len(bands)},
        "timings": {"total_seconds": 1.0},
        "excluded_indicators": [
            {"indicator_id": "cancer_62d", "reason": "coverage 31% below minimum 50%"},
            *({"indicator_id": k, "reason": v} for k, v in sorted(EXCLUDED.items())),
        ],
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return directory


def demo_run_dir(project_root: Path) -> Path:
    """A quarterly run of the synthetic nation for the slow tests.

    ``SURVEILLANCE_RUN_DIR`` when set, else ``out/2013Q3`` (the demo run) when present, else a
    test-scale nation synthesised and run once into ``test-artifacts/demo-run/`` (two quarters,
    so movements exist; reports are rendered by the tests themselves). A file lock keeps two
    test workers from building it at the same time.
    """
    import fcntl
    import os

    given = os.environ.get("SURVEILLANCE_RUN_DIR")
    if given:
        return Path(given)
    demo = project_root / "out" / QUARTER
    if (demo / "bands.csv").is_file():
        return demo
    base = project_root / "test-artifacts" / "demo-run"
    target = base / "out" / QUARTER
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "bands.csv").is_file():
            from surveillance.pipeline import RunOptions, run_quarter
            from surveillance.synth.build import synthesise

            synthesise(base / "synth", scale="test", quarter=QUARTER, quarters=2)
            for q in ("2013Q2", QUARTER):
                run_quarter(
                    RunOptions(
                        data_dir=base / "synth" / q,
                        quarter=q,
                        out=base / "out",
                        force=True,
                        render_reports=False,
                        mlflow=False,
                    )
                )
    return target


def demo_bundle_dir(project_root: Path, run: Path) -> Path | None:
    """The input bundle of the demo run when known: ``SURVEILLANCE_BUNDLE_DIR``, the bundle the
    cached test-artifacts run was made from, or ``data/synth/<quarter>`` for ``out/<quarter>``."""
    import os

    given = os.environ.get("SURVEILLANCE_BUNDLE_DIR")
    if given:
        return Path(given)
    cached = project_root / "test-artifacts" / "demo-run"
    if run.resolve() == (cached / "out" / QUARTER).resolve():
        return cached / "synth" / QUARTER
    demo_bundle = project_root / "data" / "synth" / QUARTER  # where `surveillance demo` builds it
    if run.resolve() == (project_root / "out" / QUARTER).resolve() and demo_bundle.is_dir():
        return demo_bundle
    return None
