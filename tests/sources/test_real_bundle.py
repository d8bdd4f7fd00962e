"""Real trusts from the ODS extract and a real-data bundle assembled from the shipped files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from surveillance.catalogue import load_catalogue
from surveillance.errors import ContractError
from surveillance.periods import Quarter
from surveillance.sources import assemble
from surveillance.sources.real import (
    RealTrustsConfig,
    assemble_bundle,
    read_ods,
    real_trusts,
)

SHIPPED = Path(__file__).resolve().parents[2] / "surveillance" / "sources" / "data"


def _ods_file(path: Path, rows: list[tuple[str, str, str, str, str]]) -> Path:
    """An etr-layout file (no header, 24 columns): code, name, grouping, open, close."""
    lines = []
    for code, name, grouping, opened, closed in rows:
        cells = [code, name, grouping, "Q71", "ADDR", "", "", "TOWN", "", "AB1 2CD", opened, closed]
        lines.append(",".join(cells + [""] * 12))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_real_trusts_rule(tmp_path: Path) -> None:
    ods = read_ods(
        _ods_file(
            tmp_path / "etr.csv",
            [
                ("RAA", "ALPHA HOSPITALS NHS FOUNDATION TRUST", "Y56", "20000401", ""),
                ("RBB", "BETA NHS TRUST", "Y54", "20000401", "20150930"),  # closed
                ("RCC", "GAMMA CANCER CENTRE NHS FOUNDATION TRUST", "Y55", "20000401", ""),
                ("RDD", "DELTA HEALTH BOARD", "W00", "20000401", ""),  # Wales
                ("REE", "EPSILON COMMUNITY NHS TRUST", "Y57", "20000401", ""),  # not acute
                ("RFF", "ZETA NHS TRUST", "Y57", "20240401", ""),  # opens after 2023Q3
                ("RGG", "ETA NHS TRUST", "Y57", "20000401", ""),  # not in the quarter's feeds
            ],
        )
    )
    config = RealTrustsConfig(
        regions={"Y54": "North", "Y55": "Midlands", "Y56": "London", "Y57": "South"},
        acute_specialist={"RCC": "Gamma"},
    )
    trusts = real_trusts(
        ods,
        Quarter.parse("2023Q3"),
        type1_codes={"RAA", "RBB", "RDD", "RFF", "RGG"},
        active_codes={"RAA", "RBB", "RCC", "RDD", "REE", "RFF"},
        config=config,
    )
    assert trusts.to_dict("records") == [
        {
            "trust_code": "RAA",
            "trust_name": "ALPHA HOSPITALS NHS FOUNDATION TRUST",
            "region": "London",
            "trust_type": "acute",
            "foundation_trust": True,
            "special_measures": False,
            "last_inspection_date": "",
            "last_rating": "",
        },
        {
            "trust_code": "RCC",
            "trust_name": "GAMMA CANCER CENTRE NHS FOUNDATION TRUST",
            "region": "Midlands",
            "trust_type": "acute_specialist",
            "foundation_trust": True,
            "special_measures": False,
            "last_inspection_date": "",
            "last_rating": "",
        },
    ]


def test_read_ods_refuses_a_bad_date(tmp_path: Path) -> None:
    path = _ods_file(tmp_path / "etr.csv", [("RAA", "A", "Y56", "2000-04-01", "")])
    with pytest.raises(ContractError) as err:
        read_ods(path)
    (v,) = err.value.violations
    assert (v.file, v.rule, v.column, v.rows) == ("etr.csv", "yyyymmdd", "10", (1,))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory):
    return assemble_bundle(SHIPPED, "2023Q3", tmp_path_factory.mktemp("real") / "bundle")


@pytest.mark.slow  # reads the 2.9 MB of CWT xlsx twice: ~25 s on the shared machine
def test_bundle_from_the_shipped_files(bundle) -> None:
    out = bundle.directory
    trusts = pd.read_csv(out / "trusts.csv", dtype=str, keep_default_na=False)
    ods = pd.read_csv(SHIPPED / "nhs_trusts_ods_etr.csv", header=None, dtype=str)
    assert set(trusts["trust_code"]) <= set(ods[0])
    assert trusts["trust_code"].is_unique and len(trusts) == 130
    assert trusts["trust_type"].value_counts().to_dict() == {"acute": 115, "acute_specialist": 15}
    assert set(trusts["region"]) == {
        "London",
        "Midlands and East of England",
        "North of England",
        "South of England",
    }
    assert bundle.absent == ["staff_survey"]
    assert sorted(p.name for p in (out / "feeds" / "cancer_waiting_times").iterdir()) == [
        "CWT-CRS-Apr-2023-to-Sep-2023-Data-Extract-Provider-Provisional.xlsx",
        "CWT-CRS-Oct-2023-Data-Extract-Provider.xlsx",
    ]
    shipped = SHIPPED / "kh03" / "kh03.parquet"
    assert (out / "feeds" / "kh03.parquet").read_bytes() == shipped.read_bytes()  # unchanged


@pytest.mark.slow  # reads the 2.9 MB of CWT xlsx twice: ~25 s on the shared machine
def test_assembly_of_the_real_bundle(bundle) -> None:
    out = bundle.directory
    trusts = pd.read_csv(out / "trusts.csv", dtype=str)
    catalogue = load_catalogue()
    a = assemble(out / "feeds", catalogue, "2023Q3", trust_codes=trusts["trust_code"])
    by_id = {i: s for s in a.sources for i in s.indicator_ids}
    for ind in ("wait_cancer_28d_fds", "wait_cancer_31d", "wait_cancer_62d"):
        assert by_id[ind].status == "ok"
        assert by_id[ind].provisional == "2023-07, 2023-08, 2023-09"
        assert by_id[ind].file == "feeds/cancer_waiting_times/"
    for ind in ("bed_occupancy", "bed_occupancy_over_90"):
        assert (by_id[ind].status, by_id[ind].latest_period) == ("late", "2022-03")
    assert (by_id["wait_ae_4h"].status, by_id["wait_ae_4h"].latest_period) == ("late", "2019-03")
    assert by_id["ss_bullying"].status == "missing"  # the survey is not shipped
    assert by_id["wait_cancer_2ww"].status == "missing"  # not in the CWT CRS extracts
    # every catalogue indicator has a status: none is silently absent
    assert set(by_id) == set(catalogue.index)
    assert set(a.indicators["trust_code"]) <= set(trusts["trust_code"])
    assert set(a.feed_files) == {
        "feeds/ae_attendances.csv",
        "feeds/cancer_waiting_times/CWT-CRS-Apr-2023-to-Sep-2023-Data-Extract-Provider-Provisional.xlsx",
        "feeds/cancer_waiting_times/CWT-CRS-Oct-2023-Data-Extract-Provider.xlsx",
        "feeds/kh03.parquet",
    }


def test_a_refused_feed_writes_no_bundle(tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    (sources / "cancer_waiting_times").mkdir(parents=True)
    shutil.copyfile(SHIPPED / "nhs_trusts_ods_etr.csv", sources / "nhs_trusts_ods_etr.csv")
    good = SHIPPED / "cancer_waiting_times" / "CWT-CRS-Oct-2023-Data-Extract-Provider.xlsx"
    data = good.read_bytes()
    (sources / "cancer_waiting_times" / good.name).write_bytes(data[: len(data) // 3])
    with pytest.raises(ContractError) as err:
        assemble_bundle(sources, "2023Q3", tmp_path / "bundle")
    assert err.value.violations[0].rule == "unreadable_workbook"
    assert err.value.violations[0].file == good.name
    assert not (tmp_path / "bundle").exists()


def test_cli_assemble_refuses_plainly(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from surveillance.cli import app

    (tmp_path / "sources").mkdir()
    result = CliRunner().invoke(
        app,
        [
            "assemble",
            "--sources",
            str(tmp_path / "sources"),
            "--quarter",
            "2023Q3",
            "--out",
            str(tmp_path / "b"),
        ],
    )
    assert result.exit_code == 1
    assert "nhs_trusts_ods_etr.csv: [missing_file]" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "b").exists()
