"""The static HTML site for one run: national summary, one page per trust, one QSG report per
region and a national funnel plot per indicator (DESIGN.md sections 1 and 6).

Every page is self-contained (inline CSS, JS and SVG; no network), rendered by Jinja2 with
autoescaping on, and says what the bands are and are not. Counts of 1 to 4 patients are shown as
"<5" and cannot be worked out from anything else on a page (charts over time, table totals): the
rules are in :mod:`surveillance.reports.suppress` (the analytic CSVs keep the true values). Output is deterministic: the same run gives
byte-identical pages.

Shapes (issue 16): a trust page opens with a one-screen summary (band and how it was reached, the
band probabilities as text, flagged indicators by domain, new and persisting alerts, what bands
are and are not) and keeps the detail collapsed below it; the index ranks by band, then score,
with each trust's main drivers as the run published them (``explanations.csv``, never re-ranked
here); a QSG report answers the group's three questions in its own words. Counts of flags are
those that count in banding, so they agree with ``bands.csv``. Every label a reader sees comes
from :data:`LABELS` through :func:`plain`.
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from surveillance.contracts import MORTALITY_COLUMNS
from surveillance.errors import SurveillanceError
from surveillance.output_contracts import DOMAINS as DOMAIN_CODES
from surveillance.periods import Quarter
from surveillance.reports.figures import (
    FunnelFigure,
    cusum_svg,
    funnel_svg,
    vlad_svg,
)
from surveillance.reports.funnels import FunnelData, funnel_plot_data
from surveillance.reports.paths import alert_paths_from_bundle
from surveillance.reports.run import RunData, read_run
from surveillance.reports.suppress import (
    COMPLEMENT_TEXT,
    complementary_suppression,
    counts_patients,
    is_small_count,
    safe_series,
    suppress_count,
)
from surveillance.reports.suppress import finite_float as _float

DOMAINS = tuple((d, {"well_led": "Well-led"}.get(d, d.capitalize())) for d in DOMAIN_CODES)
#: Indicator types whose ``observed`` is a count (of patients, or of events: which counts are of
#: patients, and so suppressed 1-4, is :func:`surveillance.reports.suppress.counts_patients`).
COUNT_TYPES = frozenset({"ratio", "proportion", "rate", "count", "rule"})

#: Plain words for every internal label a reader may see, by vocabulary (issue 16 item 7). The
#: codes stay in the CSVs; pages show these words. ``plain(kind, code)`` is the only look-up.
LABELS: dict[str, dict[str, str]] = {
    "flag": {
        "elevated_risk": "elevated risk",
        "risk": "risk",
        "no_evidence": "no evidence of risk",
        "not_applicable": "not applicable",
    },
    "band": {
        **{str(b): str(b) for b in range(1, 7)},
        "recently_inspected": "inspected recently",
        "not_banded": "not banded",
    },
    "type": {
        "proportion": "a proportion compared with the national rate",
        "ratio": "observed against expected (a ratio)",
        "rate": "a rate compared with the national rate",
        "count": "a count of rare events against the number expected",
        "score": "a survey score compared with the national mean",
        "external_band": "the publisher's own rating",
        "rule": "a rule: any validated case is a concern",
        "cusum_z": "a monthly trend chart (cumulative sum of monthly scores)",
    },
    "movement": {
        "up": "up (higher priority than last quarter)",
        "down": "down (lower priority than last quarter)",
        "same": "no change",
        "new": "no band last quarter to compare",
    },
    "alert_status": {
        "new": "new (first signal this quarter)",
        "persisting": "persisting (first signal earlier in the window)",
    },
    "mortality_banding": {
        "higher_than_expected": "higher than expected",
        "as_expected": "as expected",
        "lower_than_expected": "lower than expected",
    },
    "source_status": {
        "missing": "missing",
        "late": "late",
        "pre_assembled": "received",
        "derived": "computed by the service",
    },
    "column": {
        "ward_code": "Ward code",
        "ward_name": "Ward",
        "months": "Months reported",
        "ward_months": "Months reported",
        "months_under_90": "Months under 90% of planned hours",
        "share_under_90": "Share of months under 90% of planned hours",
        "mean_fill_rate": "Average fill rate (actual / planned hours)",
        "rn_fill": "Registered nurse fill rate (actual / planned hours)",
        "care_fill": "Care staff fill rate (actual / planned hours)",
        "day_fill": "Day shift fill rate",
        "night_fill": "Night shift fill rate",
    },
    "diagnosis_group": {"ALL": "All diagnosis groups"},
    # manifest.json input_notes (surveillance.bundle.InputNote)
    "input_note": {
        "converted": "converted without loss",
        "normalised": "spelling made consistent",
        "unknown_value": "not known to the models",
    },
}
LABELS["domain"] = dict(DOMAINS)
_TEMPLATES = Path(__file__).resolve().parent / "templates"


def plain(kind: str, code: Any) -> str:
    """The reader's words for an internal label of vocabulary ``kind`` (:data:`LABELS`); a code
    not in the vocabulary is shown with its underscores as spaces, never as a bare code."""
    text = _text(code)
    words = LABELS[kind]
    if text in words:
        return words[text]
    return words.get(text.replace(" ", "_"), text.replace("_", " "))


#: why a trust x indicator is not applicable, in plain words (flags.csv ``reason``, first match)
_NA_REASONS: tuple[tuple[str, str, str], ...] = (
    (r"below min_denominator", "too_few", "too few cases to assess"),
    (r"does not apply", "not_relevant", "does not apply to this kind of trust"),
    (r"no data|missing", "missing", "no data received"),
)


def na_kind(reason: Any) -> tuple[str, str]:
    """(kind, plain words) for a not-applicable reason: ``too_few`` (cases below the indicator's
    minimum; never a gap in the data), ``not_relevant``, ``missing`` or ``other``. The counts in
    the raw reason are left out: they can be small patient counts."""
    text = _text(reason)
    for pattern, kind, words in _NA_REASONS:
        if re.search(pattern, text):
            return kind, words
    return "other", text or "not applicable"


def plain_exclusion(reason: Any) -> str:
    """A national exclusion reason (``excluded_indicators.csv``) in plain words: the coverage it
    reached and the most common reason trusts were not applicable."""
    text = _text(reason)
    m = re.match(r"national coverage (\d+)/(\d+) trusts is below the minimum (\d+%)", text)
    if not m:
        return text
    out = f"assessable at {m.group(1)} of {m.group(2)} trusts (at least {m.group(3)} needed)"
    common = text.split("most common:", 1)
    if len(common) == 2:
        out += f"; mostly {na_kind(common[1])[1]}"
    return out


# --- small-number suppression and formatting ------------------------------------------------------


def _patients(value: Any) -> str:
    """The ``patients`` filter: a patient count suppressed 1-4 (a count hidden so that a
    suppressed one cannot be worked out from a total is already :data:`COMPLEMENT_TEXT`)."""
    return COMPLEMENT_TEXT if value == COMPLEMENT_TEXT else suppress_count(value)


#: ward staffing columns that are proportions (shown as percentages: 86%, not 0.86)
_WARD_PROPORTIONS = frozenset({"share_under_90", "rn_fill", "mean_fill_rate"})


def _ward_cell(column: str, value: Any, is_float: bool) -> str:
    if column in _WARD_PROPORTIONS:
        return _pct(value)
    return _num(value, 3) if is_float else _text(value)


def _num(value: Any, digits: int = 2) -> str:
    v = _float(value)
    return "" if v is None else f"{v:,.{digits}f}"


def _limit(value: Any) -> str:
    """A ratio limit for a table: two decimals, or ">100" where tiny expected counts make the
    limit astronomically wide."""
    v = _float(value)
    if v is None:
        return ""
    return ">100" if v > 100 else f"{v:,.2f}"


def _pct(value: Any) -> str:
    v = _float(value)
    return "" if v is None else f"{v:.0%}"


def _json_value(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v


def _text(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


# --- names and links ------------------------------------------------------------------------------


def slugify(text: str) -> str:
    """A file-name-safe slug: lower case ASCII letters, digits and hyphens."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return slug or "x"


def _unique_names(keys: Sequence[str], make) -> dict[str, str]:
    """Map each key to a unique file stem made by ``make`` (suffix -2, -3 on collisions)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for key in keys:
        stem = make(key)
        candidate, n = stem, 2
        while candidate.lower() in used:
            candidate = f"{stem}-{n}"
            n += 1
        used.add(candidate.lower())
        out[key] = candidate
    return out


def _safe_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(text)).strip("_") or "x"


def band_order(band: Any) -> int:
    """Sort key for bands: 1-6 first, then ``recently_inspected``, then ``not_banded``/other."""
    text = _text(band)
    if text.isdigit():
        return int(text)
    return 7 if text == "recently_inspected" else 8


def band_class(band: Any) -> str:
    text = _text(band)
    return f"band-{text}" if text in {"1", "2", "3", "4", "5", "6"} else "band-other"


def _band_text(band: Any) -> str:
    text = _text(band)
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]
    return text


# --- building -------------------------------------------------------------------------------------


@dataclass
class _Context:
    """Everything the page builders share, indexed once so each page is a few dict look-ups."""

    run: RunData
    info: dict[str, dict]
    trust_file: dict[str, str]
    region_file: dict[str, str]
    funnel_file: dict[str, str]
    funnels: dict[str, FunnelData]
    n_suppressed: dict[str, int]
    trust_names: dict[str, str]
    flags_by_trust: dict[str, list[dict]]
    flags_by_indicator: dict[str, list[dict]]
    alerts_by_trust: dict[str, list[dict]]
    mortality_by_trust: dict[str, list[dict]]
    wards_by_trust: dict[str, list[dict]]
    ward_columns: list[dict]
    paths_by_chart: dict[tuple[str, str], pd.DataFrame]
    history_by_trust: dict[str, list[dict]]
    excluded: list[dict]
    missing_sources: list[dict]
    #: the run's explanations.csv per trust, in its rank order (the flags that count in banding)
    drivers_by_trust: dict[str, list[dict]] = field(default_factory=dict)
    #: proportion-score range of the trusts each band holds by score: band -> (lowest, highest)
    score_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    figures: dict[str, FunnelFigure] = field(default_factory=dict)

    def figure(self, indicator_id: str) -> FunnelFigure:
        """The indicator's compact funnel (drawn once, highlighted per trust page)."""
        if indicator_id not in self.figures:
            data = self.funnels[indicator_id]
            self.figures[indicator_id] = FunnelFigure(
                data.x,
                data.y,
                [self.trust_names.get(c, c) for c in data.trust_codes],
                data.flags,
                data.target,
                data.limits,
                title=self.info[indicator_id]["name"],
                xlabel=data.xlabel,
                ylabel=data.ylabel,
                id_prefix=f"f-{_safe_stem(indicator_id)}",
                compact=True,
                percent=data.percent,
            )
        return self.figures[indicator_id]


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(_TEMPLATES)),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["patients"] = _patients
    env.filters["num"] = _num
    env.filters["pct"] = _pct
    env.filters["limit"] = _limit
    # Compact, deterministic JSON for the inline <script type="application/json"> blocks; Jinja's
    # htmlsafe dumps escapes <, >, & and ' so data cannot close the script element.
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "separators": (",", ":")}
    return env


def _load_catalogue(catalogue: pd.DataFrame | None) -> pd.DataFrame:
    if catalogue is not None:
        cat = catalogue.copy()
    else:
        from surveillance.catalogue import load_catalogue

        cat = load_catalogue()
    if "indicator_id" in cat.columns:
        cat = cat.set_index("indicator_id")
    cat.index = cat.index.astype(str)
    return cat


def _indicator_infos(cat: pd.DataFrame, flags: pd.DataFrame) -> dict[str, dict]:
    """Catalogue facts for every indicator in the catalogue or the flags (once per run)."""
    first = flags.drop_duplicates("indicator_id").set_index("indicator_id")
    out = {}
    for ind in sorted(set(cat.index) | set(first.index)):
        row = cat.loc[ind] if ind in cat.index else None
        get = row.get if row is not None else (lambda key, default=None: default)
        frow = first.loc[ind] if ind in first.index else None
        domain = _text(get("domain")) or (_text(frow["domain"]) if frow is not None else "")
        typ = _text(get("type")) or (_text(frow["type"]) if frow is not None else "")
        polarity = _text(get("polarity"))
        out[ind] = {
            "indicator_id": ind,
            "name": _text(get("name")) or ind,
            "domain": domain,
            "type": typ,
            "polarity": polarity,
            "polarity_text": {
                "higher_is_worse": "higher is worse",
                "lower_is_worse": "lower is worse",
            }.get(polarity, ""),
            "source": _text(get("source")),
            "derived_from": _text(get("derived_from")),
            "sr_method": _text(get("sr_method")) or None,
            "overdispersion": _text(get("overdispersion")) or "additive",
            "means": _text(get("means")) or "No description in the catalogue.",
            "does_not_mean": _text(get("does_not_mean")) or "No description in the catalogue.",
            "in_catalogue": row is not None,
            "domain_text": plain("domain", domain),
            "type_text": plain("type", typ),
        }
    return out


def _observed_text(typ: str, value: Any, info: dict | None = None) -> str:
    """``observed`` for a page: a patient count suppressed 1-4, another count as it is."""
    if typ in COUNT_TYPES:
        patients = info is None or counts_patients(
            info["indicator_id"], typ, info.get("derived_from", "")
        )
        if patients:
            return suppress_count(value)
        v = _float(value)
        return "" if v is None else f"{v:,.0f}"
    return _num(value, 3)


def _expected_text(typ: str, value: Any) -> str:
    if typ in ("external_band", "rule"):
        return ""
    return _num(value, 1 if typ in COUNT_TYPES else 3)


def _suppressed_funnel(data: FunnelData, info: dict) -> tuple[FunnelData, int]:
    """Hide points whose observed patient count is 1 to 4 (their position would reveal it)."""
    typ = info["type"]
    if typ not in COUNT_TYPES or not counts_patients(
        info["indicator_id"], typ, info.get("derived_from", "")
    ):
        return data, 0
    # For O/E plots observed = y * x; for proportion plots numerator = y * x as well.
    with np.errstate(invalid="ignore"):
        observed = np.round(data.y * data.x, 6)
    small = np.isfinite(observed) & (observed >= 1) & (observed <= 4)
    if not small.any():
        return data, 0
    y = np.where(small, np.nan, data.y)
    x = np.where(small, np.nan, data.x)
    return replace(data, x=x, y=y), int(small.sum())


def _funnels(
    flags: pd.DataFrame, info: dict[str, dict]
) -> tuple[dict[str, FunnelData], dict[str, int]]:
    out: dict[str, FunnelData] = {}
    suppressed: dict[str, int] = {}
    for indicator_id, rows in flags.groupby("indicator_id", sort=True):
        i = info[str(indicator_id)]
        data = funnel_plot_data(rows, i["type"], i["sr_method"], i["overdispersion"])
        if data is None or not np.isfinite(data.x).any():
            continue
        data, n_small = _suppressed_funnel(data, i)
        out[str(indicator_id)] = data
        suppressed[str(indicator_id)] = n_small
    return out, suppressed


def _by(records: list[dict], key: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in records:
        out.setdefault(str(r[key]), []).append(r)
    return out


#: the numbers of an alert shown in the reports (those of the chart's latest signal)
ALERT_NUMBERS = ("observed", "expected", "cusum", "threshold", "false_alarm_rate")


def _alert_charts(alerts: pd.DataFrame) -> list[dict]:
    """One record per chart (trust x diagnosis group) of ``alerts.csv`` (every signal of the
    12-month window): the month it began (``first_signal_month``), ``status`` (``new``: began
    this quarter; ``persisting``: earlier in the window), its signal months, and the numbers of
    its latest signal (deaths and expected deaths from the window start to it, CUSUM, h).
    Ordered by trust code, then diagnosis group."""
    charts = []
    rows = alerts.sort_values(["trust_code", "diagnosis_group", "signal_month"], kind="stable")
    for (code, group), chart in rows.groupby(["trust_code", "diagnosis_group"], sort=True):
        latest = chart.iloc[-1]
        months = [_text(m) for m in chart["signal_month"]]
        charts.append(
            {
                "trust_code": str(code),
                "diagnosis_group": _text(group),
                "first_signal_month": _text(latest["first_signal_month"]),
                "status": _text(latest["status"]),
                "signal_months": months,
                "signal_month": months[-1],
                **{k: latest[k] for k in ALERT_NUMBERS},
                # the minimum-expected rule (alerts.csv ``caution``, empty in older runs)
                "caution": _text(latest.get("caution")),
            }
        )
    return charts


def _alert_text(a: dict) -> str:
    """One line for a chart's alert: group, status, the month it began and its signal months."""
    months = a["signal_months"]
    also = f"; signals {', '.join(months)}" if months != [a["first_signal_month"]] else ""
    return f"{a['diagnosis_group']} ({a['status']}, began {a['first_signal_month']}{also})"


def _quarter_or_none(text: str) -> Quarter | None:
    try:
        return Quarter.parse(text)
    except ValueError:
        return None


def _history_frame(
    run: RunData, history: pd.DataFrame | Sequence[Path | str] | None
) -> pd.DataFrame:
    """Band per trust and quarter, from (weakest first) the previous_band column, earlier runs
    published beside this one (``<out>/<quarter>/bands.csv``), the run's ``band_history.csv``,
    the ``history`` argument, and this run."""
    frames = []
    quarter = _quarter_or_none(run.quarter)
    if quarter is not None:
        prev = run.bands[["trust_code", "previous_band"]].rename(columns={"previous_band": "band"})
        prev = prev[prev["band"].map(_text) != ""].assign(quarter=str(quarter.previous()))
        frames.append(prev)
        for sibling in sorted(Path(run.directory).resolve().parent.iterdir()):
            sq = _quarter_or_none(sibling.name)
            if sq is not None and sq < quarter and (sibling / "bands.csv").is_file():
                past = pd.read_csv(sibling / "bands.csv", dtype=str, usecols=["trust_code", "band"])
                frames.append(past.assign(quarter=str(sq)))
    if "band_history" in run.extras:
        frames.append(run.extras["band_history"][["trust_code", "quarter", "band"]])
    if isinstance(history, pd.DataFrame):
        missing = {"trust_code", "quarter", "band"} - set(history.columns)
        if missing:
            raise SurveillanceError(f"history frame: missing column(s) {sorted(missing)}")
        frames.append(history[["trust_code", "quarter", "band"]])
    elif history is not None:
        for path in history:
            past = read_run(path)
            f = past.bands[["trust_code", "band"]].copy()
            f["quarter"] = past.quarter
            frames.append(f)
    current = run.bands[["trust_code", "band"]].copy()
    current["quarter"] = run.quarter
    frames.append(current)
    hist = pd.concat([f[["trust_code", "quarter", "band"]] for f in frames], ignore_index=True)
    hist = hist.astype(str)
    hist["band"] = hist["band"].map(_band_text)
    # Later sources (explicit history, then this run) win for the same trust and quarter.
    hist = hist.drop_duplicates(["trust_code", "quarter"], keep="last")
    return hist.sort_values(["trust_code", "quarter"]).reset_index(drop=True)


def build_site(
    run_dir: Path | str,
    out_dir: Path | str | None = None,
    catalogue: pd.DataFrame | None = None,
    history: pd.DataFrame | Sequence[Path | str] | None = None,
    bundle_dir: Path | str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Render the static site for a run directory and return the path of ``index.html``.

    Parameters
    ----------
    run_dir : path
        A finished run (DESIGN.md section 6).
    out_dir : path, optional
        Where to write the site; default ``run_dir / "reports"``. Replaced if it exists (the new
        site is written beside it and renamed into place).
    catalogue : DataFrame, optional
        The indicator catalogue (``load_catalogue()`` frame); default: the packaged catalogue.
    history : DataFrame or sequence of run directories, optional
        Earlier bands (columns ``trust_code, quarter, band``) or earlier run directories, added to
        any ``band_history.csv`` in the run for the band history tables.
    bundle_dir : path, optional
        The run's input bundle. When the run has no ``cusum_paths.csv``, the alerted charts are
        re-run from its spells and the run's saved risk model to draw the CUSUM and VLAD figures
        (:func:`surveillance.reports.paths.alert_paths_from_bundle`).
    provenance : mapping, optional
        ``run_id`` and ``code_version`` for the page footers when the run's ``manifest.json`` is
        not written yet (the pipeline renders the site before the manifest, which hashes it);
        default: read from ``manifest.json``.
    """
    run = read_run(run_dir)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "reports"
    cat = _load_catalogue(catalogue)
    env = _environment()

    bands = run.bands.copy()
    bands["trust_code"] = bands["trust_code"].astype(str)
    bands["region"] = bands["region"].map(_text)
    bands["band"] = bands["band"].map(_band_text)
    bands["previous_band"] = bands["previous_band"].map(_band_text)
    bands = bands.sort_values("trust_code").reset_index(drop=True)
    if bands["trust_code"].duplicated().any():
        dup = bands.loc[bands["trust_code"].duplicated(), "trust_code"].tolist()
        raise SurveillanceError(f"{run.directory / 'bands.csv'}: duplicate trust_code {dup[:5]}")
    flags = run.flags.copy()
    flags["trust_code"] = flags["trust_code"].astype(str)
    flags["indicator_id"] = flags["indicator_id"].astype(str)
    info = _indicator_infos(cat, flags)
    regions = sorted(bands["region"].unique())
    funnels, n_suppressed = _funnels(flags, info)
    alerts = run.alerts.assign(trust_code=run.alerts["trust_code"].astype(str))
    alerts = alerts.sort_values(["trust_code", "diagnosis_group", "signal_month"])
    mortality = run.mortality.assign(trust_code=run.mortality["trust_code"].astype(str))
    wards = run.extras.get("wards")
    ward_records, ward_columns = [], []
    if wards is not None:
        wards = wards.assign(trust_code=wards["trust_code"].astype(str))
        if "frequently_under_90" in wards.columns:
            # The assessment lists every ward; the page shows those frequently under 90% fill.
            wards = wards[wards["frequently_under_90"].map(_is_true)].drop(
                columns="frequently_under_90"
            )
        sort_col = next(
            (c for c in ("share_under_90", "months_under_90") if c in wards.columns), None
        )
        if sort_col:
            wards = wards.sort_values(
                ["trust_code", sort_col, "ward_code"], ascending=[True, False, True]
            )
        cols = [c for c in wards.columns if c != "trust_code"]
        ward_columns = [
            {
                "key": c,
                "label": plain("column", c).capitalize(),
                "numeric": pd.api.types.is_numeric_dtype(wards[c]),
            }
            for c in cols
        ]
        floats = {c for c in cols if pd.api.types.is_float_dtype(wards[c])}
        for r in wards.to_dict("records"):
            ward_records.append(
                {
                    "trust_code": r["trust_code"],
                    **{c: _ward_cell(c, r[c], c in floats) for c in cols},
                }
            )
    paths = run.extras.get("cusum_paths")
    if paths is None and bundle_dir is not None and len(run.alerts):
        paths = alert_paths_from_bundle(run.directory, bundle_dir, run.alerts, run.quarter)
    paths_by_chart = {}
    if paths is not None:
        for (t, g), p in paths.groupby(
            [paths["trust_code"].astype(str), paths["diagnosis_group"].astype(str)]
        ):
            paths_by_chart[(t, g)] = p
    hist = _history_frame(run, history)
    flag_records = flags.sort_values(["trust_code", "indicator_id"]).to_dict("records")
    ctx = _Context(
        run=run,
        info=info,
        trust_file=_unique_names(list(bands["trust_code"]), _safe_stem),
        region_file=_unique_names(regions, slugify),
        funnel_file=_unique_names(sorted(funnels), _safe_stem),
        funnels=funnels,
        n_suppressed=n_suppressed,
        trust_names=dict(zip(bands["trust_code"], bands["trust_name"].map(_text), strict=True)),
        flags_by_trust=_by(flag_records, "trust_code"),
        flags_by_indicator=_by(flag_records, "indicator_id"),
        alerts_by_trust=_by(_alert_charts(alerts), "trust_code"),
        mortality_by_trust=_by(mortality.to_dict("records"), "trust_code"),
        wards_by_trust=_by(ward_records, "trust_code"),
        ward_columns=ward_columns,
        paths_by_chart=paths_by_chart,
        history_by_trust=_by(hist.to_dict("records"), "trust_code"),
        excluded=[
            {
                **e,
                "name": info.get(e["indicator_id"], {}).get("name", e["indicator_id"]),
                "reason_text": plain_exclusion(e["reason"]),
            }
            for e in _excluded(run)
        ],
        missing_sources=_missing_sources(run),
        drivers_by_trust=_explanations(run, flags, [e["indicator_id"] for e in _excluded(run)]),
        score_ranges=_score_ranges(bands),
    )

    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    for sub in ("trusts", "qsg", "funnels"):
        (tmp / sub).mkdir(parents=True)
    region_counts = bands["region"].value_counts().to_dict()
    region_links = [
        {"name": r, "href": f"qsg/{ctx.region_file[r]}.html", "n": int(region_counts[r])}
        for r in regions
    ]
    common = {"quarter": run.quarter, "regions": region_links, **_provenance(run, provenance)}
    notes = _input_notes(run, provenance)
    templates = {
        name: env.get_template(name)
        for name in ("index.html", "trust.html", "qsg.html", "funnel.html")
    }

    def write(rel: str, template: str, context: dict) -> None:
        html = templates[template].render(root="../" * rel.count("/"), **common, **context)
        (tmp / rel).write_text(html, encoding="utf-8")

    band_records = bands.to_dict("records")
    write(
        "index.html",
        "index.html",
        _index_context(ctx, band_records, flags) | {"input_notes": notes},
    )
    for b in band_records:
        write(
            f"trusts/{ctx.trust_file[b['trust_code']]}.html", "trust.html", _trust_context(ctx, b)
        )
    for region in regions:
        rb = [b for b in band_records if b["region"] == region]
        write(f"qsg/{ctx.region_file[region]}.html", "qsg.html", _qsg_context(ctx, region, rb))
    for indicator_id, data in funnels.items():
        write(
            f"funnels/{ctx.funnel_file[indicator_id]}.html",
            "funnel.html",
            _funnel_context(ctx, indicator_id, data),
        )

    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out / "index.html"


def _excluded(run: RunData) -> list[dict]:
    """Indicators left out of banding this quarter, with the reason (manifest, the
    ``excluded_indicators.csv`` table, or the flags' ``in_banding`` column)."""
    m = run.manifest
    raw = (
        m.get("left_out_of_banding") or m.get("excluded_indicators") or m.get("indicators_excluded")
    )
    if not raw and "excluded" in run.extras:
        raw = run.extras["excluded"][["indicator_id", "reason"]].to_dict("records")
    if not raw and "in_banding" in run.flags.columns:
        out_ids = run.flags.loc[
            run.flags["in_banding"].astype(str).str.lower().isin(["false", "0", "0.0"]),
            "indicator_id",
        ]
        raw = [
            {"indicator_id": i, "reason": "left out of banding this quarter"}
            for i in sorted(set(out_ids))
        ]
    out = []
    if isinstance(raw, dict):
        raw = [{"indicator_id": k, "reason": v} for k, v in sorted(raw.items())]
    for item in raw or []:
        if isinstance(item, dict):
            out.append(
                {
                    "indicator_id": _text(item.get("indicator_id")),
                    "reason": _text(item.get("reason")),
                }
            )
        else:
            out.append({"indicator_id": _text(item), "reason": ""})
    return sorted(out, key=lambda e: e["indicator_id"])


def _missing_sources(run: RunData) -> list[dict]:
    """Sources missing or late this quarter (``sources.csv``), one row per source."""
    src = run.extras.get("sources")
    if src is None:
        return []
    bad = src[src["status"].astype(str).isin(["missing", "late"])]
    out = []
    for source, g in bad.groupby("source", sort=True):
        out.append(
            {
                "source": _text(source),
                "status": _text(g["status"].iloc[0]),
                "reason": _text(g["reason"].iloc[0]),
                "indicators": sorted(g["indicator_id"].astype(str)),
            }
        )
    return out


def _band_counts(band_records: list[dict]) -> list[dict]:
    counts: dict[str, int] = {}
    for b in band_records:
        counts[b["band"]] = counts.get(b["band"], 0) + 1
    keys = sorted(counts, key=lambda b: (band_order(b), b))
    return [
        {"band": b, "text": plain("band", b), "count": counts[b], "css": band_class(b)}
        for b in keys
    ]


def _moved(prev: str, band: str) -> bool:
    return bool(prev) and prev != band


def _is_true(value: Any) -> bool:
    return _text(value).lower() in ("true", "1", "1.0")


def _code_version_text(code: Any) -> str:
    """The manifest's ``code_version`` object as package, commit and whether the checkout had
    uncommitted changes ("0.1.0, commit 937c6f52ac0c"); a plain string as it is."""
    if not isinstance(code, Mapping):
        return _text(code)
    parts = [_text(code.get("package"))]
    commit = _text(code.get("git_commit"))
    if commit:
        parts.append(f"commit {commit[:12]}")
    if code.get("git_dirty"):
        parts.append("with uncommitted changes")
    return ", ".join(p for p in parts if p)


def _provenance(run: RunData, given: Mapping[str, Any] | None) -> dict[str, str]:
    """Run id and code version for the footers: ``given`` (the pipeline's, before the manifest is
    written), else the run's ``manifest.json``; a re-render's own code version
    (``reports_code_version``) is added when it differs."""
    source = dict(given) if given else run.manifest
    version = _code_version_text(source.get("code_version"))
    rerender = _code_version_text(source.get("reports_code_version"))
    if rerender and rerender != version:
        version += f"; reports rendered again with {rerender}"
    return {
        "run_id": _text(source.get("run_id")) or "not recorded",
        "code_version": version or "not recorded",
    }


def _input_notes(run: RunData, given: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """What the reader accepted but changed (``manifest.json`` ``input_notes``: conversions,
    region spellings, diagnosis groups the models do not know), for the index."""
    from surveillance.reports.suppress import suppress_count

    def spells(m: re.Match) -> str:  # spell counts are patient counts: 1-4 shown as <5
        return f"{suppress_count(int(m.group(1).replace(',', '')))} spell(s)"

    source = dict(given) if given else run.manifest
    return [
        {
            "file": _text(n.get("file")),
            "column": _text(n.get("column")),
            "what": plain("input_note", _text(n.get("note"))),
            "message": re.sub(r"(\d[\d,]*) spell\(s\)", spells, _text(n.get("message"))),
            "rows": suppress_count(int(n["rows"])) if _float(n.get("rows")) else "whole column",
        }
        for n in source.get("input_notes") or []
    ]


def _explanations(
    run: RunData, flags: pd.DataFrame, excluded: Sequence[str]
) -> dict[str, list[dict]]:
    """The flags that count in each trust's band, in the rank the run published
    (``explanations.csv``); for a run without that file, the same ranking computed by
    :func:`surveillance.banding.explain.contributions`, the function the pipeline writes it with.
    Each record joins the explanation to its flags row."""
    table = run.extras.get("explanations")
    if table is None:
        from surveillance.banding.explain import contributions

        table = contributions(flags, top_n=None, excluded=excluded)
    table = table.assign(
        trust_code=table["trust_code"].astype(str),
        indicator_id=table["indicator_id"].astype(str),
        rank=pd.to_numeric(table["rank"], errors="coerce"),
    ).sort_values(["trust_code", "rank"], kind="mergesort")
    by_key = {(f["trust_code"], f["indicator_id"]): f for f in flags.to_dict("records")}
    out: dict[str, list[dict]] = {}
    for e in table.to_dict("records"):
        f = by_key.get((e["trust_code"], e["indicator_id"]))
        if f is not None:
            out.setdefault(e["trust_code"], []).append(f)
    return out


def band_basis(b: Mapping[str, Any]) -> str:
    """How a trust got its band: ``score``, ``special_measures`` (the override),
    ``recently_inspected`` or ``not_banded`` (from ``band`` and ``band_reason``)."""
    band, reason = _text(b["band"]), _text(b.get("band_reason")).lower()
    if band in ("recently_inspected", "not_banded"):
        return band
    if "special measures" in reason or "special_measures" in reason:
        return "special_measures"
    return "score"


def _score_ranges(bands: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Lowest and highest proportion score of the trusts each band holds by score."""
    out = {}
    scored = bands[[band_basis(b) == "score" for b in bands.to_dict("records")]]
    p = pd.to_numeric(scored["proportion_score"], errors="coerce")
    for band, g in p.groupby(scored["band"]):
        if band.isdigit() and g.notna().any():
            out[band] = (float(g.min()), float(g.max()))
    return out


def score_band_text(p: float | None, ranges: Mapping[str, tuple[float, float]]) -> str:
    """Where a proportion score sits among the bands given by score: "band 4", "between band 3
    and band 4", "above band 1" or "below band 6" (read from the published bands)."""
    if p is None or not ranges:
        return ""
    keys = sorted(ranges, key=int)
    for k in keys:
        lo, hi = ranges[k]
        if lo <= p <= hi:
            return f"band {k}"
    if p > ranges[keys[0]][1]:
        return f"band {keys[0]}"
    for upper, lower in zip(keys, keys[1:], strict=False):
        if ranges[lower][1] < p < ranges[upper][0]:
            return f"between band {upper} and band {lower}"
    return f"band {keys[-1]}"


def _band_text_long(ctx: _Context, b: Mapping[str, Any]) -> dict:
    """The band in words: how it was reached and, for an override, the score it overrode."""
    basis = band_basis(b)
    reason = _text(b.get("band_reason"))
    score = f"score {_num(b['score'], 0)} of {_num(b['max_score'], 0)}"
    score += f" (proportion {_num(b['proportion_score'], 3)})"
    out = {"basis": basis, "override": "", "sentence": ""}
    if basis == "score":
        out["sentence"] = f"Placed by its score: {score}."
    elif basis == "special_measures":
        where = score_band_text(_float(b["proportion_score"]), ctx.score_ranges)
        out["override"] = "special-measures override"
        out["sentence"] = (
            f"Band {b['band']} because the trust is in special measures (an override), not because "
            f"of its score. Its own {score} would put it with the trusts in {where} by score."
            if where
            else f"Band {b['band']} because the trust is in special measures (an override), not "
            f"because of its score ({score})."
        )
    elif basis == "recently_inspected":
        detail = f" ({reason})" if reason and reason != "recently_inspected" else ""
        out["sentence"] = f"Not banded this quarter: inspected recently{detail}. Its {score}."
    else:
        detail = (
            f" ({reason})" if reason and reason not in ("not_banded", "too_few_indicators") else ""
        )
        out["sentence"] = f"Not banded: too few indicators apply to this trust{detail}."
    return out


def _probabilities(b: Mapping[str, Any], basis: str) -> dict:
    """The band probabilities as visible cells (not only tooltips), with what they mean."""
    probs = [_float(b.get(f"p_band_{k}")) for k in range(1, 7)]
    if not any(p is not None and p > 0 for p in probs):
        return {"cells": [], "note": ""}
    cells = [
        {
            "band": str(k),
            "css": band_class(str(k)),
            "text": _pct(p) if p is not None else "",
            "current": str(k) == _text(b["band"]),
            "weight": round(100 * (p or 0.0)),
        }
        for k, p in enumerate(probs, start=1)
    ]
    if basis == "special_measures":
        note = (
            "The override sets the band whatever the score, so these shares of resampled "
            "scorings do not measure how certain the band is."
        )
    else:
        note = "How certain the band is: the share of resampled scorings that put the trust in each band."
    return {"cells": cells, "note": note}


def _value_vs_expected(typ: str, f: Mapping[str, Any], info: dict | None = None) -> str:
    """A flag's numbers in a few words, small patient counts suppressed: "45 vs 27.2 expected"."""
    observed, expected = f.get("observed"), f.get("expected")
    if typ == "cusum_z":
        # the run's flags carry the chart's largest CUSUM in ``cusum`` and h in ``method``
        # ("cusum(k=0.5,h=5.48)"); without ``cusum``, observed is the statistic, expected h
        stat, h = _float(f.get("cusum")), None
        if stat is not None:
            m = re.search(r"h=([0-9.]+)", _text(f.get("method")))
            h = float(m.group(1)) if m else None
        else:
            stat, h = _float(observed), _float(expected)
        if stat is None:
            return ""
        return f"trend {_num(stat, 2)}" + (f" vs threshold {_num(h, 2)}" if h is not None else "")
    if typ == "external_band":
        return "the publisher's own rating"
    obs = _observed_text(typ, observed, info)
    if not obs:
        return ""
    if typ == "rule":
        return f"{obs} validated case(s)"
    exp = _expected_text(typ, expected)
    return f"{obs} vs {exp} expected" if exp else obs


def _flag_item(ctx: _Context, f: Mapping[str, Any], in_banding: bool) -> dict:
    info = ctx.info[f["indicator_id"]]
    return {
        **info,
        "type_text": plain("type", info["type"]),
        "anchor": _safe_stem(f["indicator_id"]),
        "flag": f["flag"],
        "flag_text": plain("flag", f["flag"]),
        "z_adjusted": _float(f["z_adjusted"]),
        "value_text": _value_vs_expected(info["type"], f, info),
        "persistent": _is_true(f.get("persistent")),
        "in_banding": in_banding,
    }


def _flag_items(ctx: _Context, code: str) -> list[dict]:
    """A trust's flagged indicators: those that count in its band in the published rank
    (``explanations.csv``), then any flagged on an indicator left out of banding."""
    counted = ctx.drivers_by_trust.get(code, [])
    seen = {f["indicator_id"] for f in counted}
    out = [_flag_item(ctx, f, True) for f in counted]
    for f in ctx.flags_by_trust.get(code, []):
        if f["flag"] in ("risk", "elevated_risk") and f["indicator_id"] not in seen:
            out.append(_flag_item(ctx, f, False))
    return out


def _counted(ctx: _Context, code: str) -> dict[str, int]:
    """Elevated risks and risks that count in the band (agree with bands.csv)."""
    counted = ctx.drivers_by_trust.get(code, [])
    return {
        "elevated": sum(f["flag"] == "elevated_risk" for f in counted),
        "risk": sum(f["flag"] == "risk" for f in counted),
    }


def _driver_names(ctx: _Context, code: str, n: int = 3) -> list[dict]:
    return [
        {"name": ctx.info[f["indicator_id"]]["name"], "flag": f["flag"]}
        for f in ctx.drivers_by_trust.get(code, [])[:n]
    ]


def _index_context(ctx: _Context, band_records: list[dict], flags: pd.DataFrame) -> dict:
    charts = [a for code in sorted(ctx.alerts_by_trust) for a in ctx.alerts_by_trust[code]]
    new_alerts_by_trust = {
        code: sum(a["status"] == "new" for a in alerted)
        for code, alerted in ctx.alerts_by_trust.items()
    }
    columns = [
        {"key": "trust_name", "label": "Trust", "sort": "trust_name", "numeric": False},
        {"key": "region", "label": "Region", "sort": "region", "numeric": False, "css": "opt"},
        {"key": "band", "label": "Band", "sort": "rank", "numeric": False},
        {"key": "p_band_text", "label": "Chance of this band", "sort": "p_band", "numeric": True},
        {
            "key": "score_text",
            "label": "Proportion score",
            "sort": "proportion_score",
            "numeric": True,
        },
        {
            "key": "flags_text",
            "label": "Elevated / risks",
            "sort": "elevated_risks",
            "numeric": True,
        },
        {"key": "drivers", "label": "Main drivers", "sort": "drivers_text", "numeric": False},
        {
            "key": "movement_text",
            "label": "Since last quarter",
            "sort": "previous_order",
            "numeric": False,
            "css": "opt",
        },
        {"key": "new_alerts", "label": "New alerts", "sort": "new_alerts", "numeric": True},
    ]
    rows = []
    for b in band_records:
        code, band = b["trust_code"], b["band"]
        basis = band_basis(b)
        p_band = _float(b.get(f"p_band_{band}")) if band.isdigit() else None
        prev = b["previous_band"]
        movement = _text(b["movement"])
        drivers = _driver_names(ctx, code)
        rows.append(
            {
                "trust_code": code,
                "trust_name": _text(b["trust_name"]),
                "href": f"trusts/{ctx.trust_file[code]}.html",
                "region": b["region"],
                "band": band,
                "band_text": plain("band", band),
                "band_class": band_class(band),
                "band_order": band_order(band),
                "override": "override" if basis == "special_measures" else "",
                "p_band": p_band,
                "p_band_text": "override" if basis == "special_measures" else _pct(p_band),
                "score": _json_value(_float(b["score"])),
                "proportion_score": _json_value(_float(b["proportion_score"])),
                "score_text": _num(b["proportion_score"], 3),
                "elevated_risks": _json_value(_float(b["elevated_risks"])),
                "risks": _json_value(_float(b["risks"])),
                "flags_text": f"{_num(b['elevated_risks'], 0)} / {_num(b['risks'], 0)}",
                "drivers": drivers,
                "drivers_text": "; ".join(d["name"] for d in drivers),
                "previous_band": prev,
                "previous_order": band_order(prev) if prev else 9,
                "movement": movement,
                "movement_text": (
                    f"{movement} from {plain('band', prev)}"
                    if movement in ("up", "down")
                    else plain("movement", movement)
                    if movement != "same"
                    else "same band"
                ),
                "new_alerts": int(new_alerts_by_trust.get(code, 0)),
            }
        )
    # band first, then the score within the band (highest first): the planner's order
    rows.sort(
        key=lambda r: (
            r["band_order"],
            -(r["proportion_score"] if r["proportion_score"] is not None else -1.0),
            r["trust_code"],
        )
    )
    for i, r in enumerate(rows):
        r["rank"] = i
    movements = [
        {
            **r,
            "previous_text": plain("band", r["previous_band"]),
            "movement_words": plain("movement", r["movement"]),
        }
        for r in rows
        if _moved(r["previous_band"], r["band"])
    ]
    # the window's alerts, one row per chart: new ones (began this quarter) first
    window_alerts = []
    for a in sorted(charts, key=lambda a: (a["status"] != "new", a["trust_code"])):
        code = a["trust_code"]
        window_alerts.append(
            {
                **a,
                "signal_months_text": ", ".join(a["signal_months"]),
                "trust_name": ctx.trust_names.get(code, code),
                "href": f"trusts/{ctx.trust_file[code]}.html#alerts"
                if code in ctx.trust_file
                else "#alerts",
            }
        )
    quarter = _quarter_or_none(ctx.run.quarter)
    window = quarter.lookback_months(12) if quarter is not None else []
    indicator_ids = sorted(flags["indicator_id"].unique())
    domains = []
    for key, label in DOMAINS:
        items = [
            {
                "name": ctx.info[i]["name"],
                "href": f"funnels/{ctx.funnel_file[i]}.html" if i in ctx.funnel_file else "",
                "type_text": plain("type", ctx.info[i]["type"]),
            }
            for i in indicator_ids
            if ctx.info[i]["domain"] == key
        ]
        if items:
            domains.append({"label": label, "indicators": items})
    counted = [_counted(ctx, b["trust_code"]) for b in band_records]
    flagged = flags[flags["flag"].isin(["risk", "elevated_risk"])]
    return {
        "n_trusts": len(band_records),
        "n_indicators": len(indicator_ids),
        # the flags that count in banding, as bands.csv counts them
        "n_flags_elevated": sum(c["elevated"] for c in counted),
        "n_flags_risk": sum(c["risk"] for c in counted),
        "n_flags_left_out": int(len(flagged)) - sum(c["elevated"] + c["risk"] for c in counted),
        "n_overrides": sum(r["override"] != "" for r in rows),
        "n_alert_charts": len(charts),
        "n_new_alerts": sum(a["status"] == "new" for a in charts),
        "n_persisting_alerts": sum(a["status"] == "persisting" for a in charts),
        "window_text": f"{window[0]} to {window[-1]}" if window else "",
        "excluded": ctx.excluded,
        "missing_sources": ctx.missing_sources,
        "band_counts": _band_counts(band_records),
        "band_columns": columns,
        "band_rows": rows,
        "movements": movements,
        "window_alerts": window_alerts,
        "domains": domains,
    }


def _alert_figures(ctx: _Context, code: str, a: dict) -> tuple[str, str]:
    """The CUSUM and VLAD of an alerted chart, at the resolution small-number suppression allows
    (:func:`surveillance.reports.suppress.safe_series`); a note instead when the chart holds 1-4
    deaths in all."""
    p = ctx.paths_by_chart.get((code, str(a["diagnosis_group"])))
    if p is None or p.empty:
        return "", ""
    month_col = next((c for c in ("month", "signal_month", "t") if c in p.columns), None)
    if month_col is None:
        return "", ""
    p = p.sort_values(month_col)
    months = [str(m) for m in p[month_col]]
    signal = (
        p["signal"].map(_is_true).to_numpy() if "signal" in p.columns else np.zeros(len(p), bool)
    )
    signal_months = [m for m, s in zip(months, signal, strict=True) if s]
    thr = p["threshold"] if "threshold" in p.columns else np.full(len(p), _float(a["threshold"]))
    group = a["diagnosis_group"]
    if not {"observed", "expected"} <= set(p.columns):
        return "", ""  # without deaths per month the path cannot be checked for small numbers
    safe = safe_series(months, p["observed"], p["expected"], p["cusum"])
    if safe is None:
        note = Markup(
            '<p class="muted">The CUSUM and VLAD charts are not shown: the chart holds fewer than '
            "5 deaths (small-number suppression).</p>"
        )
        return note, ""
    h = np.asarray(thr, float)
    cusum = cusum_svg(
        safe.months,
        safe.cusum,
        h[:1] if np.allclose(h, h[0]) else h[[months.index(m) for m in safe.months]],
        title=f"{group}: risk-adjusted CUSUM",
        signal_months=signal_months,
        note=safe.note,
    )
    vlad = vlad_svg(safe.months, title=f"{group}: VLAD", vlad=safe.vlad, note=safe.note)
    return cusum, vlad


#: domain rows of the trust summary name at most this many indicators each (the rest are counted)
SUMMARY_PER_DOMAIN = 3


def _summary_domains(items: list[dict]) -> list[dict]:
    """The summary's flags table: one row per domain with flags, elevated risks and risks
    counted as in banding, and its first indicators in the published rank."""
    rows = []
    for key, label in DOMAINS:
        in_domain = [i for i in items if i["domain"] == key]
        if not in_domain:
            continue
        counted = [i for i in in_domain if i["in_banding"]]
        rows.append(
            {
                "label": label,
                "elevated": sum(i["flag"] == "elevated_risk" for i in counted),
                "risk": sum(i["flag"] == "risk" for i in counted),
                "left_out": len(in_domain) - len(counted),
                "top": in_domain[:SUMMARY_PER_DOMAIN],
                "more": max(0, len(in_domain) - SUMMARY_PER_DOMAIN),
            }
        )
    return rows


def _trust_context(ctx: _Context, b: dict) -> dict:
    code, band = b["trust_code"], b["band"]
    basis = _band_text_long(ctx, b)
    t = {
        **{
            k: b[k]
            for k in (
                "trust_code",
                "region",
                "score",
                "max_score",
                "proportion_score",
                "applicable",
                "risks",
                "elevated_risks",
            )
        },
        "trust_name": _text(b["trust_name"]),
        "band": band,
        "band_text": plain("band", band),
        "band_class": band_class(band),
        "band_sentence": basis["sentence"],
        "override": basis["override"],
        "previous_band": plain("band", b["previous_band"]) if b["previous_band"] else "",
        "movement": plain("movement", b["movement"]),
        "region_href": f"qsg/{ctx.region_file[b['region']]}.html",
        "probs": _probabilities(b, basis["basis"]),
    }
    tflags = ctx.flags_by_trust.get(code, [])
    items = _flag_items(ctx, code)
    for d in items:
        d["funnel_svg"], d["funnel_note"], d["funnel_missing"], d["funnel_href"] = "", "", "", ""
        data = ctx.funnels.get(d["indicator_id"])
        if data is None:
            if d["type"] in ("external_band", "rule", "cusum_z"):
                d["funnel_missing"] = (
                    f"Not drawn on a funnel plot: this indicator is {d['type_text']}."
                )
            continue
        d["funnel_href"] = f"../funnels/{ctx.funnel_file[d['indicator_id']]}.html"
        pos = data.trust_codes.index(code) if code in data.trust_codes else None
        if pos is None or not (np.isfinite(data.x[pos]) and np.isfinite(data.y[pos])):
            d["funnel_missing"] = (
                "This trust's position is not shown: fewer than 5 events (small-number suppression) "
                "or no plottable value."
            )
            continue
        # Link to the trust's own point only when it is drawn (suppressed points have no id).
        d["funnel_href"] += f"#t-{_safe_stem(code)}"
        d["funnel_svg"] = Markup(ctx.figure(d["indicator_id"]).svg(pos))
        d["funnel_note"] = data.note
    domains = []
    for key, label in DOMAINS:
        in_domain = [f for f in tflags if ctx.info[f["indicator_id"]]["domain"] == key]
        domains.append(
            {
                "label": label,
                "drivers": [d for d in items if d["domain"] == key],
                "n_no_evidence": sum(f["flag"] == "no_evidence" for f in in_domain),
                "n_not_applicable": sum(f["flag"] == "not_applicable" for f in in_domain),
            }
        )
    not_applicable = [
        f"{ctx.info[f['indicator_id']]['name']} ({na_kind(f.get('reason'))[1]})"
        for f in tflags
        if f["flag"] == "not_applicable"
    ]
    talerts = []
    for a in ctx.alerts_by_trust.get(code, []):
        item = {
            **a,
            "signal_months_text": ", ".join(a["signal_months"]),
            "status_text": plain("alert_status", a["status"]),
        }
        cusum, vlad = _alert_figures(ctx, code, a)
        item["cusum_svg"], item["vlad_svg"] = Markup(cusum), Markup(vlad)
        talerts.append(item)
    tmort = []
    trust_mortality = ctx.mortality_by_trust.get(code, [])
    hidden = complementary_suppression(
        {str(m["diagnosis_group"]): m["observed"] for m in trust_mortality}
    )
    for m in trust_mortality:
        row = {k: m[k] for k in MORTALITY_COLUMNS if k != "trust_code"}
        row["group_text"] = plain("diagnosis_group", m["diagnosis_group"])
        row["banding_text"] = plain("mortality_banding", m["banding"])
        small = is_small_count(m["observed"])
        row["suppressed"] = small or str(m["diagnosis_group"]) in hidden
        if str(m["diagnosis_group"]) in hidden and not small:
            row["observed"] = COMPLEMENT_TEXT
        # open by default: the trust's overall ratio and any group outside its 99.8% limits
        row["open"] = m["diagnosis_group"] == "ALL" or row["banding_text"] != "as expected"
        tmort.append(row)
    tmort.sort(key=lambda r: (r["diagnosis_group"] != "ALL", str(r["diagnosis_group"])))
    history = [
        {
            "quarter": h["quarter"],
            "band": plain("band", h["band"]),
            "band_class": band_class(h["band"]),
        }
        for h in ctx.history_by_trust.get(code, [])
    ]
    return {
        "t": t,
        "summary_domains": _summary_domains(items),
        "n_flagged": len(items),
        "counted": _counted(ctx, code),
        "alerts_new": [a for a in talerts if a["status"] == "new"],
        "alerts_persisting": [a for a in talerts if a["status"] != "new"],
        "domains": domains,
        "drivers_any": bool(items),
        "not_applicable": not_applicable,
        "alerts": talerts,
        "mortality_open": [m for m in tmort if m["open"]],
        "mortality_closed": [m for m in tmort if not m["open"]],
        "mortality": tmort,
        "wards": ctx.wards_by_trust.get(code, []),
        "ward_columns": ctx.ward_columns,
        "wards_available": "wards" in ctx.run.extras,
        "history": history,
    }


def _is_data_quality(info: dict) -> bool:
    """Data-quality indicators (``dq_*``, "Data quality: ..."): a flag questions the other data."""
    return info["indicator_id"].startswith("dq_") or info["name"].lower().startswith("data quality")


#: a band whose own probability is below this is "uncertain"
UNCERTAIN_BELOW = 0.5
#: an uncertain band is worth the QSG's attention when bands 1-2 (most worried) or bands 1-3
#: (watch it) together are at least this likely; a band 6 that may be a band 5 is not
UNCERTAIN_MATTERS = 0.25


def _qsg_trust(ctx: _Context, b: dict, excluded_ids: set[str]) -> dict:
    """One trust's answers to the three QSG questions: its concerns (counted as in banding),
    why the group may worry, and the actions that would settle it."""
    code, band = b["trust_code"], b["band"]
    href = f"../trusts/{ctx.trust_file[code]}.html"
    name = _text(b["trust_name"])
    counted = ctx.drivers_by_trust.get(code, [])
    domain_flags = []
    for key, _label in DOMAINS:
        d = [f for f in counted if ctx.info[f["indicator_id"]]["domain"] == key]
        domain_flags.append(
            {
                "elevated": sum(f["flag"] == "elevated_risk" for f in d),
                "risk": sum(f["flag"] == "risk" for f in d),
            }
        )
    soft, data_items = [], []
    for f in counted:
        info = ctx.info[f["indicator_id"]]
        text = f"{info['name']} ({plain('flag', f['flag'])})"
        (soft if info["derived_from"] == "intelligence" else data_items).append(text)
    talerts = ctx.alerts_by_trust.get(code, [])  # one per chart, the window's
    new_alerts = [a for a in talerts if a["status"] == "new"]
    basis = band_basis(b)
    p_band = _float(b.get(f"p_band_{band}")) if band.isdigit() and basis == "score" else None

    def p_at_most(k: int) -> float:
        if p_band is None:
            return 0.0
        return sum(_float(b.get(f"p_band_{j}")) or 0.0 for j in range(1, k + 1))

    uncertain = p_band is not None and p_band < UNCERTAIN_BELOW
    n_concerns = len(counted) + len(talerts)
    single = ""
    if n_concerns == 1:
        single = (
            soft[0]
            if soft
            else data_items[0]
            if data_items
            else (f"a mortality alert in {_alert_text(talerts[0])}")
        )
    elif soft and not data_items and not talerts:
        single = "soft intelligence only (" + "; ".join(soft) + ")"

    reasons = []
    if band in ("1", "2"):
        reasons.append(
            f"band {band} by the special-measures override"
            if basis == "special_measures"
            else f"band {band} by its score ({_num(b['proportion_score'], 3)})"
        )
    if new_alerts:
        reasons.append("new mortality alert: " + "; ".join(_alert_text(a) for a in new_alerts))
    if uncertain and int(band) > 2 and p_at_most(2) >= UNCERTAIN_MATTERS:
        reasons.append(f"uncertain band {band}: {_pct(p_at_most(2))} chance of band 1 or 2")
    if single and band not in ("1", "2") and soft:
        reasons.append(f"a concern from a single source: {single}")
    # ranking: bands 1-2 by band then score, then new alerts, uncertain bands, single sources
    tier = 0 if band in ("1", "2") else 1 if new_alerts else 2 if len(reasons) else 9
    gaps = {}
    for f in ctx.flags_by_trust.get(code, []):
        if f["flag"] != "not_applicable" or f["indicator_id"] in excluded_ids:
            continue
        kind, words = na_kind(f.get("reason"))
        gaps.setdefault(kind, {"words": words, "names": []})["names"].append(
            ctx.info[f["indicator_id"]]["name"]
        )
    dq = [
        ctx.info[f["indicator_id"]]["name"]
        for f in ctx.flags_by_trust.get(code, [])
        if f["flag"] in ("risk", "elevated_risk") and _is_data_quality(ctx.info[f["indicator_id"]])
    ]
    top = sorted(((_float(b.get(f"p_band_{k}")) or 0.0, k) for k in range(1, 7)), reverse=True)[:2]
    return {
        "trust_code": code,
        "trust_name": name,
        "href": href,
        "band": band,
        "band_text": plain("band", band),
        "band_class": band_class(band),
        "override": basis == "special_measures",
        "elevated": sum(f["elevated"] for f in domain_flags),
        "risks": sum(f["risk"] for f in domain_flags),
        "domain_flags": domain_flags,
        "soft": soft,
        "alerts": [_alert_text(a) for a in talerts],
        "new_alerts": [_alert_text(a) for a in new_alerts],
        "reasons": reasons,
        "tier": tier,
        "order": (tier, band_order(band), -(_float(b["proportion_score"]) or 0.0), code),
        "p_band": p_band,
        "p_band_text": f"chance of this band {_pct(p_band)}" if p_band is not None else "",
        "watch": uncertain and (int(band) <= 3 or p_at_most(3) >= UNCERTAIN_MATTERS),
        "likely_text": ", ".join(f"band {k} {p:.0%}" for p, k in top),
        "single": single,
        "single_soft": bool(single) and bool(soft),
        "drivers": [
            {
                "name": ctx.info[f["indicator_id"]]["name"],
                "flag": f["flag"],
                "flag_text": plain("flag", f["flag"]),
            }
            for f in counted[:3]
        ],
        "gaps": [
            {"kind": k, "words": g["words"], "n": len(g["names"]), "names": g["names"]}
            for k, g in sorted(
                gaps.items(),
                key=lambda kv: (
                    ("missing", "other", "too_few", "not_relevant").index(kv[0])
                    if kv[0] in ("missing", "other", "too_few", "not_relevant")
                    else 9
                ),
            )
        ],
        "n_missing": len(gaps.get("missing", {}).get("names", [])),
        "data_quality": dq,
    }


#: the "most worried" list is short: at most this many trusts (the rest are counted)
MOST_WORRIED_MAX = 8


def _qsg_actions(trusts: list[dict], missing_sources: list[dict]) -> list[dict]:
    """QSG question 3 as suggested actions: follow up new alerts, corroborate single-source
    concerns, check data quality, request missing data, watch uncertain bands."""
    actions = []
    for t in trusts:
        for a in t["new_alerts"]:
            actions.append(
                {
                    "kind": "Follow up",
                    "t": t,
                    "text": f"the new mortality alert {a}: ask the trust for its review of the deaths.",
                }
            )
    for t in trusts:
        if t["single"]:
            actions.append(
                {
                    "kind": "Corroborate",
                    "t": t,
                    "text": f"the concern rests on a single source, {t['single']}: look for a second "
                    "source (complaints, staff survey, a visit) before acting on it.",
                }
            )
    for t in trusts:
        if t["data_quality"]:
            actions.append(
                {
                    "kind": "Check the data",
                    "t": t,
                    "text": "data-quality flags (" + "; ".join(t["data_quality"]) + "): check its "
                    "other indicators, mortality ratios above all, before reading them.",
                }
            )
    gaps = sorted(
        (t for t in trusts if t["n_missing"]), key=lambda t: (-t["n_missing"], t["trust_code"])
    )
    if gaps:
        most = ", ".join(f"{t['trust_name']} ({t['n_missing']})" for t in gaps[:3])
        actions.append(
            {
                "kind": "Request data",
                "t": None,
                "text": f"{len(gaps)} trust(s) sent no data for some indicators that other trusts "
                f"reported (most: {most}); ask them for it (see Missing data by trust below).",
            }
        )
    for m in missing_sources:
        actions.append(
            {
                "kind": "Request data",
                "t": None,
                "text": f"the {m['source']} feed is {m['status']} this quarter "
                f"({len(m['indicators'])} indicator(s) not applicable for every trust).",
            }
        )
    for t in trusts:
        if t["watch"]:
            actions.append(
                {
                    "kind": "Watch",
                    "t": t,
                    "text": f"band {t['band']} is uncertain ({t['p_band_text']}; most likely "
                    f"{t['likely_text']}): look again at next month's data.",
                }
            )
    return actions


def _qsg_context(ctx: _Context, region: str, rbands: list[dict]) -> dict:
    excluded_ids = {e["indicator_id"] for e in ctx.excluded}
    rbands = sorted(
        rbands,
        key=lambda b: (
            band_order(b["band"]),
            -(_float(b["proportion_score"]) or 0.0),
            b["trust_code"],
        ),
    )
    trusts = [_qsg_trust(ctx, b, excluded_ids) for b in rbands]
    worried = sorted((t for t in trusts if t["reasons"]), key=lambda t: t["order"])
    return {
        "region": region,
        "trusts": trusts,
        "band_counts": _band_counts(rbands),
        "domain_labels": [label for _, label in DOMAINS],
        "worried": worried[:MOST_WORRIED_MAX],
        "worried_more": worried[MOST_WORRIED_MAX:],
        "actions": _qsg_actions(trusts, ctx.missing_sources),
        "gaps": [t for t in trusts if t["gaps"]],
        "excluded": ctx.excluded,
        "missing_sources": ctx.missing_sources,
    }


def _funnel_context(ctx: _Context, indicator_id: str, data: FunnelData) -> dict:
    info = ctx.info[indicator_id]
    labels = [ctx.trust_names.get(c, c) for c in data.trust_codes]
    svg = funnel_svg(
        data.x,
        data.y,
        labels,
        data.flags,
        data.target,
        data.limits,
        title=info["name"],
        xlabel=data.xlabel,
        ylabel=data.ylabel,
        id_prefix="nat",
        point_ids=[f"t-{_safe_stem(c)}" for c in data.trust_codes],
        width=720,
        height=420,
        percent=data.percent,
        label_outliers=True,
    )
    rows = ctx.flags_by_indicator.get(indicator_id, [])
    flagged = []

    def key(f: dict) -> tuple:
        z = _float(f["z_adjusted"])
        return (-(z if z is not None else -np.inf), f["trust_code"])

    for f in sorted((f for f in rows if f["flag"] in ("risk", "elevated_risk")), key=key):
        code = f["trust_code"]
        flagged.append(
            {
                "trust_name": ctx.trust_names.get(code, code),
                "href": f"../trusts/{ctx.trust_file[code]}.html"
                if code in ctx.trust_file
                else "../index.html",
                "flag": f["flag"],
                "flag_text": plain("flag", f["flag"]),
                "observed_text": _observed_text(info["type"], f["observed"], info),
                "expected_text": _expected_text(info["type"], f["expected"]),
                "z_adjusted": f["z_adjusted"],
            }
        )
    phi = next((_float(f["phi"]) for f in rows if _float(f["phi"]) is not None), None)
    tau2 = next((_float(f["tau2"]) for f in rows if _float(f["tau2"]) is not None), None)
    return {
        "ind": info,
        "svg": Markup(svg),
        "note": data.note,
        "phi": phi,
        "tau2": tau2,
        "n_points": int(np.isfinite(data.y).sum()),
        "n_suppressed": ctx.n_suppressed[indicator_id],
        "flagged": flagged,
    }
