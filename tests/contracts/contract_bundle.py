"""A small valid bundle for quarter 2013Q3 (text frames, as a CSV reader sees them) and helpers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from surveillance.periods import Quarter

QUARTER = Quarter.parse("2013Q3")  # July to September 2013; 12-month look-back from 2012-10-01
TRUSTS = ("RA1", "RA2", "RB3")
MONTHS = QUARTER.lookback_months(12)


def _month_end(month: str) -> str:
    return str((pd.Timestamp(month + "-01") + pd.offsets.MonthEnd(0)).date())


def valid_frames() -> dict[str, pd.DataFrame]:
    """Every table of a valid bundle, all cells as text."""
    trusts = pd.DataFrame(
        {
            "trust_code": list(TRUSTS),
            "trust_name": ["Alpha Hospitals NHS Trust", "NA Valley NHS FT", "Cardio Specialist FT"],
            "region": ["London", "North", "Midlands"],
            "trust_type": ["acute", "acute", "acute_specialist"],
            "foundation_trust": ["false", "true", "true"],
            "special_measures": ["false", "false", "true"],
            "last_inspection_date": ["2012-05-14", "", "2013-02-01"],
            "last_rating": ["Good", "", "Inadequate"],
        }
    )
    rows = []

    def add(trust, ind, start, end, numerator="", denominator="", value="", se="", band=""):
        rows.append([trust, ind, start, end, numerator, denominator, value, se, band])

    for t in TRUSTS:
        add(t, "wait_ae_4h", "2013-07-01", "2013-09-30", "412", "9020")  # proportion, quarterly
        add(t, "readm_emergency_30d", "2012-10-01", "2013-09-30", "1210", "1155.4")  # ratio
        add(t, "hcai_cdiff_rate", "2012-10-01", "2013-09-30", "21", "140500")  # rate
        add(t, "never_events", "2012-10-01", "2013-09-30", "0", "61000")  # count
        add(t, "ss_engagement", "2012-10-01", "2013-09-30", value="3.71", se="0.03")  # score
        add(t, "mort_shmi_band", "2012-10-01", "2013-09-30", band="2")  # external_band
        add(t, "cas_alerts_overdue", "2013-07-01", "2013-09-30", "0")  # rule
        for m in MONTHS:  # cusum_z series: proportion and score
            add(t, "wait_ae_4h_cusum", m + "-01", _month_end(m), "130", "3000")
            add(t, "fft_inpatient_cusum", m + "-01", _month_end(m), value="71.5", se="2.4")
    indicators = pd.DataFrame(
        rows,
        columns=[
            "trust_code",
            "indicator_id",
            "period_start",
            "period_end",
            "numerator",
            "denominator",
            "value",
            "standard_error",
            "band",
        ],
    )
    spells = pd.DataFrame(
        {
            "spell_id": ["S0001", "S0002", "S0003", "S0004", "S0005", "S0006"],
            "trust_code": ["RA1", "RA1", "RA2", "RA2", "RB3", "RB3"],
            "admission_date": [
                "2010-10-01",
                "2012-01-05",
                "2013-03-02",
                "2013-09-01",
                "2011-07-30",
                "2013-09-29",
            ],
            "discharge_date": [
                "2010-10-09",
                "2012-01-05",
                "2013-03-20",
                "2013-09-30",
                "2011-08-02",
                "2013-09-30",
            ],
            "diagnosis_group": ["AMI", "COPD", "STROKE", "AMI", "CABG", "AMI"],
            "age": ["74", "0", "88", "120", "61", "45"],
            "sex": ["M", "F", "F", "M", "M", "F"],
            "admission_method": [
                "emergency",
                "elective",
                "emergency",
                "emergency",
                "elective",
                "emergency",
            ],
            "comorbidity": ["2", "0", "5", "1", "3", "0"],
            "deprivation_quintile": ["3", "", "5", "1", "2", "4"],
            "palliative_care": ["false", "false", "true", "false", "false", "false"],
            "died_in_hospital": ["false", "false", "true", "false", "false", "false"],
            "died_30d": ["false", "false", "true", "true", "false", "false"],
        }
    )
    staffing_rows = []
    for m in MONTHS[-3:]:
        for group in ("registered_nurse", "care_staff"):
            for shift in ("day", "night"):
                staffing_rows.append(["RA1", "W01", m, group, shift, "1200.5", "1104.0"])
    staffing_rows.append(["RA2", "W01", MONTHS[0], "registered_nurse", "day", "900", "0"])
    staffing = pd.DataFrame(
        staffing_rows,
        columns=[
            "trust_code",
            "ward_code",
            "month",
            "staff_group",
            "shift",
            "planned_hours",
            "actual_hours",
        ],
    )
    intelligence = pd.DataFrame(
        {
            "trust_code": ["RA1", "RA2", "RA2"],
            "received_date": ["2013-08-14", "2012-11-02", "2013-09-30"],
            "source": ["whistleblowing", "complaint", "qsg_concern"],
            "category": ["staffing", "", "governance"],
            "severity": ["other", "death", "serious_injury"],
            "validated": ["true", "false", "1"],
        }
    )
    inspections = pd.DataFrame(
        {
            "trust_code": ["RA1", "RB3", "RB3"],
            "inspection_date": ["2012-05-14", "2011-06-01", "2013-02-01"],
            "overall_rating": ["Good", "Requires improvement", "Inadequate"],
        }
    )
    return {
        "trusts": trusts,
        "indicators": indicators,
        "spells": spells,
        "staffing": staffing,
        "intelligence": intelligence,
        "inspections": inspections,
    }


def write_bundle(
    directory: Path, frames: dict[str, pd.DataFrame], parquet: tuple[str, ...] = ()
) -> Path:
    """Write ``frames`` as CSV (or Parquet for the names in ``parquet``) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        if frame is None:
            continue
        if name in parquet:
            frame.to_parquet(directory / f"{name}.parquet", index=False)
        else:
            frame.to_csv(directory / f"{name}.csv", index=False)
    return directory
