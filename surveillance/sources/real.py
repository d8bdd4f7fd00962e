"""A bundle from publishers' real files: real trusts (ODS) and the feeds as released.

:func:`real_trusts` builds ``trusts.csv`` for real acute trusts from the NHS Digital ODS ``etr``
extract with the rule in ``real_trusts.yaml``; :func:`assemble_bundle` lays out a bundle
directory (``trusts.csv``, an ``indicators.csv`` with no pre-assembled rows, and ``feeds/`` with
each publisher's file unchanged) that ``surveillance run`` screens. Every feed is read and
validated by its adapter here first, so a file the service does not recognise is refused
before a bundle is written.

Expected layout of the sources directory (``../shared/data``)::

    nhs_trusts_ods_etr.csv                       ODS etr extract (no header)
    ae_attendances.csv                           NHS England A&E monthly (optional)
    cancer_waiting_times/*Data-Extract-Provider*.xlsx
    kh03/kh03.parquet
    staff_survey/organisational_results_*.csv

References
----------
NHS Digital, Organisation Data Service, "etr" (NHS trusts) extract (Open Government Licence
v3.0). Contains public sector information licensed under the Open Government Licence v3.0.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict

from surveillance.contracts import COLUMN_KINDS, INDICATOR_COLUMNS
from surveillance.errors import ContractError, Violation
from surveillance.periods import Quarter
from surveillance.sources.ae import PACKAGED_FILE as AE_PACKAGED
from surveillance.sources.ae import AeAttendancesAdapter
from surveillance.sources.base import load_yaml_model
from surveillance.sources.cwt import CancerWaitingTimesAdapter
from surveillance.sources.kh03 import Kh03Adapter
from surveillance.sources.staff_survey import StaffSurveyAdapter

CONFIG_FILE = Path(__file__).with_name("real_trusts.yaml")
ODS_FILE = "nhs_trusts_ods_etr.csv"
#: the etr extract's columns used (0-based; the file has no header)
ODS_CODE, ODS_NAME, ODS_GROUPING, ODS_OPEN, ODS_CLOSE = 0, 1, 2, 10, 11
TRUST_COLUMNS = tuple(COLUMN_KINDS["trusts"])  # trusts.csv columns (input contract)


class RealTrustsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    regions: dict[str, str]
    acute_specialist: dict[str, str]


def load_config(path: Path = CONFIG_FILE) -> RealTrustsConfig:
    """``real_trusts.yaml``, validated."""
    return load_yaml_model(path, RealTrustsConfig)


def read_ods(path: Path) -> pd.DataFrame:
    """The ODS etr extract: ``code, name, grouping, open_date, close_date`` (dates or NaT)."""
    path = Path(path)
    raw = pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
    if raw.shape[1] <= ODS_CLOSE:
        raise ContractError(
            [
                Violation(
                    path.name,
                    "etr_layout",
                    f"expected the ODS etr layout (at least {ODS_CLOSE + 1} columns, no header), "
                    f"found {raw.shape[1]} columns",
                )
            ]
        )
    dates = {}
    for label, column in (("open_date", ODS_OPEN), ("close_date", ODS_CLOSE)):
        text = raw[column].str.strip()
        parsed = pd.to_datetime(text.where(text != ""), format="%Y%m%d", errors="coerce")
        bad = (text != "") & parsed.isna()
        if bad.any():
            rows = tuple(int(i) + 1 for i in raw.index[bad])
            raise ContractError(
                [Violation(path.name, "yyyymmdd", f"{label} must be YYYYMMDD", str(column), rows)]
            )
        dates[label] = parsed
    return pd.DataFrame(
        {
            "code": raw[ODS_CODE].str.strip(),
            "name": raw[ODS_NAME].str.strip(),
            "grouping": raw[ODS_GROUPING].str.strip(),
            **dates,
        }
    )


def real_trusts(
    ods: pd.DataFrame,
    quarter: Quarter,
    type1_codes: set[str],
    active_codes: set[str] | None,
    config: RealTrustsConfig | None = None,
) -> pd.DataFrame:
    """``trusts.csv`` rows for the real acute trusts of ``quarter`` (rule in ``real_trusts.yaml``).

    Parameters
    ----------
    ods
        :func:`read_ods` frame.
    quarter
        Trusts must be open at the quarter's end.
    type1_codes
        Trusts with type-1 A&E attendances (general acute trusts).
    active_codes
        Trusts reporting to the quarter's feeds (``None``: no such filter).
    config
        :func:`load_config` (default: the packaged file).

    Returns
    -------
    pandas.DataFrame
        DESIGN.md section 4 ``trusts.csv`` columns, sorted by ``trust_code``. ``foundation_trust``
        is read from the registered name ("NHS FOUNDATION TRUST"); ``special_measures``,
        ``last_inspection_date`` and ``last_rating`` are not in these sources (False / empty).
    """
    config = config or load_config()
    open_ = (ods["open_date"].isna() | (ods["open_date"] <= quarter.end)) & (
        ods["close_date"].isna() | (ods["close_date"] > quarter.end)
    )
    english = ods["grouping"].isin(config.regions)
    specialist = ods["code"].isin(config.acute_specialist)
    acute = ods["code"].isin(type1_codes)
    keep = open_ & english & (acute | specialist)
    if active_codes is not None:
        keep &= ods["code"].isin(active_codes)
    rows = ods[keep]
    out = pd.DataFrame(
        {
            "trust_code": rows["code"],
            "trust_name": rows["name"],
            "region": rows["grouping"].map(config.regions),
            "trust_type": specialist[keep].map({True: "acute_specialist", False: "acute"}),
            "foundation_trust": rows["name"].str.upper().str.contains("NHS FOUNDATION TRUST"),
            "special_measures": False,
            "last_inspection_date": "",
            "last_rating": "",
        }
    )
    return out.sort_values("trust_code", kind="mergesort").reset_index(drop=True)


@dataclass
class RealBundle:
    """What :func:`assemble_bundle` wrote."""

    directory: Path
    trusts: pd.DataFrame
    feeds: dict[str, list[str]] = field(default_factory=dict)  # adapter feed name -> files
    absent: list[str] = field(default_factory=list)  # feeds not found in the sources directory


def _find_sources(sources: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    cwt = sorted((sources / "cancer_waiting_times").glob("*Data-Extract-Provider*.xlsx"))
    if cwt:
        found["cancer_waiting_times"] = cwt
    if (sources / "kh03" / "kh03.parquet").is_file():
        found["kh03"] = [sources / "kh03" / "kh03.parquet"]
    survey = sorted((sources / "staff_survey").glob("organisational_results_*.csv"))
    if survey:
        found["staff_survey"] = survey[-1:]
    if (sources / "ae_attendances.csv").is_file():
        found["ae_attendances"] = [sources / "ae_attendances.csv"]
    return found


def assemble_bundle(sources: Path, quarter: Quarter | str, out: Path) -> RealBundle:
    """Write a bundle for ``quarter`` from the publishers' files in ``sources`` to ``out``.

    Each feed is validated by its adapter before anything is written (a refused file raises
    :class:`ContractError` naming file, sheet and column). Files are copied unchanged.
    """
    q = quarter if isinstance(quarter, Quarter) else Quarter.parse(str(quarter))
    sources, out = Path(sources), Path(out)
    if not (sources / ODS_FILE).is_file():
        raise ContractError([Violation(ODS_FILE, "missing_file", f"not in {sources}")])
    if out.exists() and any(out.iterdir()):
        raise ContractError([Violation(str(out), "not_empty", "the bundle directory must be new")])
    found = _find_sources(sources)
    # read (validate) every feed first: nothing is written for a file that is refused
    cwt = None
    if "cancer_waiting_times" in found:
        cwt = CancerWaitingTimesAdapter().read_files(found["cancer_waiting_times"])
    if "kh03" in found:
        Kh03Adapter().read(found["kh03"][0])
    if "staff_survey" in found:
        StaffSurveyAdapter().read(found["staff_survey"][0])
    ae_path = found.get("ae_attendances", [AE_PACKAGED])[0]
    ae = AeAttendancesAdapter().read(ae_path)
    type1 = set(ae.loc[ae["type"] == "1", "org_code"])
    active = None
    if cwt is not None:
        months = pd.to_datetime([f"{m}-01" for m in q.months()])
        active = set(cwt.loc[cwt["period"].isin(months), "org_code"]) or None
    trusts = real_trusts(read_ods(sources / ODS_FILE), q, type1, active)

    feeds = out / "feeds"
    feeds.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[str]] = {}
    for name, paths in sorted(found.items()):
        if name == "cancer_waiting_times":
            target = feeds / name
            target.mkdir()
            for p in paths:
                shutil.copyfile(p, target / p.name)
            written[name] = [f"feeds/{name}/{p.name}" for p in paths]
        else:
            suffix = paths[0].suffix
            shutil.copyfile(paths[0], feeds / f"{name}{suffix}")
            written[name] = [f"feeds/{name}{suffix}"]
    trusts.to_csv(out / "trusts.csv", index=False, columns=list(TRUST_COLUMNS))
    pd.DataFrame(columns=list(INDICATOR_COLUMNS)).to_csv(out / "indicators.csv", index=False)
    absent = sorted({"cancer_waiting_times", "kh03", "staff_survey", "ae_attendances"} - set(found))
    return RealBundle(out, trusts, written, absent)
