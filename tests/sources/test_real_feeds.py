"""The CWT, KH03 and Staff Survey adapters on the publishers' real files (``../shared/data``),
and their refusals of files they do not recognise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from openpyxl import Workbook, load_workbook

from surveillance.errors import ContractError
from surveillance.periods import Quarter
from surveillance.sources.cwt import (
    COLUMNS,
    SHEET,
    CancerWaitingTimesAdapter,
    national_series,
)
from surveillance.sources.kh03 import Kh03Adapter, quarter_from_label
from surveillance.sources.staff_survey import StaffSurveyAdapter

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
CWT_DIR = SHARED / "cancer_waiting_times"
PROVISIONAL = CWT_DIR / "CWT-CRS-Apr-2023-to-Sep-2023-Data-Extract-Provider-Provisional.xlsx"
OCTOBER = CWT_DIR / "CWT-CRS-Oct-2023-Data-Extract-Provider.xlsx"
NATIONAL = CWT_DIR / "CWT-CRS-National-Time-Series-Oct-2009-Oct-2023-with-Revisions.xlsx"
KH03 = SHARED / "kh03" / "kh03.parquet"
SURVEY = SHARED / "staff_survey" / "organisational_results_2021_2024.csv"

needs_shared = pytest.mark.skipif(
    not CWT_DIR.is_dir(), reason=f"the real publisher files are not present ({SHARED})"
)


@pytest.fixture(scope="module")
def cwt_feed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not CWT_DIR.is_dir():
        pytest.skip(f"the real publisher files are not present ({SHARED})")
    feed = tmp_path_factory.mktemp("feeds") / "cancer_waiting_times"
    feed.mkdir()
    for src in (PROVISIONAL, OCTOBER):
        (feed / src.name).symlink_to(src)
    return feed


@pytest.fixture(scope="module")
def cwt(cwt_feed_dir: Path) -> pd.DataFrame:
    return CancerWaitingTimesAdapter().read(cwt_feed_dir)


# -- CWT on the real files -----------------------------------------------------------------------


@needs_shared
def test_cwt_trust_rows_sum_exactly_to_the_national_series(cwt: pd.DataFrame) -> None:
    national = national_series(NATIONAL)
    sums = cwt.groupby(["period", "standard"], as_index=False)[
        ["total_treated", "within_standard", "breaches"]
    ].sum()
    both = sums.merge(national, on=["period", "standard"], suffixes=("", "_national"))
    assert len(both) == 21  # seven months x three standards, all present in both
    assert sorted(set(both["period"].dt.strftime("%Y-%m"))) == [
        f"2023-{m:02d}" for m in range(4, 11)
    ]
    for column in ("total_treated", "within_standard", "breaches"):
        assert (both[column] == both[f"{column}_national"]).all(), column
    # the README's check figures, April 2023
    april = both[both["period"] == "2023-04-01"].set_index("standard")
    assert april.loc["28-day FDS", "total_treated"] == 215_274
    assert april.loc["28-day FDS", "within_standard"] == 153_593
    assert april.loc["62-day Combined", "total_treated"] == 19_514
    assert april.loc["62-day Combined", "within_standard"] == 12_613


@needs_shared
def test_cwt_half_patients_kept_exact(cwt: pd.DataFrame) -> None:
    sep = cwt[(cwt["period"] == "2023-09-01") & (cwt["standard"] == "62-day Combined")]
    assert sep["total_treated"].sum() == 22_747.5  # the national total, a shared pathway's half
    assert ((sep["total_treated"] * 2) % 1 == 0).all()
    assert (sep["total_treated"] % 1 != 0).any()


@needs_shared
def test_cwt_one_fds_value_checked_by_hand(cwt: pd.DataFrame) -> None:
    # Isle of Wight (R1F), October 2023, 28-day FDS: the 13 rows of the extract, by hand:
    # told 53+18+9+18+94+62+3+64+142+16+58+61+56 = 654, within 28 days 429, outside 225
    row = cwt[
        (cwt["org_code"] == "R1F")
        & (cwt["period"] == "2023-10-01")
        & (cwt["standard"] == "28-day FDS")
    ]
    assert row[["total_treated", "within_standard", "breaches"]].to_numpy().tolist() == [
        [654.0, 429.0, 225.0]
    ]
    assert not bool(row["provisional"].iloc[0])


@needs_shared
def test_cwt_quarter_indicators_and_provisional_months(cwt: pd.DataFrame) -> None:
    result = CancerWaitingTimesAdapter().to_indicators(cwt, Quarter.parse("2023Q3"), None)
    assert result.provisional == ("2023-07", "2023-08", "2023-09")
    ind = result.indicators
    fds = ind[(ind["indicator_id"] == "wait_cancer_28d_fds") & (ind["trust_code"] == "R1F")]
    months = cwt[
        (cwt["org_code"] == "R1F")
        & cwt["period"].isin(pd.to_datetime(["2023-07-01", "2023-08-01", "2023-09-01"]))
        & (cwt["standard"] == "28-day FDS")
    ]
    assert fds["numerator"].iloc[0] == months["breaches"].sum()
    assert fds["denominator"].iloc[0] == months["total_treated"].sum()
    assert fds["period_start"].iloc[0] == pd.Timestamp("2023-07-01")
    assert result.latest_period == pd.Timestamp("2023-10-01")


# -- CWT refusals ----------------------------------------------------------------------------------


def _small_extract(path: Path, header: tuple[str, ...] = COLUMNS, sheet: str = SHEET) -> Path:
    """A three-standard, one-provider, one-month extract in the publisher's layout."""
    book = Workbook()
    ws = book.active
    ws.title = sheet
    ws.append(list(header))
    month = pd.Timestamp("2023-07-01").to_pydatetime()
    ws.append(
        [
            month,
            "2023/24",
            "JUL",
            "28-day FDS",
            "RXX",
            "URGENT SUSPECTED CANCER",
            None,
            "Lung",
            10,
            7,
            3,
        ]
    )
    ws.append(
        [
            month,
            "2023/24",
            "JUL",
            "31-day Combined",
            "RXX",
            "First Treatment",
            "Surgery",
            "Lung",
            4.5,
            4,
            0.5,
        ]
    )
    ws.append(
        [
            month,
            "2023/24",
            "JUL",
            "31-day Combined",
            "RXX",
            "First Treatment",
            "ALL MODALITIES",
            "Lung",
            4.5,
            4,
            0.5,
        ]
    )
    ws.append(
        [
            month,
            "2023/24",
            "JUL",
            "62-day Combined",
            "RXX",
            "Urgent Suspected Cancer",
            "ALL MODALITIES",
            "Lung",
            2,
            1,
            1,
        ]
    )
    book.save(path)
    return path


def test_cwt_small_extract_counts_all_modalities_once(tmp_path: Path) -> None:
    feed = CancerWaitingTimesAdapter().read(_small_extract(tmp_path / "x.xlsx"))
    got = feed.set_index("standard")["total_treated"].to_dict()
    assert got == {"28-day FDS": 10.0, "31-day Combined": 4.5, "62-day Combined": 2.0}


def test_cwt_renamed_header_refused_naming_file_sheet_and_column(tmp_path: Path) -> None:
    header = tuple("ORG_CODE" if c == "ORG CODE" else c for c in COLUMNS)
    path = _small_extract(tmp_path / "renamed.xlsx", header=header)
    with pytest.raises(ContractError) as err:
        CancerWaitingTimesAdapter().read(path)
    (v,) = err.value.violations
    assert (v.rule, v.column) == ("required_column", "ORG CODE")
    assert v.file == f"renamed.xlsx [sheet '{SHEET}']"
    assert "renamed.xlsx [sheet 'CWT CRS Provider Extract'] column 'ORG CODE'" in str(err.value)


def test_cwt_missing_sheet_refused(tmp_path: Path) -> None:
    path = _small_extract(tmp_path / "sheet.xlsx", sheet="Sheet1")
    with pytest.raises(ContractError) as err:
        CancerWaitingTimesAdapter().read(path)
    (v,) = err.value.violations
    assert v.rule == "missing_sheet" and v.file == "sheet.xlsx"
    assert f"'{SHEET}' not found" in v.message and "Sheet1" in v.message


@needs_shared
def test_cwt_truncated_file_refused(tmp_path: Path) -> None:
    data = OCTOBER.read_bytes()
    path = tmp_path / "CWT-CRS-Oct-2023-Data-Extract-Provider.xlsx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ContractError) as err:
        CancerWaitingTimesAdapter().read(path)
    (v,) = err.value.violations
    assert v.rule == "unreadable_workbook" and v.file == path.name


def test_cwt_file_cut_short_of_a_standard_refused(tmp_path: Path) -> None:
    path = _small_extract(tmp_path / "short.xlsx")
    book = load_workbook(path)
    book[SHEET].delete_rows(5)  # the only 62-day row
    book.save(path)
    with pytest.raises(ContractError) as err:
        CancerWaitingTimesAdapter().read(path)
    (v,) = err.value.violations
    assert v.rule == "all_standards_each_month" and "62-day Combined" in v.message
    assert v.file == f"short.xlsx [sheet '{SHEET}']"


def test_cwt_counts_must_add_up(tmp_path: Path) -> None:
    path = _small_extract(tmp_path / "sum.xlsx")
    book = load_workbook(path)
    book[SHEET]["K2"] = 4  # breaches 4: 7 + 4 != 10
    book.save(path)
    with pytest.raises(ContractError) as err:
        CancerWaitingTimesAdapter().read(path)
    (v,) = err.value.violations
    assert (v.rule, v.column, v.rows) == ("total_is_within_plus_breaches", "TOTAL TREATED", (1,))


# -- KH03 ------------------------------------------------------------------------------------------


def test_kh03_quarter_labels_are_financial_quarters() -> None:
    assert quarter_from_label("2019-20 Q3") == (
        pd.Timestamp("2019-10-01"),
        pd.Timestamp("2019-12-31"),
    )
    assert quarter_from_label("2021-22 Q4") == (
        pd.Timestamp("2022-01-01"),
        pd.Timestamp("2022-03-31"),
    )
    assert quarter_from_label("2010-11 Q1") == (
        pd.Timestamp("2010-04-01"),
        pd.Timestamp("2010-06-30"),
    )


@pytest.fixture(scope="module")
def kh03() -> pd.DataFrame:
    if not KH03.is_file():
        pytest.skip(f"the real publisher files are not present ({SHARED})")
    return Kh03Adapter().read(KH03)


@needs_shared
def test_kh03_england_2019_20_q3(kh03: pd.DataFrame) -> None:
    q = kh03[kh03["quarter"] == "2019-20 Q3"]
    assert round(q["available"].sum()) == 101_598
    assert round(100 * q["occupied"].sum() / q["available"].sum(), 1) == 92.0
    assert (q["period_start"] == pd.Timestamp("2019-10-01")).all()


@needs_shared
def test_kh03_q4_dates_from_the_label(kh03: pd.DataFrame) -> None:
    q4 = kh03[kh03["quarter"] == "2021-22 Q4"]
    assert (q4["period_start"] == pd.Timestamp("2022-01-01")).all()
    assert kh03["period_end"].max() == pd.Timestamp("2022-03-31")
    # calendar 2022Q1 is financial 2021-22 Q4: bed-days, and the rule at 90%
    result = Kh03Adapter().to_indicators(kh03, Quarter.parse("2022Q1"), None)
    occ = result.indicators[result.indicators["indicator_id"] == "bed_occupancy"]
    r0a = q4[q4["org_code"] == "R0A"].iloc[0]
    row = occ[occ["trust_code"] == "R0A"].iloc[0]
    assert row["denominator"] == pytest.approx(r0a["available"] * 90)
    assert row["value"] == pytest.approx(r0a["occupied"] / r0a["available"])
    rule = result.indicators[result.indicators["indicator_id"] == "bed_occupancy_over_90"]
    expect = (q4.set_index("org_code")["occupied"] / q4.set_index("org_code")["available"]) > 0.9
    got = rule.set_index("trust_code")["numerator"].astype(bool)
    assert got.sort_index().tolist() == expect[expect.index.isin(got.index)].sort_index().tolist()


def test_kh03_renamed_column_and_bad_dates_refused(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "quarter": ["2019-20 Q3", "2019-20 Q4", "2019-20 Q2"],
            "period_start": ["2019-10-01", "2019-01-01", "2019-04-01"],
            "period_end": ["2019-12-31", "2019-03-31", "2019-06-30"],
            "org_code": ["RXX"] * 3,
            "org_name": ["X"] * 3,
            "specialty_group": ["general_and_acute"] * 3,
            "available_total": [100.0] * 3,
            "occupied_total": [90.0] * 3,
        }
    )
    renamed = tmp_path / "kh03.parquet"
    frame.rename(columns={"occupied_total": "occupied_beds"}).to_parquet(renamed)
    with pytest.raises(ContractError) as err:
        Kh03Adapter().read(renamed)
    (v,) = err.value.violations
    assert (v.file, v.rule, v.column) == ("kh03.parquet", "required_column", "occupied_total")
    frame.to_parquet(renamed)
    with pytest.raises(ContractError) as err:
        Kh03Adapter().read(renamed)
    (v,) = err.value.violations  # the Q4 row's one-year-early dates are the known fault, handled
    assert (v.rule, v.rows) == ("period_matches_label", (3,))


# -- NHS Staff Survey --------------------------------------------------------------------------------


@needs_shared
def test_staff_survey_2022_used_for_2023q3_with_binomial_se() -> None:
    adapter = StaffSurveyAdapter()
    feed = adapter.read(SURVEY)
    result = adapter.to_indicators(feed, Quarter.parse("2023Q3"), None)
    ind = result.indicators
    assert set(ind["indicator_id"]) == {"ss_bullying", "ss_discrimination"}
    assert (ind["period_start"] == pd.Timestamp("2022-10-01")).all()
    raw = pd.read_csv(SURVEY, encoding="latin-1", dtype=str)
    r = raw[raw["Year"] == "2022"].set_index("ODS code")
    code = ind["trust_code"].iloc[0]
    base = float(r.loc[code, "Emotional_colleagues_base"])
    rate = float(r.loc[code, "Emotional_colleagues_rate"])
    row = ind[(ind["indicator_id"] == "ss_bullying") & (ind["trust_code"] == code)].iloc[0]
    assert row["value"] == pytest.approx(rate)
    assert row["numerator"] == pytest.approx(base * rate / 100)
    assert row["standard_error"] == pytest.approx(
        100 * np.sqrt(rate / 100 * (1 - rate / 100) / base)
    )
    assert any("weighted" in n for n in result.notes)
    # 2023Q4: the 2023 survey is unpublished and the 2022 fieldwork is outside the look-back
    late = adapter.to_indicators(feed, Quarter.parse("2023Q4"), None)
    assert set(late.unavailable) == {"ss_bullying", "ss_discrimination"}
    assert adapter.current_through(pd.Timestamp("2022-12-31")) == pd.Timestamp("2023-09-30")


@needs_shared
def test_staff_survey_pooled_acute_work_stress() -> None:
    raw = pd.read_csv(SURVEY, encoding="latin-1", dtype=str)
    acute = raw[raw["Benchmarking group"] == "Acute and Acute & Community Trusts"]
    pooled = {}
    for year in ("2021", "2024"):
        y = acute[acute["Year"] == year]
        base, rate = y["Stress_base"].astype(float), y["Stress_rate"].astype(float)
        pooled[year] = round((base * rate).sum() / base.sum(), 1)
    assert pooled == {"2021": 47.1, "2024": 41.7}  # the README's check figures


def _survey_file(path: Path, header_fix: dict[str, str] | None = None) -> Path:
    frame = pd.DataFrame(
        {
            "ODS code": ["RXX", "RYY"],
            "Year": ["2022", "2022"],
            "Organisation name": ["Hôpital Général", "Saint-Étienne"],
            "Weighting": ["Occupation Group", "Unweighted"],
            "Discrimination_internal_base": ["100", "50"],
            "Discrimination_internal_rate": ["10", "4"],
            "Emotional_colleagues_base": ["100", "50"],
            "Emotional_colleagues_rate": ["12.5", ""],
        }
    ).rename(columns=header_fix or {})
    frame.to_csv(path, index=False, encoding="latin-1")
    return path


def test_staff_survey_reads_latin1_and_refuses_a_renamed_header(tmp_path: Path) -> None:
    path = _survey_file(tmp_path / "staff_survey.csv")
    assert b"H\xf4pital" in path.read_bytes()  # latin-1 on disk, not UTF-8
    feed = StaffSurveyAdapter().read(path)
    assert np.isnan(feed.loc[feed["org_code"] == "RYY", "Emotional_colleagues_rate"].iloc[0])
    result = StaffSurveyAdapter().to_indicators(feed, Quarter.parse("2023Q3"), None)
    bullying = result.indicators[result.indicators["indicator_id"] == "ss_bullying"]
    assert bullying["trust_code"].tolist() == ["RXX"]  # the blank rate is not reported
    bad = _survey_file(
        tmp_path / "bad.csv", {"Emotional_colleagues_base": "Emotional colleagues base"}
    )
    with pytest.raises(ContractError) as err:
        StaffSurveyAdapter().read(bad)
    (v,) = err.value.violations
    assert (v.file, v.rule, v.column) == ("bad.csv", "required_column", "Emotional_colleagues_base")
