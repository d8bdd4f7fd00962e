"""Monthly paths of the alerted RA-CUSUM charts, for the CUSUM and VLAD figures.

``alerts.csv`` says that and when a chart signalled; the figures need the chart's course over its
12-month window. :func:`alert_paths` re-runs only the alerted charts, exactly as
:func:`surveillance.mortality.monitor.monitor` runs them (same window, spell order, weights,
restart rule and the threshold ``h`` recorded in the alert), and summarises each chart by month:

``trust_code, diagnosis_group, month, cusum`` (the chart's peak in the month, before any restart,
so a signal month shows a value at or above ``h``), ``threshold``, ``observed`` and ``expected``
deaths in the month (for the VLAD), ``signal`` (any signal in the month). Months of the window with
no spells of the chart have no row.

:func:`alert_paths_from_bundle` does the same from a bundle directory and the run's saved chart
model (``<run>/models/alert_model.json``, else ``risk_model.json``), which is how :func:`surveillance.reports.build_site`
draws the charts when given ``bundle_dir``.

References
----------
Steiner, Cook, Farewell, Treasure. Monitoring surgical performance using risk-adjusted cumulative
sum charts. Biostatistics 2000;1:441. Lovegrove et al. (VLAD), Lancet 1997;350:1128.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from surveillance.errors import SurveillanceError
from surveillance.periods import Quarter

PATH_COLUMNS = [
    "trust_code",
    "diagnosis_group",
    "month",
    "cusum",
    "threshold",
    "observed",
    "expected",
    "signal",
]


def alert_paths(
    spells: pd.DataFrame,
    p: np.ndarray,
    alerts: pd.DataFrame,
    quarter: Quarter | str,
    settings=None,
    outcome: str = "died_30d",
    period_date: str = "discharge_date",
) -> pd.DataFrame:
    """Monthly path of every chart in ``alerts`` (see the module docstring for the columns).

    Parameters
    ----------
    spells, p : the spells and their expected risks, as given to ``monitor``.
    alerts : the ``alerts.csv`` frame (one or more rows per chart; ``threshold`` is the chart's h).
    quarter : the run's quarter (the window is the 12 months to its end).
    settings : ``surveillance.mortality.monitor.CusumSettings`` used by the run (default: the
        monitor's own default, ``load_cusum_settings()``).
    """
    from surveillance.mortality.encode import encode_spells, month_number
    from surveillance.mortality.monitor import build_charts, load_cusum_settings, run_charts

    # The same settings as the monitor uses by default (models/risk/monitoring.yaml).
    settings = settings or load_cusum_settings()
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in PATH_COLUMNS})
    if alerts.empty:
        return empty
    if "detector" in alerts.columns:
        other = sorted(set(alerts["detector"].astype(str)) - {"cusum"})
        if other:
            # a multi-part detector's charts cannot be redrawn as one CUSUM from the recorded
            # threshold (an O/E test's is a count of deaths): its run publishes cusum_paths.csv
            raise SurveillanceError(
                f"alert_paths: alerts from detector component(s) {other} cannot be redrawn from "
                "the spells; use the run's own cusum_paths.csv"
            )
    p = np.asarray(p, dtype=float)
    if len(p) != len(spells):
        raise SurveillanceError(f"alert_paths: {len(p)} risks for {len(spells)} spells")
    h_by_chart = (
        alerts.assign(
            trust_code=alerts["trust_code"].astype(str),
            diagnosis_group=alerts["diagnosis_group"].astype(str),
        )
        .groupby(["trust_code", "diagnosis_group"])["threshold"]
        .first()
    )
    keep = alerted_chart_mask(spells, alerts)
    if not keep.any():
        return empty
    sub = spells.loc[keep]
    enc = encode_spells(sub, outcome, period_date)
    charts = build_charts(
        enc, p[keep], month_number(Quarter.parse(str(quarter)).end), settings.months
    )
    if len(charts.volume) == 0:
        return empty
    trust = charts.trusts[charts.trust].astype(str)
    group = charts.groups[charts.group].astype(str)
    h = np.array([float(h_by_chart[(t, g)]) for t, g in zip(trust, group, strict=True)])
    statistic, signal, value = run_charts(charts, h, settings)
    return monthly_paths(charts, h, statistic, signal, value)


def paths_from_run(run, alerts: pd.DataFrame) -> pd.DataFrame:
    """:func:`alert_paths` from the monitor's own run of every chart
    (:class:`surveillance.mortality.monitor.ChartRun`): the alerted charts' rows are picked out
    instead of re-run, with the same result (each chart runs on its own)."""
    if run is None or alerts.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PATH_COLUMNS})
    charts = run.charts
    trust = pd.Index(charts.trusts.astype(str)).get_indexer(alerts["trust_code"].astype(str))
    group = pd.Index(charts.groups.astype(str)).get_indexer(alerts["diagnosis_group"].astype(str))
    key = group.astype(np.int64) * len(charts.trusts) + trust
    chart_key = charts.group.astype(np.int64) * len(charts.trusts) + charts.trust
    keep = np.isin(chart_key, key[(trust >= 0) & (group >= 0)])
    rows = np.repeat(keep, charts.volume)
    volume = charts.volume[keep]
    sub = type(charts)(
        order=charts.order[rows],
        offsets=np.r_[0, np.cumsum(volume)].astype(np.int64),
        trust=charts.trust[keep],
        group=charts.group[keep],
        p=charts.p[rows],
        y=charts.y[rows],
        month=charts.month[rows],
        trusts=charts.trusts,
        groups=charts.groups,
    )
    return monthly_paths(sub, run.h[keep], run.statistic[rows], run.signal[rows], run.value[rows])


def monthly_paths(
    charts, h: np.ndarray, statistic: np.ndarray, signal: np.ndarray, value: np.ndarray
) -> pd.DataFrame:
    """Each chart's months: peak value before restarts, h, deaths, expected deaths, signal."""
    from surveillance.mortality.encode import month_label

    if len(charts.volume) == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PATH_COLUMNS})
    trust = charts.trusts[charts.trust].astype(str)
    group = charts.groups[charts.group].astype(str)
    # The chart's value at each spell before any restart: the statistic, except at a signal where
    # run_charts gives the value reached before restarting.
    value = np.where(signal, value, statistic)
    cid = np.repeat(np.arange(len(charts.volume)), charts.volume)
    frame = pd.DataFrame(
        {
            "chart": cid,
            "month_number": charts.month,
            "value": value,
            "y": charts.y.astype(np.int64),
            "p": charts.p,
            "signal": signal.astype(bool),
        }
    )
    monthly = (
        frame.groupby(["chart", "month_number"], sort=True)
        .agg(
            cusum=("value", "max"),
            observed=("y", "sum"),
            expected=("p", "sum"),
            signal=("signal", "any"),
        )
        .reset_index()
    )
    out = pd.DataFrame(
        {
            "trust_code": trust[monthly["chart"]],
            "diagnosis_group": group[monthly["chart"]],
            "month": [month_label(int(m)) for m in monthly["month_number"]],
            "cusum": monthly["cusum"].to_numpy(),
            "threshold": h[monthly["chart"]],
            "observed": monthly["observed"].to_numpy(),
            "expected": monthly["expected"].to_numpy(),
            "signal": monthly["signal"].to_numpy(),
        }
    )
    return out.sort_values(["trust_code", "diagnosis_group", "month"]).reset_index(drop=True)


def _read_spells(bundle_dir: Path) -> pd.DataFrame:
    for name in ("spells.parquet", "spells.csv"):
        path = bundle_dir / name
        if path.is_file():
            if path.suffix == ".parquet":
                return pd.read_parquet(path)
            return pd.read_csv(path, dtype={"trust_code": str, "diagnosis_group": str})
    raise SurveillanceError(
        f"{bundle_dir}: no spells.parquet or spells.csv to draw the CUSUM charts from"
    )


def alerted_chart_mask(spells: pd.DataFrame, alerts: pd.DataFrame) -> np.ndarray:
    """Boolean mask of the spells that belong to a chart (trust x diagnosis group) in ``alerts``.

    Vectorised on the categorical codes, so it stays fast on tens of millions of spells.
    """
    if alerts.empty or spells.empty:
        return np.zeros(len(spells), dtype=bool)
    # On the categorical codes: a (trust, group) lookup table indexed by the two codes, so no
    # string is built per spell (45 million at national scale).
    trust = _as_category(spells["trust_code"])
    group = _as_category(spells["diagnosis_group"])
    t_cat = pd.Index(trust.cat.categories.astype(str))
    g_cat = pd.Index(group.cat.categories.astype(str))
    ti = t_cat.get_indexer(alerts["trust_code"].astype(str))
    gi = g_cat.get_indexer(alerts["diagnosis_group"].astype(str))
    hit = (ti >= 0) & (gi >= 0)
    table = np.zeros((len(t_cat) + 1, len(g_cat) + 1), dtype=bool)  # last row/column: missing
    table[ti[hit], gi[hit]] = True
    return table[trust.cat.codes.to_numpy(), group.cat.codes.to_numpy()]


def _as_category(series: pd.Series) -> pd.Series:
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series
    return series.astype("category")


def alert_paths_from_bundle(
    run_dir: Path | str, bundle_dir: Path | str, alerts: pd.DataFrame, quarter: str
) -> pd.DataFrame:
    """:func:`alert_paths` with the spells of ``bundle_dir`` and the run's saved risk model."""
    from surveillance.mortality.risk_model import RiskModel

    models = Path(run_dir) / "models"
    # the charts' own model: the alert model with its baseline, where the run has one
    model_path = models / "alert_model.json"
    if not model_path.is_file():
        model_path = models / "risk_model.json"
    if not model_path.is_file():
        raise SurveillanceError(
            f"{model_path}: the run's risk model is needed to draw the CUSUM charts"
        )
    if alerts.empty:
        return alert_paths(pd.DataFrame(), np.zeros(0), alerts, quarter)
    model = RiskModel.load(model_path)
    spells = _read_spells(Path(bundle_dir))
    spells = spells.loc[alerted_chart_mask(spells, alerts)].reset_index(drop=True)
    p = model.chart_risks(*model.encode(spells))
    return alert_paths(
        spells, p, alerts, quarter, outcome=model.outcome, period_date=model.spec.period_date
    )
