"""The static HTML site for one run: national summary, one page per trust, one QSG report per
region and a national funnel plot per indicator (DESIGN.md sections 1 and 6).

Every page is self-contained (inline CSS, JS and SVG; no network), rendered by Jinja2 with
autoescaping on, and says what the bands are and are not. Counts of 1 to 4 patients are shown as
"<5" and cannot be worked out from anything else on a page (charts over time, table totals): the
rules are in :mod:`surveillance.reports.suppress` (the analytic CSVs keep the true values). Output is deterministic: the same run gives
byte-identical pages.
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from surveillance.contracts import MORTALITY_COLUMNS
from surveillance.errors import SurveillanceError
from surveillance.periods import Quarter
from surveillance.reports.figures import (
    FunnelFigure,
    cusum_svg,
    funnel_svg,
    probability_svg,
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

DOMAINS = (
    ("safe", "Safe"),
    ("effective", "Effective"),
    ("caring", "Caring"),
    ("responsive", "Responsive"),
    ("well_led", "Well-led"),
)
#: Indicator types whose ``observed`` is a count (of patients, or of events: which counts are of
#: patients, and so suppressed 1-4, is :func:`surveillance.reports.suppress.counts_patients`).
COUNT_TYPES = frozenset({"ratio", "proportion", "rate", "count", "rule"})
FLAG_TEXT = {
    "elevated_risk": "elevated risk",
    "risk": "risk",
    "no_evidence": "no evidence of risk",
    "not_applicable": "not applicable",
}
BAND_REASON_TEXT = {
    "score": "placed by its score",
    "special_measures": "in special measures, so placed in band 1",
    "recently_inspected": "inspected recently, so not banded this quarter",
    "too_few_indicators": "too few applicable indicators to band",
    "not_banded": "not banded",
}
_TEMPLATES = Path(__file__).resolve().parent / "templates"


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


def _float(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


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
                "label": c.replace("_", " "),
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
            {**e, "name": info.get(e["indicator_id"], {}).get("name", e["indicator_id"])}
            for e in _excluded(run)
        ],
        missing_sources=_missing_sources(run),
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
    common = {
        "quarter": run.quarter,
        "run_id": _text(run.manifest.get("run_id")),
        "code_version": _text(run.manifest.get("code_version")),
        "regions": region_links,
    }
    templates = {
        name: env.get_template(name)
        for name in ("index.html", "trust.html", "qsg.html", "funnel.html")
    }

    def write(rel: str, template: str, context: dict) -> None:
        html = templates[template].render(root="../" * rel.count("/"), **common, **context)
        (tmp / rel).write_text(html, encoding="utf-8")

    band_records = bands.to_dict("records")
    write("index.html", "index.html", _index_context(ctx, band_records, flags))
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
    return [{"band": b, "count": counts[b], "css": band_class(b)} for b in keys]


def _moved(prev: str, band: str) -> bool:
    return bool(prev) and prev != band


def _is_true(value: Any) -> bool:
    return _text(value).lower() in ("true", "1", "1.0")


def _index_context(ctx: _Context, band_records: list[dict], flags: pd.DataFrame) -> dict:
    charts = [a for code in sorted(ctx.alerts_by_trust) for a in ctx.alerts_by_trust[code]]
    new_alerts_by_trust = {
        code: sum(a["status"] == "new" for a in alerted)
        for code, alerted in ctx.alerts_by_trust.items()
    }
    columns = [
        {"key": "trust_name", "label": "Trust", "sort": "trust_name", "numeric": False},
        {"key": "region", "label": "Region", "sort": "region", "numeric": False},
        {"key": "band", "label": "Band", "sort": "band_order", "numeric": False},
        {"key": "p_band_text", "label": "P(band)", "sort": "p_band", "numeric": True},
        {"key": "score", "label": "Score", "sort": "score", "numeric": True},
        {
            "key": "proportion_score_text",
            "label": "Proportion",
            "sort": "proportion_score",
            "numeric": True,
        },
        {
            "key": "elevated_risks",
            "label": "Elevated risks",
            "sort": "elevated_risks",
            "numeric": True,
        },
        {"key": "risks", "label": "Risks", "sort": "risks", "numeric": True},
        {
            "key": "previous_band",
            "label": "Previous band",
            "sort": "previous_order",
            "numeric": False,
        },
        {"key": "movement", "label": "Movement", "sort": "movement", "numeric": False},
        {"key": "new_alerts", "label": "New alerts", "sort": "new_alerts", "numeric": True},
    ]
    rows = []
    for b in band_records:
        code, band = b["trust_code"], b["band"]
        p_band = _float(b.get(f"p_band_{band}")) if band.isdigit() else None
        rows.append(
            {
                "trust_code": code,
                "trust_name": _text(b["trust_name"]),
                "href": f"trusts/{ctx.trust_file[code]}.html",
                "region": b["region"],
                "band": band,
                "band_class": band_class(band),
                "band_order": band_order(band),
                "p_band": p_band,
                "p_band_text": _pct(p_band),
                "score": _json_value(_float(b["score"])),
                "proportion_score": _json_value(_float(b["proportion_score"])),
                "proportion_score_text": _num(b["proportion_score"], 3),
                "elevated_risks": _json_value(_float(b["elevated_risks"])),
                "risks": _json_value(_float(b["risks"])),
                "previous_band": b["previous_band"],
                "previous_order": band_order(b["previous_band"]) if b["previous_band"] else 9,
                "movement": _text(b["movement"]),
                "new_alerts": int(new_alerts_by_trust.get(code, 0)),
            }
        )
    rows.sort(key=lambda r: (r["band_order"], r["trust_code"]))
    movements = [r for r in rows if _moved(r["previous_band"], r["band"])]
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
                "type": ctx.info[i]["type"],
            }
            for i in indicator_ids
            if ctx.info[i]["domain"] == key
        ]
        if items:
            domains.append({"label": label, "indicators": items})
    return {
        "n_trusts": len(band_records),
        "n_indicators": len(indicator_ids),
        "n_flags_elevated": int((flags["flag"] == "elevated_risk").sum()),
        "n_flags_risk": int((flags["flag"] == "risk").sum()),
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


def _drivers(ctx: _Context, trust_flags: list[dict]) -> list[dict]:
    """Flagged indicators of one trust, ranked as ``surveillance.banding.explain.contributions``
    ranks them: elevated risks first, then adjusted z (largest first), then indicator id."""

    def key(f: dict) -> tuple:
        z = _float(f["z_adjusted"])
        return (
            0 if f["flag"] == "elevated_risk" else 1,
            -(z if z is not None else -np.inf),
            f["indicator_id"],
        )

    out = []
    for f in sorted((f for f in trust_flags if f["flag"] in ("risk", "elevated_risk")), key=key):
        info = ctx.info[f["indicator_id"]]
        out.append(
            {
                **info,
                "anchor": _safe_stem(f["indicator_id"]),
                "flag": f["flag"],
                "flag_text": FLAG_TEXT.get(f["flag"], f["flag"]),
                "z_adjusted": _float(f["z_adjusted"]),
                "detail": _detail(info["type"], f["observed"], f["expected"], f.get("cusum"), info),
                "persistent": _is_true(f.get("persistent")),
                "in_banding": _text(f.get("in_banding")).lower() not in ("false", "0", "0.0"),
            }
        )
    return out


def _detail(
    typ: str, observed: Any, expected: Any, cusum: Any = None, info: dict | None = None
) -> str:
    """One line of the numbers behind a flag, with small counts suppressed."""
    if typ == "cusum_z":
        if _float(cusum) is not None:
            return f"largest monthly CUSUM in the quarter {_num(cusum, 2)}"
        return f"CUSUM {_num(observed, 2)} against threshold {_num(expected, 2)}"
    if typ == "external_band":
        return "publisher's own band"
    obs = _observed_text(typ, observed, info)
    if not obs:
        return ""
    exp = _expected_text(typ, expected)
    noun = "count" if typ == "rule" else "observed"
    return f"{noun} {obs}" + (f", expected {exp}" if exp else "")


def _na_text(ctx: _Context, f: dict) -> str:
    """An indicator's name with the reason it is not applicable, when the flags give one."""
    name = ctx.info[f["indicator_id"]]["name"]
    reason = _text(f.get("reason"))
    return f"{name} ({reason})" if reason else name


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


def _trust_context(ctx: _Context, b: dict) -> dict:
    code, band = b["trust_code"], b["band"]
    probs = [_float(b.get(f"p_band_{k}")) for k in range(1, 7)]
    prob_svg = (
        Markup(probability_svg([p if p is not None else 0.0 for p in probs], band))
        if any(p is not None and p > 0 for p in probs)
        else ""
    )
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
        "band_class": band_class(band),
        "band_reason_text": BAND_REASON_TEXT.get(_text(b["band_reason"]), _text(b["band_reason"])),
        "previous_band": b["previous_band"],
        "movement": _text(b["movement"]),
        "region_href": f"qsg/{ctx.region_file[b['region']]}.html",
        "prob_svg": prob_svg,
    }
    tflags = ctx.flags_by_trust.get(code, [])
    drivers = _drivers(ctx, tflags)
    for d in drivers:
        d["funnel_svg"], d["funnel_note"], d["funnel_missing"], d["funnel_href"] = "", "", "", ""
        data = ctx.funnels.get(d["indicator_id"])
        if data is None:
            if d["type"] in ("external_band", "rule", "cusum_z"):
                d["funnel_missing"] = (
                    f"Indicators of type {d['type']} are not assessed on a funnel plot."
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
                "drivers": [d for d in drivers if d["domain"] == key],
                "n_no_evidence": sum(f["flag"] == "no_evidence" for f in in_domain),
                "n_not_applicable": sum(f["flag"] == "not_applicable" for f in in_domain),
            }
        )
    not_applicable = [_na_text(ctx, f) for f in tflags if f["flag"] == "not_applicable"]
    talerts = []
    for a in ctx.alerts_by_trust.get(code, []):
        item = {**a, "signal_months_text": ", ".join(a["signal_months"])}
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
        small = is_small_count(m["observed"])
        row["suppressed"] = small or str(m["diagnosis_group"]) in hidden
        if str(m["diagnosis_group"]) in hidden and not small:
            row["observed"] = COMPLEMENT_TEXT
        tmort.append(row)
    tmort.sort(key=lambda r: (r["diagnosis_group"] != "ALL", str(r["diagnosis_group"])))
    history = [
        {"quarter": h["quarter"], "band": h["band"], "band_class": band_class(h["band"])}
        for h in ctx.history_by_trust.get(code, [])
    ]
    return {
        "t": t,
        "domains": domains,
        "drivers_any": bool(drivers),
        "not_applicable": not_applicable,
        "alerts": talerts,
        "mortality": tmort,
        "wards": ctx.wards_by_trust.get(code, []),
        "ward_columns": ctx.ward_columns,
        "wards_available": "wards" in ctx.run.extras,
        "history": history,
    }


def _is_data_quality(info: dict) -> bool:
    """Data-quality indicators (``dq_*``, "Data quality: ..."): a flag questions the other data."""
    return info["indicator_id"].startswith("dq_") or info["name"].lower().startswith("data quality")


def _qsg_context(ctx: _Context, region: str, rbands: list[dict]) -> dict:
    rbands = sorted(rbands, key=lambda b: (band_order(b["band"]), b["trust_code"]))
    trusts, worried, gaps, single, uncertain, data_quality = [], [], [], [], [], []
    for b in rbands:
        code, band = b["trust_code"], b["band"]
        href = f"../trusts/{ctx.trust_file[code]}.html"
        name = _text(b["trust_name"])
        tflags = ctx.flags_by_trust.get(code, [])
        flagged = [f for f in tflags if f["flag"] in ("risk", "elevated_risk")]
        domain_flags = []
        for key, _label in DOMAINS:
            d = [f for f in flagged if ctx.info[f["indicator_id"]]["domain"] == key]
            domain_flags.append(
                {
                    "elevated": sum(f["flag"] == "elevated_risk" for f in d),
                    "risk": sum(f["flag"] == "risk" for f in d),
                }
            )
        soft, data_sources = [], set()
        for f in flagged:
            info = ctx.info[f["indicator_id"]]
            if info["derived_from"] == "intelligence":
                soft.append(f"{info['name']} ({FLAG_TEXT.get(f['flag'], f['flag'])})")
            else:
                data_sources.add(info["source"] or info["indicator_id"])
        talerts = ctx.alerts_by_trust.get(code, [])  # one per chart, the window's
        alert_text = [_alert_text(a) for a in talerts]
        trusts.append(
            {
                "trust_name": name,
                "href": href,
                "band": band,
                "band_class": band_class(band),
                "domain_flags": domain_flags,
                "soft": soft,
                "alerts": alert_text,
            }
        )
        reasons = []
        if band in ("1", "2"):
            why = BAND_REASON_TEXT.get(_text(b["band_reason"]), _text(b["band_reason"]))
            reasons.append(f"band {band} ({why})")
        n_new = sum(a["status"] == "new" for a in talerts)
        if n_new:
            reasons.append(f"{n_new} new mortality alert(s)")
        prev = b["previous_band"]
        if band.isdigit() and prev.isdigit() and int(band) < int(prev):
            reasons.append(f"moved up from band {prev}")
        n_elev = sum(f["flag"] == "elevated_risk" for f in flagged)
        if n_elev >= 2:
            reasons.append(f"{n_elev} elevated risks")
        p_band = _float(b.get(f"p_band_{band}")) if band.isdigit() else None
        if reasons:
            worried.append(
                {
                    "trust_name": name,
                    "href": href,
                    "band": band,
                    "band_class": band_class(band),
                    "reasons": reasons,
                    "p_band_text": f"probability of this band {_pct(p_band)}"
                    if p_band is not None
                    else "",
                    "drivers": _drivers(ctx, tflags)[:5],
                    "_o": band_order(band),
                }
            )
        dq = [
            ctx.info[f["indicator_id"]]["name"]
            for f in flagged
            if _is_data_quality(ctx.info[f["indicator_id"]])
        ]
        if dq:
            data_quality.append({"trust_name": name, "href": href, "which": dq})
        na = [f for f in tflags if f["flag"] == "not_applicable"]
        if na:
            gaps.append(
                {
                    "trust_name": name,
                    "href": href,
                    "n": len(na),
                    "which": [_na_text(ctx, f) for f in na],
                }
            )
        n_concerns = len(flagged) + len(talerts)
        if n_concerns == 1:
            if soft:
                what = soft[0]
            elif alert_text:
                what = f"a mortality alert in {alert_text[0]}"
            else:
                what = ctx.info[flagged[0]["indicator_id"]]["name"]
            single.append({"trust_name": name, "href": href, "text": f"the only concern is {what}"})
        elif n_concerns > 1 and soft and not data_sources and not talerts:
            single.append(
                {
                    "trust_name": name,
                    "href": href,
                    "text": "every concern comes from soft intelligence, with no data indicator flagged",
                }
            )
        if p_band is not None and p_band < 0.5:
            probs = [(_float(b.get(f"p_band_{k}")) or 0.0, k) for k in range(1, 7)]
            top = sorted(probs, reverse=True)[:2]
            uncertain.append(
                {
                    "trust_name": name,
                    "href": href,
                    "band": band,
                    "p": p_band,
                    "text": "most likely bands " + ", ".join(f"{k} ({p:.0%})" for p, k in top),
                }
            )
    worried.sort(key=lambda w: (w["_o"], w["trust_name"]))
    return {
        "region": region,
        "trusts": trusts,
        "band_counts": _band_counts(rbands),
        "domain_labels": [label for _, label in DOMAINS],
        "worried": worried,
        "gaps": gaps,
        "excluded": ctx.excluded,
        "missing_sources": ctx.missing_sources,
        "single_source": single,
        "uncertain": uncertain,
        "data_quality": data_quality,
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
                "flag_text": FLAG_TEXT.get(f["flag"], f["flag"]),
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
