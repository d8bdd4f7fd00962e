"""Input notes reach the run's record (issue 17, item 3): what the reader converted, normalised or
does not know is in ``manifest.json`` (``input_notes``) and in the run summary; a bundle that needs
no note publishes the same manifest as before (no ``input_notes`` key)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rel_common import QUARTER, run_options

from surveillance import pipeline


def test_a_bundle_needing_no_note_has_no_input_notes_key(published) -> None:
    manifest = json.loads((published["b"] / QUARTER / "manifest.json").read_text())
    assert "input_notes" not in manifest
    assert pipeline.summarise(published["b"] / QUARTER).input_notes == []


def test_notes_in_manifest_and_summary(hostile_bundle, tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    shutil.copytree(hostile_bundle, data)
    trusts = pd.read_csv(data / "trusts.csv", dtype=str, keep_default_na=False)
    region = "Testshire and Wold"
    trusts.loc[[8, 9], "region"] = region  # the usual spelling: two trusts
    trusts.loc[10, "region"] = f" {region.upper()} "  # the same region spelled another way
    trusts.to_csv(data / "trusts.csv", index=False, lineterminator="\n")
    spells = pq.read_table(data / "spells.parquet")
    groups = spells.column("diagnosis_group").to_pylist()
    groups[0] = "Not a diagnosis group"
    index = spells.schema.get_field_index("diagnosis_group")
    spells = spells.set_column(index, "diagnosis_group", pa.array(groups))
    pq.write_table(spells, data / "spells.parquet")

    summary = pipeline.run_quarter(run_options(data, out, render_reports=False))
    manifest = json.loads((out / QUARTER / "manifest.json").read_text())
    notes = {(n["file"], n["column"], n["note"]): n for n in manifest["input_notes"]}
    assert set(notes) == {
        ("trusts.csv", "region", "normalised"),
        ("spells.parquet", "diagnosis_group", "unknown_value"),
    }
    assert notes[("trusts.csv", "region", "normalised")]["rows"] == 1
    assert f"read as {region!r}" in notes[("trusts.csv", "region", "normalised")]["message"]
    unknown = notes[("spells.parquet", "diagnosis_group", "unknown_value")]
    assert "'Not a diagnosis group' 1 spell(s)" in unknown["message"] and unknown["rows"] == 1
    bands = pd.read_csv(out / QUARTER / "bands.csv", dtype=str, keep_default_na=False)
    assert f" {region.upper()} " not in set(bands["region"])  # one region, not two
    assert len(summary.input_notes) == 2
    assert any("[unknown_value]" in line for line in summary.input_notes)


def test_monthly_run_names_groups_the_saved_model_never_saw(
    published, hostile_bundle, tmp_path: Path
) -> None:
    """Between quarters the charts use the quarter's saved model: a group it never saw gets the
    national crude rate, which the monthly manifest now says (name and spell count)."""
    out, data = tmp_path / "out", tmp_path / "data"
    shutil.copytree(published["b"], out)
    shutil.copytree(hostile_bundle, data)
    model = pipeline.latest_risk_model(out, "2013-10")
    assert pipeline.unseen_group_notes(data, model) == []  # the quarter's own spells: all seen
    empty = pd.DataFrame(columns=pipeline.ALERTS_COLUMNS)
    run = pipeline.publish_month(out, "2013-10", empty, data, model)
    assert "input_notes" not in json.loads((run / "manifest.json").read_text())

    spells = pq.read_table(data / "spells.parquet")
    groups = spells.column("diagnosis_group").to_pylist()
    groups[:3] = ["Brand new group"] * 3
    index = spells.schema.get_field_index("diagnosis_group")
    pq.write_table(
        spells.set_column(index, "diagnosis_group", pa.array(groups)), data / "spells.parquet"
    )
    run = pipeline.publish_month(out, "2013-10", empty, data, model, force=True)
    (note,) = json.loads((run / "manifest.json").read_text())["input_notes"]
    assert (note["file"], note["column"], note["note"], note["rows"]) == (
        "spells.parquet",
        "diagnosis_group",
        "unknown_value",
        3,
    )
    assert "'Brand new group' 3 spell(s)" in note["message"]
    assert "national crude rate" in note["message"]
