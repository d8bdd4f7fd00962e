"""Output contracts (DESIGN.md section 6): real outputs of a small run pass; every rule rejects a
mutated copy of a valid table, naming file, column, rule and rows.

Rows are 0-based positions in the frame checked (``frame.iloc[row]``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from surveillance import pipeline
from surveillance.contracts import (
    ALERTS_COLUMNS,
    BANDS_COLUMNS,
    FLAGS_COLUMNS,
    MORTALITY_COLUMNS,
    OUTPUT_COLUMNS,
)
from surveillance.errors import ContractError
from surveillance.output_contracts import (
    ALERT_STATUSES,
    BAND_VALUES,
    FLAG_VALUES,
    MAX_ROWS_PER_RULE,
    MORTALITY_BANDING,
    OutputContractError,
    check_output,
    check_outputs,
    iter_output_rules,
    output_rule_names,
    validate_outputs,
)

QUARTER = "2013Q3"
QUARTER_MONTHS = ["2013-07", "2013-08", "2013-09"]
N_TRUSTS = 12
CODE = {"package": "test", "git_commit": None, "source_sha256": "output-contract-tests"}
Tables = dict[str, pd.DataFrame]


# --------------------------------------------------------------------------------------------
# Real outputs of small runs (module fixtures, about 10 s together)


def _subset(source: Path, target: Path, codes: set[str], spells: bool = True) -> Path:
    import pyarrow.parquet as pq

    target.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        if path.suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            frame[frame["trust_code"].isin(codes)].to_csv(
                target / path.name, index=False, lineterminator="\n"
            )
        elif path.suffix == ".parquet" and (spells or not path.name.startswith("spells")):
            table = pq.read_table(path)
            keep = table.column("trust_code").to_pandas().astype(str).isin(codes).to_numpy()
            pq.write_table(table.filter(keep), target / path.name)
    return target


def _as_written(results: pipeline.QuarterResults) -> Tables:
    """The four tables exactly as :func:`pipeline.write_outputs` hands them to the checks (with
    the columns added to the contract: names, caution, infinite_note)."""
    from surveillance.catalogue import load_catalogue
    from surveillance.contracts import ADDED_COLUMNS

    named = pipeline.with_names(results.flags, results.validated.bundle.trusts, load_catalogue())
    return {
        "flags.csv": pipeline.ordered(named, FLAGS_COLUMNS, ADDED_COLUMNS["flags.csv"]),
        "alerts.csv": pipeline.ordered(
            results.mortality.alerts, ALERTS_COLUMNS, ADDED_COLUMNS["alerts.csv"]
        ),
        "mortality.csv": pipeline.ordered(
            results.mortality.table, MORTALITY_COLUMNS, ADDED_COLUMNS["mortality.csv"]
        ),
        "bands.csv": pipeline.ordered(results.bands, BANDS_COLUMNS),
    }


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """12 trusts of the synthetic test nation, with and without spells."""
    from surveillance.synth.build import synthesise

    root = tmp_path_factory.mktemp("nation")
    synthesise(root, seed=2013, scale="test", quarter=QUARTER, quarters=1)
    source = root / QUARTER
    trusts = pd.read_csv(source / "trusts.csv", dtype=str, keep_default_na=False)
    codes = set(sorted(trusts["trust_code"])[:N_TRUSTS])
    base = tmp_path_factory.mktemp("bundles")
    return {
        "spells": _subset(source, base / "spells", codes),
        "no_spells": _subset(source, base / "no_spells", codes, spells=False),
    }


def _compute(data: Path, out: Path) -> tuple[pipeline.QuarterResults, list[str]]:
    options = pipeline.RunOptions(data_dir=data, quarter=QUARTER, out=out, code=CODE, mlflow=False)
    _, results, _ = pipeline.compute_quarter(options)
    codes = results.validated.bundle.trusts["trust_code"].astype(str).tolist()
    return results, codes


@pytest.fixture(scope="module")
def run(bundles, tmp_path_factory) -> SimpleNamespace:
    results, codes = _compute(bundles["spells"], tmp_path_factory.mktemp("out"))
    return SimpleNamespace(results=results, tables=_as_written(results), trust_codes=codes)


@pytest.fixture(scope="module")
def alerts(bundles, run) -> pd.DataFrame:
    """Real alert rows: the quarter's RA-CUSUM charts with thresholds set for a 50% false alarm
    rate (the default 0.1% gives no alert on 12 trusts of the test nation)."""
    from surveillance.mortality.monitor import CusumSettings, monitor

    spells = pipeline.load(bundles["spells"]).spells
    model = run.results.mortality.model
    settings = CusumSettings(target=0.5, threshold_method="simulation", n_sims=1000)
    table = monitor(
        spells,
        model.predict(spells),
        QUARTER,
        settings=settings,
        outcome=model.outcome,
        period_date=model.spec.period_date,
    )
    assert len(table) >= 5 and set(table["status"]) == set(ALERT_STATUSES)
    assert (table["signal_month"] < QUARTER_MONTHS[0]).any()  # the window, not the quarter
    return pipeline.ordered(table, ALERTS_COLUMNS)


@pytest.fixture(scope="module")
def valid(run, alerts) -> Tables:
    """A valid set of tables with rows in all four (the run's, with the alert rows)."""
    return {**run.tables, "alerts.csv": alerts}


@pytest.fixture()
def tables(valid) -> Tables:
    return {name: frame.copy() for name, frame in valid.items()}


# --------------------------------------------------------------------------------------------
# Real outputs pass


def test_real_outputs_of_a_small_run_pass(run):
    tables = run.tables
    assert len(tables["flags.csv"]) == N_TRUSTS * tables["flags.csv"]["indicator_id"].nunique()
    assert len(tables["bands.csv"]) == N_TRUSTS
    assert (tables["mortality.csv"]["diagnosis_group"] == "ALL").sum() == N_TRUSTS
    assert set(tables["flags.csv"]["flag"]) == set(FLAG_VALUES)  # NaN statistics included
    assert validate_outputs(tables, run.trust_codes) == []
    check_outputs(tables, run.trust_codes, QUARTER)


def test_real_alert_rows_pass(valid, run):
    assert len(valid["alerts.csv"]) > 0
    check_outputs(valid, run.trust_codes, QUARTER)


def test_a_quarter_only_alerts_table_breaks_the_window_contract(valid, run):
    """The alerts.csv of old (signals in the quarter's months only) drops the first signals of
    charts that began earlier: first_signal_row names their rows."""
    alerts = valid["alerts.csv"]
    quarter_only = alerts[alerts["signal_month"].isin(QUARTER_MONTHS)].reset_index(drop=True)
    began_before = (quarter_only["first_signal_month"] < QUARTER_MONTHS[0]).to_numpy()
    assert began_before.any()
    with pytest.raises(OutputContractError) as info:
        check_outputs({**valid, "alerts.csv": quarter_only}, run.trust_codes, QUARTER)
    (violation,) = info.value.violations
    assert (violation.column, violation.rule) == ("first_signal_month", "first_signal_row")
    assert violation.rows == tuple(np.flatnonzero(began_before)[:MAX_ROWS_PER_RULE])


def test_status_follows_the_period_a_quarter_or_a_month(valid):
    """``new`` means a first signal in the run's quarter, or in the monthly run's month: the
    2013Q3 table read as the 2013-09 monthly run has new charts that began in July or August."""
    from surveillance.output_contracts import alert_period

    alerts = valid["alerts.csv"]
    check_output("alerts.csv", alerts, period=QUARTER)
    began_earlier = (alerts["status"] == "new") & (alerts["first_signal_month"] < "2013-09")
    assert began_earlier.any()
    with pytest.raises(OutputContractError) as info:
        check_output("alerts.csv", alerts, period="2013-09")
    (violation,) = info.value.violations
    assert violation.rule == "status_consistent"
    assert violation.rows == tuple(np.flatnonzero(began_earlier.to_numpy())[:MAX_ROWS_PER_RULE])
    # a run of a later quarter: 2012-10 .. 2012-12 fall out of its window
    with pytest.raises(OutputContractError, match="signal_window"):
        check_output("alerts.csv", alerts, period="2013Q4")
    q4, nov = alert_period("2013Q4"), alert_period("2013-11")
    assert (q4.current, q4.window[0], q4.window[-1], len(q4.window)) == (
        ("2013-10", "2013-11", "2013-12"),
        "2013-01",
        "2013-12",
        12,
    )
    assert (nov.current, nov.window[0], nov.window[-1]) == (("2013-11",), "2012-12", "2013-11")
    with pytest.raises(ValueError, match="2013-13"):
        alert_period("2013-13")


def test_run_without_spells_passes_with_empty_mortality_and_alerts(bundles, tmp_path):
    results, codes = _compute(bundles["no_spells"], tmp_path / "out")
    tables = _as_written(results)
    assert len(tables["mortality.csv"]) == 0 and len(tables["alerts.csv"]) == 0
    catalogue = pipeline.load_catalogue()
    from_spells = catalogue.index[catalogue["derived_from"] == "spells"]
    mort = tables["flags.csv"]["indicator_id"].isin(from_spells)
    assert mort.any() and (tables["flags.csv"].loc[mort, "flag"] == "not_applicable").all()
    check_outputs(tables, codes)


def test_empty_mortality_and_alerts_as_the_stages_build_them_pass(valid, run):
    """Without spells the mortality stage returns ``pd.DataFrame(columns=...)`` tables and the
    monitor a frame of empty ``object`` series: no values, so no dtype to check."""
    tables = {
        **valid,
        "mortality.csv": pd.DataFrame(columns=MORTALITY_COLUMNS),
        "alerts.csv": pd.DataFrame({c: pd.Series(dtype=object) for c in ALERTS_COLUMNS}),
    }
    assert tables["mortality.csv"]["observed"].dtype == object
    check_outputs(tables, run.trust_codes)


def test_movement_from_a_previous_quarter_passes(valid, run):
    """Bands with up / down / same / new movements from the banding code itself."""
    from surveillance.banding.explain import add_movement

    bands = valid["bands.csv"]
    previous = bands[["trust_code", "band"]].iloc[1:].copy()  # first trust: new
    previous["band"] = np.roll(previous["band"].to_numpy(), 1)
    moved = add_movement(bands.drop(columns=["previous_band", "movement"]), previous)
    moved = pipeline.ordered(moved, BANDS_COLUMNS)
    assert {"new", "up", "down"} <= set(moved["movement"]) or {"new", "same"} <= set(
        moved["movement"]
    )
    check_outputs({**valid, "bands.csv": moved}, run.trust_codes)


def test_documented_infinities_and_python_numbers_in_object_columns_pass(tables, run):
    flags = tables["flags.csv"]
    row = int(np.flatnonzero(flags["z"].notna())[0])
    flags.loc[row, ["z", "z_adjusted"]] = [-np.inf, -np.inf]  # O = 0 on a log scale
    mort = tables["mortality.csv"]
    mort.loc[0, ["upper95", "upper998"]] = [np.inf, np.inf]  # exp of a wide limit, E near 0
    bands = tables["bands.csv"]
    bands["applicable"] = bands["applicable"].astype(object)  # Python ints in an object column
    bands["band"] = [int(b) if b.isdigit() else b for b in bands["band"]]  # 4 is written "4"
    check_outputs(tables, run.trust_codes)


def test_extra_columns_after_the_contract_columns_pass(tables, run):
    tables["bands.csv"] = tables["bands.csv"].assign(anything=1, more="x")
    check_outputs(tables, run.trust_codes)


def test_enumerations_agree_with_the_code_that_writes_them():
    """The contract's value lists (written from DESIGN.md) are the ones the producers use."""
    from surveillance.banding.scoring import BAND_LABELS, FLAG_LEVELS
    from surveillance.mortality.ratios import BANDS

    assert set(FLAG_VALUES) == set(FLAG_LEVELS)
    assert set(BAND_VALUES) == set(BAND_LABELS)
    assert set(MORTALITY_BANDING) == set(BANDS)


# --------------------------------------------------------------------------------------------
# Every rule rejects a mutation


def _put(frame: pd.DataFrame, row: int, column: str, value) -> None:
    """Set one cell by position, widening the column's dtype as a writer's frame would."""
    dtype = frame[column].dtype
    numeric = isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool
    )
    if value is None and pd.api.types.is_numeric_dtype(dtype):
        value = np.nan
        if pd.api.types.is_integer_dtype(dtype):
            frame[column] = frame[column].astype(float)
    elif pd.api.types.is_integer_dtype(dtype) and numeric and not float(value).is_integer():
        frame[column] = frame[column].astype(float)
    elif pd.api.types.is_numeric_dtype(dtype) and not numeric:
        frame[column] = frame[column].astype(object)
    frame.iat[row, frame.columns.get_loc(column)] = value


@dataclasses.dataclass(frozen=True)
class Case:
    """A mutation of the valid tables and the violation it must cause.

    ``mutate`` changes the tables in place and returns the 0-based rows the violation must list
    (``()`` for rules without rows); ``also`` lists
    the other (column, rule) violations the same mutation unavoidably causes (a count that is
    not whole also breaks the ALL row's total, ...); none else may appear.
    """

    file: str
    column: str | None
    rule: str
    mutate: Callable[[Tables], tuple[int, ...]]
    also: tuple[tuple[str, str], ...] = ()
    trusts: bool = True
    period: bool = True

    @property
    def id(self) -> str:
        return f"{self.file}:{self.column}:{self.rule}"


def _cell(file: str, column: str, value, where: Callable[[pd.DataFrame], np.ndarray] | None = None):
    """Mutation: set ``column`` of the first row selected by ``where`` (default row 3)."""

    def mutate(tables: Tables) -> tuple[int, ...]:
        frame = tables[file]
        row = 3 if where is None else int(np.flatnonzero(where(frame))[0])
        _put(frame, row, column, value)
        return (row,)

    return mutate


def _flag_type(kind: str, present: str = "observed"):
    return lambda f: (f["type"] == kind).to_numpy() & f[present].notna().to_numpy()


def _assessed(kind: str):
    return lambda f: ((f["type"] == kind) & (f["flag"] != "not_applicable")).to_numpy()


def _mortality_group(m: pd.DataFrame) -> np.ndarray:
    """Diagnosis-group rows with deaths, comfortably inside their 95% limits."""
    inside = (m["ratio"] > 1.2 * m["lower95"]) & (m["ratio"] < 0.8 * m["upper95"])
    return ((m["diagnosis_group"] != "ALL") & (m["observed"] > 0) & inside).to_numpy()


def _mortality_all(m: pd.DataFrame) -> np.ndarray:
    inside = (m["ratio"] > 1.2 * m["lower95"]) & (m["ratio"] < 0.8 * m["upper95"])
    return ((m["diagnosis_group"] == "ALL") & inside).to_numpy()


def _banded(b: pd.DataFrame) -> np.ndarray:
    return (b["band"].astype(str).str.isdigit() & b["p_band_1"].notna()).to_numpy()


def _type_cases(file: str, column: str, kind: str, trusts: bool = True) -> list[Case]:
    """The type case of one column: not_text (a number in it) or not_numeric (text in it)."""
    cases = []
    if kind == "text":
        cases.append(Case(file, column, "not_text", _cell(file, column, 7), trusts=trusts))
    if kind == "number":
        cases.append(Case(file, column, "not_numeric", _cell(file, column, "x"), trusts=trusts))
    return cases


def _required(file: str, column: str, value=None, trusts: bool = True, also=()) -> Case:
    return Case(file, column, "required", _cell(file, column, value), also=also, trusts=trusts)


def _scale(file: str, column: str, factor: float, where, then: Callable | None = None):
    """Mutation: multiply one cell (first row of ``where``) by ``factor``; ``then(frame, row)``
    repairs dependent columns."""

    def mutate(tables: Tables) -> tuple[int, ...]:
        frame = tables[file]
        row = int(np.flatnonzero(where(frame))[0])
        _put(frame, row, column, float(frame[column].iat[row]) * factor)
        if then is not None:
            then(frame, row)
        return (row,)

    return mutate


def _repair_ratio(frame: pd.DataFrame, row: int) -> None:
    o, e = float(frame["observed"].iat[row]), float(frame["expected"].iat[row])
    _put(frame, row, "ratio", o / e)


def _repair_proportion(frame: pd.DataFrame, row: int) -> None:
    s, m = float(frame["score"].iat[row]), float(frame["max_score"].iat[row])
    _put(frame, row, "proportion_score", s / m)


def _add(file: str, column: str, delta: float, where, then: Callable | None = None):
    def mutate(tables: Tables) -> tuple[int, ...]:
        frame = tables[file]
        row = int(np.flatnonzero(where(frame))[0])
        _put(frame, row, column, float(frame[column].iat[row]) + delta)
        if then is not None:
            then(frame, row)
        return (row,)

    return mutate


def _flags_cases() -> list[Case]:
    f = "flags.csv"

    def duplicate_key(tables: Tables) -> tuple[int, ...]:
        flags = tables[f]
        _put(flags, 1, "indicator_id", flags["indicator_id"].iat[0])
        return (0, 1)

    def drop_last_trust(tables: Tables) -> tuple[int, ...]:
        flags = tables[f]
        last = sorted(flags["trust_code"])[-1]
        tables[f] = flags[flags["trust_code"] != last].reset_index(drop=True)
        return ()

    cases = [
        *_type_cases(f, "trust_code", "text", trusts=False),
        _required(f, "trust_code", ""),
        Case(f, "trust_code", "unknown_trust", _cell(f, "trust_code", "ZZZ")),
        Case(f, "trust_code", "missing_trust", drop_last_trust),
        Case(f, "trust_code", "unique_key", duplicate_key),
        *_type_cases(f, "indicator_id", "text"),
        _required(f, "indicator_id", ""),
        _required(f, "domain", ""),
        Case(f, "domain", "allowed_values", _cell(f, "domain", "safety")),
        _required(f, "type"),
        Case(f, "type", "allowed_values", _cell(f, "type", "percentage")),
        *_type_cases(f, "observed", "number"),
        Case(f, "observed", "not_finite", _cell(f, "observed", np.inf, _flag_type("score"))),
        Case(f, "observed", "not_integer", _cell(f, "observed", 2.5, _flag_type("count"))),
        Case(f, "observed", "nonnegative", _cell(f, "observed", -1.0, _flag_type("proportion"))),
        *_type_cases(f, "expected", "number"),
        Case(f, "expected", "not_finite", _cell(f, "expected", np.inf, _flag_type("score"))),
        Case(f, "expected", "nonnegative", _cell(f, "expected", -0.5, _flag_type("proportion"))),
        Case(
            f,
            "expected",
            "positive",
            _cell(f, "expected", 0.0, _flag_type("count", "expected")),
        ),
        *_type_cases(f, "z", "number"),
        *_type_cases(f, "z_adjusted", "number"),
        Case(
            f,
            "z_adjusted",
            "flag_statistic",
            _cell(f, "z_adjusted", None, _assessed("proportion")),
        ),
        *_type_cases(f, "p_value", "number"),
        Case(
            f,
            "p_value",
            "not_finite",
            _cell(f, "p_value", np.inf),
            also=(("p_value", "probability_range"),),
        ),
        Case(f, "p_value", "probability_range", _cell(f, "p_value", 1.5)),
        _required(f, "flag"),
        Case(f, "flag", "allowed_values", _cell(f, "flag", "alarm")),
        *_type_cases(f, "method", "text"),
    ]
    for column in ("trust_name", "indicator_name"):  # added to the contract (issue 16)
        cases += [*_type_cases(f, column, "text"), _required(f, column)]
    for column in ("phi", "tau2"):
        cases += [
            *_type_cases(f, column, "number"),
            Case(f, column, "not_finite", _cell(f, column, np.inf)),
            Case(f, column, "nonnegative", _cell(f, column, -0.1)),
        ]
    return cases


def _alerts_cases() -> list[Case]:
    f = "alerts.csv"

    def duplicate_key(tables: Tables) -> tuple[int, ...]:
        alerts = tables[f]  # row 1 becomes a second copy of row 0's alert
        for column in ("trust_code", "diagnosis_group", "signal_month", "first_signal_month"):
            _put(alerts, 1, column, alerts[column].iat[0])
        _put(alerts, 1, "status", alerts["status"].iat[0])
        return (0, 1)

    def after_the_window(tables: Tables) -> tuple[int, ...]:
        # a later row of a chart moved past the quarter's end (its first signal unchanged)
        row = int(np.flatnonzero(~_first_rows(tables[f]))[0])
        _put(tables[f], row, "signal_month", "2013-10")
        return (row,)

    def first_after_signal(tables: Tables) -> tuple[int, ...]:
        # a persisting chart's first row claims a first signal after it (still before the
        # quarter, so the status stays right); its other rows keep the true first month
        alerts = tables[f]
        row = int(np.flatnonzero(_first_rows(alerts) & (alerts["signal_month"] < "2013-06"))[0])
        later = pd.Period(alerts["signal_month"].iat[row], "M") + 1
        _put(alerts, row, "first_signal_month", str(later))
        return (row,)

    def not_the_earliest(tables: Tables) -> tuple[int, ...]:
        # a later row (before the quarter) of a persisting chart names itself as the first
        alerts = tables[f]
        later = ~_first_rows(alerts) & (alerts["signal_month"] < QUARTER_MONTHS[0]).to_numpy()
        row = int(np.flatnonzero(later)[0])
        _put(alerts, row, "first_signal_month", alerts["signal_month"].iat[row])
        return (row,)

    def half_threshold(tables: Tables) -> tuple[int, ...]:
        _put(tables[f], 2, "cusum", float(tables[f]["threshold"].iat[2]) * 0.5)
        return (2,)

    cases = [
        *_type_cases(f, "trust_code", "text"),
        _required(f, "trust_code", ""),
        Case(f, "trust_code", "unique_key", duplicate_key),
        *_type_cases(f, "diagnosis_group", "text"),
        _required(f, "diagnosis_group", " "),
        _required(f, "signal_month"),
        Case(f, "signal_month", "not_month", _cell(f, "signal_month", "2013-13")),
        Case(f, "signal_month", "signal_window", after_the_window),
        _required(f, "first_signal_month"),
        Case(f, "first_signal_month", "not_month", _cell(f, "first_signal_month", "2013/05")),
        Case(
            f,
            "first_signal_month",
            "first_signal_order",
            first_after_signal,
            also=(("first_signal_month", "first_signal_row"),),
        ),
        Case(f, "first_signal_month", "first_signal_row", not_the_earliest),
        *_type_cases(f, "cusum", "number"),
        _required(f, "cusum"),
        Case(f, "cusum", "not_finite", _cell(f, "cusum", np.inf)),
        Case(
            f,
            "cusum",
            "nonnegative",
            _cell(f, "cusum", -1.0),
            also=(("cusum", "signal_threshold"),),
        ),
        Case(f, "cusum", "signal_threshold", half_threshold),
        *_type_cases(f, "threshold", "number"),
        _required(f, "threshold"),
        Case(
            f,
            "threshold",
            "not_finite",
            _cell(f, "threshold", np.inf),
            also=(("cusum", "signal_threshold"),),
        ),
        Case(f, "threshold", "positive", _cell(f, "threshold", 0.0)),
        *_type_cases(f, "observed", "number"),
        _required(f, "observed"),
        Case(f, "observed", "not_finite", _cell(f, "observed", np.inf)),
        Case(f, "observed", "not_integer", _cell(f, "observed", 1.5)),
        Case(f, "observed", "nonnegative", _cell(f, "observed", -1)),
        *_type_cases(f, "expected", "number"),
        _required(f, "expected"),
        Case(f, "expected", "not_finite", _cell(f, "expected", np.inf)),
        Case(f, "expected", "positive", _cell(f, "expected", 0.0)),
        *_type_cases(f, "false_alarm_rate", "number"),
        _required(f, "false_alarm_rate"),
        Case(
            f,
            "false_alarm_rate",
            "not_finite",
            _cell(f, "false_alarm_rate", np.inf),
            also=(("false_alarm_rate", "probability_range"),),
        ),
        Case(f, "false_alarm_rate", "probability_range", _cell(f, "false_alarm_rate", 0.0)),
        _required(f, "status"),
        Case(f, "status", "allowed_values", _cell(f, "status", "old")),
        # a chart that first signalled before the quarter called new
        Case(
            f,
            "status",
            "status_consistent",
            _cell(f, "status", "new", lambda a: (a["status"] == "persisting").to_numpy()),
        ),
        *_type_cases(f, "caution", "text"),  # added to the contract (issue 16)
    ]
    return cases


def _first_rows(alerts: pd.DataFrame) -> np.ndarray:
    """Rows holding their chart's first signal (alerts sorted by chart, then month)."""
    chart = alerts["trust_code"].astype(str) + "|" + alerts["diagnosis_group"].astype(str)
    return ~chart.duplicated().to_numpy()


def _mortality_cases() -> list[Case]:
    f = "mortality.csv"
    group, everything = _mortality_group, _mortality_all
    totals_of = (("observed", "all_totals"),)

    def duplicate_key(tables: Tables) -> tuple[int, ...]:
        m = tables[f]
        pairs = (m["trust_code"].to_numpy()[1:] == m["trust_code"].to_numpy()[:-1]) & (
            m["diagnosis_group"].to_numpy()[:-1] != "ALL"
        )
        row = int(np.flatnonzero(pairs)[0])
        _put(m, row + 1, "diagnosis_group", m["diagnosis_group"].iat[row])
        return (row, row + 1)

    def rename_all_row(tables: Tables) -> tuple[int, ...]:
        m = tables[f]
        row = int(np.flatnonzero(m["diagnosis_group"] == "ALL")[1])
        code = m["trust_code"].iat[row]
        _put(m, row, "diagnosis_group", "Everything")
        return tuple(int(i) for i in np.flatnonzero(m["trust_code"] == code)[:MAX_ROWS_PER_RULE])

    def between(column: str, low: str, high: str, where):
        def mutate(tables: Tables) -> tuple[int, ...]:
            m = tables[f]
            row = int(np.flatnonzero(where(m))[0])
            _put(m, row, column, (float(m[low].iat[row]) + float(m[high].iat[row])) / 2)
            return (row,)

        return mutate

    return [
        Case(
            f,
            "trust_code",
            "not_text",
            _cell(f, "trust_code", 7),
            also=(("diagnosis_group", "all_row"),),
        ),
        Case(
            f,
            "trust_code",
            "required",
            _cell(f, "trust_code", "", group),
            also=(("observed", "all_totals"), ("expected", "all_totals")),
        ),
        Case(f, "trust_code", "unique_key", duplicate_key),
        *_type_cases(f, "diagnosis_group", "text"),
        _required(f, "diagnosis_group", ""),
        Case(f, "diagnosis_group", "all_row", rename_all_row),
        *_type_cases(f, "observed", "number"),
        _required(f, "observed"),
        Case(f, "observed", "not_finite", _cell(f, "observed", np.inf, group)),
        Case(
            f,
            "observed",
            "not_integer",
            _add(f, "observed", 0.5, group, _repair_ratio),
            also=totals_of,
        ),
        Case(
            f,
            "observed",
            "nonnegative",
            _cell(f, "observed", -1, group),
            also=(*totals_of, ("ratio", "ratio_consistent")),
        ),
        Case(f, "observed", "all_totals", _add(f, "observed", 1, everything, _repair_ratio)),
        *_type_cases(f, "expected", "number"),
        _required(f, "expected"),
        Case(f, "expected", "not_finite", _cell(f, "expected", np.inf, group)),
        Case(
            f,
            "expected",
            "nonnegative",
            _cell(f, "expected", -1.0, group),
            also=(("expected", "all_totals"),),
        ),
        Case(f, "expected", "all_totals", _scale(f, "expected", 1.01, everything, _repair_ratio)),
        *_type_cases(f, "ratio", "number"),
        Case(
            f,
            "ratio",
            "not_finite",
            _cell(f, "ratio", np.inf, group),
            also=(("ratio", "ratio_consistent"),),
        ),
        Case(
            f,
            "ratio",
            "nonnegative",
            _cell(f, "ratio", -1.0, group),
            also=(("ratio", "ratio_consistent"), ("banding", "banding_limits")),
        ),
        Case(f, "ratio", "ratio_consistent", _scale(f, "ratio", 1.01, group)),
        *_type_cases(f, "lower95", "number"),
        Case(
            f,
            "lower95",
            "not_finite",
            _cell(f, "lower95", np.inf, group),
            also=(("lower95", "limit_order"),),
        ),
        Case(
            f,
            "lower95",
            "nonnegative",
            _cell(f, "lower95", -0.1, group),
            also=(("lower998", "limit_order"),),
        ),
        Case(f, "lower95", "limit_order", between("lower95", "upper95", "upper998", group)),
        *_type_cases(f, "upper95", "number"),
        Case(
            f,
            "upper95",
            "nonnegative",
            _cell(f, "upper95", -1.0, group),
            also=(("lower95", "limit_order"),),
        ),
        *_type_cases(f, "lower998", "number"),
        Case(
            f,
            "lower998",
            "not_finite",
            _cell(f, "lower998", np.inf, group),
            also=(("lower998", "limit_order"),),
        ),
        Case(f, "lower998", "nonnegative", _cell(f, "lower998", -1.0, group)),
        Case(f, "lower998", "limit_order", between("lower998", "lower95", "ratio", group)),
        *_type_cases(f, "upper998", "number"),
        Case(
            f,
            "upper998",
            "nonnegative",
            _cell(f, "upper998", -1.0, group),
            also=(("upper998", "limit_order"), ("banding", "banding_limits")),
        ),
        Case(f, "upper998", "limit_order", between("upper998", "ratio", "upper95", group)),
        _required(f, "banding"),
        Case(f, "banding", "allowed_values", _cell(f, "banding", "high")),
        Case(f, "banding", "banding_limits", _cell(f, "banding", "higher than expected", group)),
    ]


def _bands_cases() -> list[Case]:
    f = "bands.csv"

    def unknown(tables: Tables) -> tuple[int, ...]:
        bands = tables[f]
        extra = bands.iloc[[0]].assign(trust_code="ZZZ")
        tables[f] = pd.concat([bands, extra], ignore_index=True)
        return (len(bands),)

    def drop_row(tables: Tables) -> tuple[int, ...]:
        tables[f] = tables[f].drop(index=5).reset_index(drop=True)
        return ()

    def duplicate_key(tables: Tables) -> tuple[int, ...]:
        _put(tables[f], 1, "trust_code", tables[f]["trust_code"].iat[0])
        return (0, 1)

    def drop_p_band(tables: Tables) -> tuple[int, ...]:
        row = int(np.flatnonzero(_banded(tables[f]))[0])
        _put(tables[f], row, "p_band_3", None)
        return (row,)

    def movement(tables: Tables) -> tuple[int, ...]:
        row = int(np.flatnonzero(tables[f]["movement"] == "new")[0])
        _put(tables[f], row, "movement", "same")
        return (row,)

    def over_applicable(tables: Tables) -> tuple[int, ...]:
        bands = tables[f]
        _put(bands, 2, "risks", int(bands["applicable"].iat[2]) + 1)
        return (2,)

    has_score = lambda b: (b["score"] > 0).to_numpy()  # noqa: E731
    cases = [
        *_type_cases(f, "trust_code", "text", trusts=False),
        _required(f, "trust_code", "", trusts=False),
        Case(f, "trust_code", "unknown_trust", unknown),
        Case(f, "trust_code", "missing_trust", drop_row),
        Case(f, "trust_code", "unique_key", duplicate_key, trusts=False),
        *_type_cases(f, "trust_name", "text"),
        _required(f, "trust_name", ""),
        *_type_cases(f, "region", "text"),
        _required(f, "region"),
    ]
    for column in ("applicable", "risks", "elevated_risks", "score", "max_score"):
        cases += [*_type_cases(f, column, "number"), _required(f, column)]
    cases += [
        Case(f, "applicable", "not_finite", _cell(f, "applicable", np.inf)),
        Case(f, "applicable", "not_integer", _cell(f, "applicable", 150.5)),
        Case(
            f,
            "applicable",
            "nonnegative",
            _cell(f, "applicable", -1),
            also=(("risks", "risk_counts"),),
        ),
        Case(
            f,
            "risks",
            "not_finite",
            _cell(f, "risks", np.inf),
            also=(("risks", "risk_counts"),),
        ),
        Case(f, "risks", "not_integer", _cell(f, "risks", 0.5)),
        Case(f, "risks", "nonnegative", _cell(f, "risks", -1)),
        Case(f, "risks", "risk_counts", over_applicable),
        Case(
            f,
            "elevated_risks",
            "not_finite",
            _cell(f, "elevated_risks", np.inf),
            also=(("risks", "risk_counts"),),
        ),
        Case(f, "elevated_risks", "not_integer", _cell(f, "elevated_risks", 0.5)),
        Case(f, "elevated_risks", "nonnegative", _cell(f, "elevated_risks", -1)),
        Case(
            f,
            "score",
            "not_finite",
            _cell(f, "score", np.inf),
            also=(("score", "score_bounds"), ("proportion_score", "proportion_consistent")),
        ),
        Case(f, "score", "not_integer", _add(f, "score", 0.5, has_score, _repair_proportion)),
        Case(
            f,
            "score",
            "nonnegative",
            _cell(f, "score", -1),
            also=(("proportion_score", "proportion_consistent"),),
        ),
        Case(
            f,
            "score",
            "score_bounds",
            _scale(f, "score", 1000.0, has_score, _repair_proportion),
            also=(("proportion_score", "probability_range"),),
        ),
        Case(
            f,
            "max_score",
            "not_finite",
            _cell(f, "max_score", np.inf, has_score),
            also=(("proportion_score", "proportion_consistent"),),
        ),
        Case(
            f, "max_score", "not_integer", _add(f, "max_score", 0.5, has_score, _repair_proportion)
        ),
        Case(
            f,
            "max_score",
            "nonnegative",
            _cell(f, "max_score", -1),
            also=(("score", "score_bounds"),),
        ),
        *_type_cases(f, "proportion_score", "number"),
        Case(
            f,
            "proportion_score",
            "not_finite",
            _cell(f, "proportion_score", np.inf),
            also=(
                ("proportion_score", "probability_range"),
                ("proportion_score", "proportion_consistent"),
            ),
        ),
        Case(
            f,
            "proportion_score",
            "probability_range",
            _cell(f, "proportion_score", 1.5),
            also=(("proportion_score", "proportion_consistent"),),
        ),
        Case(
            f,
            "proportion_score",
            "proportion_consistent",
            _add(f, "proportion_score", 0.01, has_score),
        ),
        _required(f, "band"),
        Case(f, "band", "allowed_values", _cell(f, "band", "7")),
        *_type_cases(f, "band_reason", "text"),
        _required(f, "band_reason", ""),
    ]
    for column in [f"p_band_{b}" for b in range(1, 7)]:
        cases += [
            *_type_cases(f, column, "number"),
            Case(
                f,
                column,
                "not_finite",
                _cell(f, column, np.inf, _banded),
                also=((column, "probability_range"), ("p_band_1", "band_probabilities")),
            ),
            Case(
                f,
                column,
                "probability_range",
                _cell(f, column, -0.5, _banded),
                also=(("p_band_1", "band_probabilities"),),
            ),
        ]
    cases += [
        Case(f, "p_band_1", "band_probabilities", drop_p_band),
        Case(f, "previous_band", "allowed_values", _cell(f, "previous_band", "9")),
        _required(f, "movement"),
        Case(f, "movement", "allowed_values", _cell(f, "movement", "sideways")),
        Case(f, "movement", "movement_consistent", movement),
    ]
    return cases


def _structural_cases() -> list[Case]:
    cases = []
    for file, contract in OUTPUT_COLUMNS.items():

        def missing_file(tables: Tables, file=file) -> tuple[int, ...]:
            del tables[file]
            return ()

        def missing_column(tables: Tables, file=file, column=contract[3]) -> tuple[int, ...]:
            tables[file] = tables[file].drop(columns=[column])
            return ()

        def swapped(tables: Tables, file=file, contract=contract) -> tuple[int, ...]:
            columns = list(tables[file].columns)
            columns[1], columns[2] = columns[2], columns[1]
            tables[file] = tables[file][columns]
            return ()

        def duplicated(tables: Tables, file=file, column=contract[0]) -> tuple[int, ...]:
            tables[file] = pd.concat([tables[file], tables[file][[column]]], axis=1)
            return ()

        cases += [
            Case(file, None, "missing_file", missing_file),
            Case(file, contract[3], "missing_column", missing_column),
            Case(file, contract[2], "column_order", swapped),
            Case(file, contract[0], "duplicate_column", duplicated),
        ]
    return cases


CASES = [
    *_flags_cases(),
    *_alerts_cases(),
    *_mortality_cases(),
    *_bands_cases(),
    *_structural_cases(),
]


def test_every_rule_of_every_column_has_a_mutation():
    """The mutations below cover each (file, column, rule) the schemas check, and nothing else."""
    checked = set(iter_output_rules())
    structural = {
        (file, column, rule)
        for file, contract in OUTPUT_COLUMNS.items()
        for column, rule in (
            (None, "missing_file"),
            (contract[3], "missing_column"),
            (contract[2], "column_order"),
            (contract[0], "duplicate_column"),
        )
    }
    mutated = [(c.file, c.column, c.rule) for c in CASES]
    assert len(mutated) == len(set(mutated)), "a (file, column, rule) is mutated twice"
    assert set(mutated) == checked | structural
    named = set(output_rule_names())
    assert {rule for _, _, rule in mutated} == named - {"check_error"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_mutation_is_rejected_with_file_column_rule_and_rows(case, tables, run):
    rows = case.mutate(tables)
    codes = run.trust_codes if case.trusts else None
    with pytest.raises(OutputContractError) as info:
        check_outputs(tables, codes, QUARTER if case.period else None)
    violations = info.value.violations
    hits = [
        v for v in violations if (v.file, v.column, v.rule) == (case.file, case.column, case.rule)
    ]
    assert len(hits) == 1, f"expected {case.id}; got {[str(v) for v in violations]}"
    assert hits[0].rows == rows, str(hits[0])
    others = {(v.file, v.column, v.rule) for v in violations} - {
        (case.file, case.column, case.rule)
    }
    expected = {(case.file, column, rule) for column, rule in case.also}
    assert others == expected, [str(v) for v in violations]


def test_flag_statistic_also_rejects_a_not_applicable_row_with_a_statistic(tables, run):
    flags = tables["flags.csv"]
    row = int(np.flatnonzero(flags["flag"] == "not_applicable")[0])
    _put(flags, row, "z_adjusted", 1.5)
    with pytest.raises(OutputContractError) as info:
        check_outputs(tables, run.trust_codes)
    (violation,) = info.value.violations
    assert (violation.column, violation.rule, violation.rows) == (
        "z_adjusted",
        "flag_statistic",
        (row,),
    )


def test_check_output_checks_one_table(valid):
    """The monthly mortality run publishes alerts.csv alone."""
    check_output("alerts.csv", valid["alerts.csv"])
    alerts = valid["alerts.csv"].copy()
    _put(alerts, 0, "status", "maybe")
    with pytest.raises(OutputContractError) as info:
        check_output("alerts.csv", alerts)
    (violation,) = info.value.violations
    assert (violation.file, violation.column, violation.rule, violation.rows) == (
        "alerts.csv",
        "status",
        "allowed_values",
        (0,),
    )


# --------------------------------------------------------------------------------------------
# Reporting


def test_error_is_a_contract_error_listing_rows_as_positions(tables, run):
    tables["flags.csv"]["domain"] = "nowhere"
    with pytest.raises(ContractError) as info:
        check_outputs(tables, run.trust_codes)
    assert isinstance(info.value, OutputContractError)
    (violation,) = info.value.violations
    n = len(tables["flags.csv"])
    assert violation.rows == tuple(range(MAX_ROWS_PER_RULE))
    assert violation.message.endswith(f"[{n} row(s)]")
    text = str(info.value)
    assert text.startswith("1 output contract violation(s) (rows are 0-based positions")
    assert "flags.csv row(s) 0, 1, 2" in text and "column 'domain': [allowed_values]" in text


def test_rows_are_positions_not_index_labels(tables, run):
    bands = tables["bands.csv"]
    bands.index = bands.index[::-1] + 100  # labels 111 .. 100
    _put(bands, 4, "movement", "sideways")
    with pytest.raises(OutputContractError) as info:
        check_outputs(tables, run.trust_codes)
    (violation,) = info.value.violations
    assert (violation.rule, violation.rows) == ("allowed_values", (4,))


def test_trust_rules_only_with_a_trust_list(tables, run):
    tables["bands.csv"] = tables["bands.csv"].iloc[:-1]
    check_outputs(tables, None)
    with pytest.raises(OutputContractError, match="missing_trust"):
        check_outputs(tables, run.trust_codes)


def test_a_rule_that_raises_is_reported_as_check_error(tables, run, monkeypatch):
    import surveillance.output_contracts as oc

    original = oc._alerts_rules

    def broken(*args):
        rules = original(*args)
        rules[0] = dataclasses.replace(rules[0], bad=lambda t: 1 / 0)
        return rules

    monkeypatch.setattr(oc, "_alerts_rules", broken)
    with pytest.raises(OutputContractError) as info:
        check_outputs(tables, run.trust_codes)
    (violation,) = info.value.violations
    assert (violation.file, violation.column, violation.rule) == (
        "alerts.csv",
        "trust_code",
        "check_error",
    )
    assert "ZeroDivisionError" in violation.message


def test_unknown_table_names_are_a_programming_error(valid):
    with pytest.raises(ValueError, match="sources.csv"):
        check_outputs({**valid, "sources.csv": pd.DataFrame()})
