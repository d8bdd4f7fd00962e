"""NHS England monthly A&E adapter and assemble(): values, format errors, missing and late feeds."""

from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest

from surveillance.contracts import INDICATOR_COLUMNS
from surveillance.errors import ContractError
from surveillance.sources import AeAttendancesAdapter, assemble
from surveillance.sources.ae import PACKAGED_FILE

HEADER = "period,org_code,type,attendances,breaches,admissions\n"


@pytest.fixture(scope="module")
def catalogue() -> pd.DataFrame:
    from surveillance.catalogue import load_catalogue

    return load_catalogue()


@pytest.fixture
def feeds(tmp_path: Path) -> Path:
    path = tmp_path / "feeds"
    path.mkdir()
    shutil.copy(PACKAGED_FILE, path / "ae_attendances.csv")
    return path


def _type1_sums(path: Path, org: str, months: list[str]) -> tuple[int, int]:
    """Independent computation with the csv module: type-1 breaches and attendances."""
    breaches = attendances = 0
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["org_code"] == org and row["type"] == "1" and row["period"][:7] in months:
                breaches += int(float(row["breaches"]))
                attendances += int(float(row["attendances"]))
    return breaches, attendances


def test_packaged_copy_is_the_shared_file(shared_dir: Path) -> None:
    shared = shared_dir / "data" / "ae_attendances.csv"
    digest = hashlib.sha256(PACKAGED_FILE.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(shared.read_bytes()).hexdigest()
    readme = (PACKAGED_FILE.parent / "README.md").read_text()
    assert "Open Government Licence v3.0" in readme and "NHSRdatasets" in readme


def test_quarterly_4h_matches_independent_sum(feeds: Path, catalogue: pd.DataFrame) -> None:
    result = assemble(feeds, catalogue, "2017Q2")
    rows = result.indicators[result.indicators["indicator_id"] == "wait_ae_4h"]
    for org in ("RF4", "R1H", "RXX"):
        breaches, attendances = _type1_sums(
            feeds / "ae_attendances.csv", org, ["2017-04", "2017-05", "2017-06"]
        )
        row = rows[rows["trust_code"] == org]
        if attendances == 0:
            assert row.empty
            continue
        assert row["numerator"].item() == breaches
        assert row["denominator"].item() == attendances
        assert row["value"].item() == pytest.approx(breaches / attendances)
        assert str(pd.Timestamp(row["period_start"].item()).date()) == "2017-04-01"
        assert str(pd.Timestamp(row["period_end"].item()).date()) == "2017-06-30"
    # only trusts with a type-1 department in every month of the quarter
    with (feeds / "ae_attendances.csv").open(newline="") as handle:
        months = {}
        for row in csv.DictReader(handle):
            if row["type"] == "1" and row["period"][:7] in ("2017-04", "2017-05", "2017-06"):
                months.setdefault(row["org_code"], set()).add(row["period"])
    assert set(rows["trust_code"]) == {o for o, m in months.items() if len(m) == 3}
    assert list(result.indicators.columns) == INDICATOR_COLUMNS


def test_monthly_series_has_twelve_months(feeds: Path, catalogue: pd.DataFrame) -> None:
    result = assemble(feeds, catalogue, "2017Q2", trust_codes=["RF4", "R1H"])
    monthly = result.indicators[result.indicators["indicator_id"] == "wait_ae_4h_cusum"]
    assert sorted(monthly["trust_code"].unique()) == ["R1H", "RF4"]
    rf4 = monthly[monthly["trust_code"] == "RF4"]
    assert len(rf4) == 12
    assert str(pd.Timestamp(rf4["period_start"].min()).date()) == "2016-07-01"
    assert str(pd.Timestamp(rf4["period_end"].max()).date()) == "2017-06-30"
    b, a = _type1_sums(feeds / "ae_attendances.csv", "RF4", ["2017-01"])
    jan = rf4[pd.to_datetime(rf4["period_start"]) == "2017-01-01"]
    assert (jan["numerator"].item(), jan["denominator"].item()) == (b, a)
    # trust filter: only bundle trusts
    assert set(result.indicators["trust_code"]) == {"RF4", "R1H"}


def test_status_records_feed_hash(feeds: Path, catalogue: pd.DataFrame) -> None:
    result = assemble(feeds, catalogue, "2017Q2")
    ok = [s for s in result.sources if s.source == "NHS England A&E" and s.status == "ok"]
    assert len(ok) == 1
    assert ok[0].indicator_ids == ("wait_ae_4h", "wait_ae_4h_cusum")
    assert ok[0].sha256 == hashlib.sha256((feeds / "ae_attendances.csv").read_bytes()).hexdigest()
    assert ok[0].latest_period == "2019-03"
    assert result.feed_files == {"feeds/ae_attendances.csv": feeds / "ae_attendances.csv"}


def test_late_feed_leaves_indicators_not_applicable(feeds: Path, catalogue) -> None:
    result = assemble(feeds, catalogue, "2019Q2")
    late = [s for s in result.sources if s.status == "late"]
    assert [s.indicator_ids for s in late] == [("wait_ae_4h", "wait_ae_4h_cusum")]
    assert "ends 2019-03, before the end of 2019Q2" in late[0].reason
    assert not result.indicators["indicator_id"].isin(["wait_ae_4h", "wait_ae_4h_cusum"]).any()
    assert "wait_ae_4h" in result.unavailable()


def test_late_feed_never_passes_stale_pre_assembled_rows(feeds: Path, catalogue) -> None:
    stale = pd.DataFrame(
        [["RF4", "wait_ae_4h", "2019-04-01", "2019-06-30", "10", "1000", "", "", ""]],
        columns=INDICATOR_COLUMNS,
        dtype=object,
    )
    result = assemble(feeds, catalogue, "2019Q2", bundle_indicators=stale)
    # the feed is authoritative for what it provides: late feed -> not_applicable, not the old rows
    assert "wait_ae_4h" in result.unavailable()


def test_feed_starting_after_lookback_is_missing(feeds: Path, catalogue) -> None:
    result = assemble(feeds, catalogue, "2016Q3")
    unavailable = result.unavailable()
    assert "wait_ae_4h" not in unavailable
    assert "after the start of the 12-month look-back (2015-10)" in unavailable["wait_ae_4h_cusum"]


def test_missing_feed_and_rows_is_reported(tmp_path: Path, catalogue) -> None:
    result = assemble(tmp_path, catalogue, "2017Q2")
    reasons = result.unavailable()
    assert "no feed file ae_attendances.csv" in reasons["wait_ae_4h"]
    assert "no adapter" in reasons["survey_ae_overall"]
    assert result.indicators.empty


def test_pre_assembled_indicators_accepted(tmp_path: Path, catalogue) -> None:
    pre = pd.DataFrame(
        [
            ["RXX", "wait_ae_4h", "2013-07-01", "2013-09-30", "120", "9000", "", "", ""],
            ["RXX", "survey_ae_overall", "2013-01-01", "2013-12-31", "", "", "7.9", "0.1", ""],
        ],
        columns=INDICATOR_COLUMNS,
        dtype=object,
    )
    result = assemble(None, catalogue, "2013Q3", bundle_indicators=pre)
    pd.testing.assert_frame_equal(
        result.indicators.sort_values("indicator_id").reset_index(drop=True),
        pre.sort_values("indicator_id").reset_index(drop=True),
    )
    status = {i: s.status for s in result.sources for i in s.indicator_ids}
    assert status["wait_ae_4h"] == "pre_assembled"
    assert status["survey_ae_overall"] == "pre_assembled"
    assert status["mort_ratio_all"] == "derived"


def test_feed_rows_conform_to_text_bundle(feeds: Path, catalogue) -> None:
    pre = pd.DataFrame(
        [["RF4", "survey_ae_overall", "2016-07-01", "2017-06-30", "", "", "7.9", "0.1", ""]],
        columns=INDICATOR_COLUMNS,
        dtype=object,
    )
    result = assemble(feeds, catalogue, "2017Q2", bundle_indicators=pre, trust_codes=["RF4"])
    row = result.indicators[result.indicators["indicator_id"] == "wait_ae_4h"].iloc[0]
    assert row["period_start"] == "2017-04-01"
    b, a = _type1_sums(feeds / "ae_attendances.csv", "RF4", ["2017-04", "2017-05", "2017-06"])
    assert (row["numerator"], row["denominator"]) == (str(b), str(a))


def test_missing_derived_input_is_reported(catalogue) -> None:
    result = assemble(None, catalogue, "2013Q3", derived_available={"spells": False})
    reasons = result.unavailable()
    assert reasons["mort_ratio_all"].endswith("spells.parquet is not in the bundle")


# ------------------------------------------------------------------ format validation


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "ae_attendances.csv"
    path.write_text(HEADER + body)
    return path


@pytest.mark.parametrize(
    ("body", "row", "column", "rule"),
    [
        ("2017-04-15,RF4,1,10,1,0\n", 1, "period", "first_of_month_date"),
        ("2017-04-01,RF4,1,10,1,0\n2017-13-01,RF4,1,10,1,0\n", 2, "period", "first_of_month_date"),
        ("2017-04-01,rf 4,1,10,1,0\n", 1, "org_code", "ods_code"),
        ("2017-04-01,RF4,3,10,1,0\n", 1, "type", "ae_type"),
        ("2017-04-01,RF4,1,ten,1,0\n", 1, "attendances", "numeric"),
        ("2017-04-01,RF4,1,10,-1,0\n", 1, "breaches", "non_negative"),
        ("2017-04-01,RF4,1,10.5,1,0\n", 1, "attendances", "whole_number"),
        ("2017-04-01,RF4,1,10,11,0\n", 1, "breaches", "breaches_le_attendances"),
        ("2017-04-01,RF4,1,10,1,0\n2017-04-01,RF4,1,12,1,0\n", 1, "org_code", "unique_key"),
    ],
)
def test_format_errors_name_row_column_rule(tmp_path, body, row, column, rule) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(ContractError) as info:
        AeAttendancesAdapter().read(path)
    violation = info.value.violations[0]
    assert (violation.file, violation.column, violation.rule) == (
        "ae_attendances.csv",
        column,
        rule,
    )
    assert violation.rows[0] == row
    assert f"column '{column}'" in str(info.value)


def test_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "ae_attendances.csv"
    path.write_text("period,org_code,type,attendances\n2017-04-01,RF4,1,10\n")
    with pytest.raises(ContractError, match="missing column"):
        AeAttendancesAdapter().read(path)


def test_bad_feed_fails_assemble_loudly(tmp_path: Path, catalogue) -> None:
    _write(tmp_path, "2017-04-01,RF4,1,10,11,0\n")
    with pytest.raises(ContractError, match="breaches cannot exceed attendances"):
        assemble(tmp_path, catalogue, "2017Q2")


def test_parquet_feed_gives_same_rows(feeds: Path, tmp_path: Path, catalogue) -> None:
    parquet_dir = tmp_path / "pq"
    parquet_dir.mkdir()
    raw = pd.read_csv(feeds / "ae_attendances.csv", dtype=str)
    raw.to_parquet(parquet_dir / "ae_attendances.parquet")
    a = assemble(feeds, catalogue, "2017Q2").indicators
    b = assemble(parquet_dir, catalogue, "2017Q2").indicators
    pd.testing.assert_frame_equal(a, b)


def test_bundle_rows_keep_file_order(feeds: Path, catalogue) -> None:
    """Contract violations name indicators.csv rows: the bundle's rows must stay in file order."""
    pre = pd.DataFrame(
        [
            ["RXX", "survey_ae_overall", "2016-07-01", "2017-06-30", "", "", "7.9", "0.1", ""],
            ["RAA", "survey_ae_overall", "2016-07-01", "2017-06-30", "", "", "8.1", "0.1", ""],
        ],
        columns=INDICATOR_COLUMNS,
        dtype=object,
    )
    result = assemble(feeds, catalogue, "2017Q2", bundle_indicators=pre, trust_codes=["RF4"])
    head = result.indicators.iloc[:2].reset_index(drop=True)
    pd.testing.assert_frame_equal(head, pre)
    assert set(result.indicators.iloc[2:]["indicator_id"]) == {"wait_ae_4h", "wait_ae_4h_cusum"}


def test_feed_not_reaching_the_quarter_supersedes_bundle_rows(feeds: Path, catalogue) -> None:
    pre = pd.DataFrame(
        [["RF4", "wait_ae_4h", "2013-07-01", "2013-09-30", "10", "1000", "", "", ""]],
        columns=INDICATOR_COLUMNS,
        dtype=object,
    )
    result = assemble(feeds, catalogue, "2013Q3", bundle_indicators=pre)
    assert result.indicators.empty
    assert "feed starts 2016-04" in result.unavailable()["wait_ae_4h"]
    assert any("superseded by feeds for: wait_ae_4h" in n for n in result.notes)
