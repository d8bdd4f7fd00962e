"""Pipeline stages called directly (no Prefect): quarantine, missing sources in flags."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from surveillance import pipeline
from surveillance.catalogue import load_catalogue
from surveillance.errors import ContractError


@pytest.fixture(scope="module")
def catalogue() -> pd.DataFrame:
    return load_catalogue()


@pytest.fixture
def broken_bundle(small_bundles, tmp_path) -> tuple[Path, int]:
    """The 2013Q2 bundle with one proportion row given a negative numerator (data row k)."""
    data = tmp_path / "data"
    shutil.copytree(small_bundles["2013Q2"], data)
    frame = pd.read_csv(data / "indicators.csv", dtype=str, keep_default_na=False)
    cat = load_catalogue()
    proportion = frame["indicator_id"].map(cat["type"]) == "proportion"
    k = int(proportion.to_numpy().nonzero()[0][3])
    frame.loc[k, "numerator"] = "-5"
    frame.to_csv(data / "indicators.csv", index=False, lineterminator="\n")
    return data, k + 1


def test_bad_row_stops_the_run_naming_it(broken_bundle, catalogue) -> None:
    data, row = broken_bundle
    bundle = pipeline.load(data)
    assembly = pipeline.assemble_sources(bundle, catalogue, "2013Q2")
    with pytest.raises(ContractError) as info:
        pipeline.validate(bundle, assembly, catalogue, "2013Q2", quarantine=False)
    hits = [v for v in info.value.violations if v.file == "indicators.csv" and row in v.rows]
    assert hits and hits[0].column == "numerator"


def test_quarantine_sets_bad_rows_aside(broken_bundle, catalogue) -> None:
    data, row = broken_bundle
    bundle = pipeline.load(data)
    assembly = pipeline.assemble_sources(bundle, catalogue, "2013Q2")
    validated = pipeline.validate(bundle, assembly, catalogue, "2013Q2", quarantine=True)
    q = validated.quarantine
    assert (q["file"] == "indicators.csv").all()
    assert row in set(q["row"])
    assert "numerator" in set(q["column"])
    original = bundle.indicators
    kept = validated.bundle.indicators
    assert len(kept) == len(original) - q["row"].nunique()
    dropped = original.iloc[row - 1]
    same = (kept["trust_code"] == dropped["trust_code"]) & (
        kept["indicator_id"] == dropped["indicator_id"]
    )
    assert not same.any()


def test_unavailable_source_reason_reaches_flags(small_bundles, catalogue) -> None:
    flags = pd.DataFrame(
        {
            "trust_code": ["RA", "RA", "RB"],
            "indicator_id": ["wait_ae_4h", "mort_ratio_all", "wait_ae_4h"],
            "flag": ["risk", "no_evidence", "not_applicable"],
            "z": [2.5, 0.1, None],
            "reason": ["", "", "does not apply to specialist trusts"],
        }
    )
    out = pipeline.explain_unavailable(
        flags, {"wait_ae_4h": "NHS England A&E: ae_attendances.csv ends 2019-03"}
    )
    assert out["flag"].tolist() == ["not_applicable", "no_evidence", "not_applicable"]
    assert pd.isna(out.loc[0, "z"])
    assert (
        out.loc[0, "reason"]
        == "source unavailable: NHS England A&E: ae_attendances.csv ends 2019-03"
    )
    assert out.loc[2, "reason"] == "does not apply to specialist trusts"


def test_run_id_changes_with_any_input(small_bundles, code_version, tmp_path) -> None:
    data = tmp_path / "data"
    shutil.copytree(small_bundles["2013Q2"], data)
    opts = pipeline.RunOptions(
        data_dir=data, quarter="2013Q2", out=tmp_path / "o", code=code_version
    )
    first = pipeline.fingerprint(opts)
    assert pipeline.fingerprint(opts).run_id == first.run_id
    with (data / "intelligence.csv").open("a") as handle:
        handle.write("\n")
    assert pipeline.fingerprint(opts).run_id != first.run_id
    (data / "feeds").mkdir()
    shutil.copy(
        Path(pipeline.__file__).parent / "sources" / "data" / "ae_attendances.csv",
        data / "feeds" / "ae_attendances.csv",
    )
    with_feed = pipeline.fingerprint(opts)
    assert "feeds/ae_attendances.csv" in with_feed.inputs


def test_missing_source_reaches_flags_sources_and_manifest(
    small_bundles, code_version, tmp_path
) -> None:
    """The real A&E feed cannot give 2013Q2 (it starts 2016-04): its indicators are
    not_applicable with the reason everywhere, and the feed's hash is in the manifest."""
    import json

    from surveillance.manifest import sha256_file

    data = tmp_path / "data"
    shutil.copytree(small_bundles["2013Q2"], data)
    (data / "feeds").mkdir()
    feed = Path(pipeline.__file__).parent / "sources" / "data" / "ae_attendances.csv"
    shutil.copy(feed, data / "feeds" / "ae_attendances.csv")
    options = pipeline.RunOptions(
        data_dir=data,
        quarter="2013Q2",
        out=tmp_path / "out",
        code=code_version,
        mlflow=False,
        render_reports=False,
    )
    run = pipeline.run_quarter(options).run_dir
    flags = pd.read_csv(run / "flags.csv", dtype=str, keep_default_na=False)
    ae = flags[flags["indicator_id"] == "wait_ae_4h"]
    assert len(ae) > 0 and (ae["flag"] == "not_applicable").all()
    in_scope = ae[ae["reason"] != "does not apply to specialist trusts"]
    assert (
        in_scope["reason"]
        .str.startswith("source unavailable: NHS England A&E: feed starts 2016-04")
        .all()
    )
    sources = pd.read_csv(run / "sources.csv", dtype=str, keep_default_na=False)
    row = sources[sources["indicator_id"] == "wait_ae_4h"].iloc[0]
    assert (row["status"], row["file"]) == ("missing", "feeds/ae_attendances.csv")
    assert row["sha256"] == sha256_file(feed)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["inputs"]["feeds/ae_attendances.csv"]["sha256"] == sha256_file(feed)
    assert any(
        m["source"] == "NHS England A&E" and "wait_ae_4h" in m["indicators"].split(", ")
        for m in manifest["missing_sources"]
    )
