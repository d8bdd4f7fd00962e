"""Every run folder describes itself (issue 16): README.md and data_dictionary.csv written by the
run, every column of every published CSV in the dictionary, names in flags.csv, no inf anywhere,
and the minimum-expected caution on alerts."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from surveillance import pipeline
from surveillance.catalogue import load_catalogue
from surveillance.output_contracts import (
    DICTIONARY_COLUMNS,
    PUBLISHED_COLUMNS,
    OutputContractError,
    blank_infinities,
    data_dictionary,
)

QUARTER = "2013Q3"
N_TRUSTS = 12
CODE = {"package": "test", "git_commit": None, "source_sha256": "run-folder-tests"}
_INF = re.compile(r"(^|,)[+-]?inf(inity)?(,|$)", re.IGNORECASE | re.MULTILINE)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A published run of 12 trusts of the synthetic test nation (with spells, no MLflow)."""
    import pyarrow.parquet as pq

    from surveillance.synth.build import synthesise

    root = tmp_path_factory.mktemp("nation")
    synthesise(root, seed=2013, scale="test", quarter=QUARTER, quarters=1)
    source = root / QUARTER
    trusts = pd.read_csv(source / "trusts.csv", dtype=str, keep_default_na=False)
    codes = set(sorted(trusts["trust_code"])[:N_TRUSTS])
    data = tmp_path_factory.mktemp("bundle")
    for path in sorted(source.iterdir()):
        if path.suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            frame[frame["trust_code"].isin(codes)].to_csv(
                data / path.name, index=False, lineterminator="\n"
            )
        elif path.suffix == ".parquet":
            table = pq.read_table(path)
            keep = table.column("trust_code").to_pandas().astype(str).isin(codes).to_numpy()
            pq.write_table(table.filter(keep), data / path.name)
    out = tmp_path_factory.mktemp("out")
    options = pipeline.RunOptions(
        data_dir=data, quarter=QUARTER, out=out, code=CODE, mlflow=False, render_reports=False
    )
    return pipeline.run_quarter(options).run_dir


def test_every_published_column_is_in_the_dictionary(run_dir: Path):
    dictionary = pd.read_csv(run_dir / "data_dictionary.csv", dtype=str, keep_default_na=False)
    assert list(dictionary.columns) == DICTIONARY_COLUMNS
    listed = set(zip(dictionary["file"], dictionary["column"], strict=True))
    csvs = sorted(run_dir.glob("*.csv"))
    assert {p.name for p in csvs} >= {"flags.csv", "alerts.csv", "mortality.csv", "bands.csv"}
    for path in csvs:
        for column in pd.read_csv(path, nrows=0).columns:
            assert (path.name, column) in listed, (path.name, column)
    # nothing listed that the run did not publish, and every entry is filled in
    published = {(p.name, c) for p in csvs for c in pd.read_csv(p, nrows=0).columns}
    assert listed == published
    assert (dictionary["meaning"] != "").all() and (dictionary["type"] != "").all()
    small = dictionary[dictionary["may_hold_small_numbers"] == "True"]
    assert ("mortality.csv", "observed") in set(zip(small["file"], small["column"], strict=True))
    assert ("bands.csv", "score") not in set(zip(small["file"], small["column"], strict=True))


def test_readme_says_the_analytic_csvs_are_restricted(run_dir: Path):
    text = (run_dir / "README.md").read_text(encoding="utf-8")
    assert "Restricted: the analytic CSVs hold small numbers" in text
    assert "counts of 1 to 4 patients" in text
    manifest = pd.read_json(run_dir / "manifest.json", typ="series")
    assert f"Run id `{manifest['run_id']}`" in text
    for path in sorted(run_dir.glob("*.csv")):
        rows = len(pd.read_csv(path, dtype=str))
        assert f"| `{path.name}` | {rows} |" in text, path.name
    # the manifest hashes both (they are part of the run)
    outputs = manifest["outputs"]
    assert "README.md" in outputs and "data_dictionary.csv" in outputs


def test_no_csv_holds_inf(run_dir: Path):
    for path in sorted(run_dir.glob("*.csv")):
        assert not _INF.search(path.read_text(encoding="utf-8")), path.name
    mortality = pd.read_csv(run_dir / "mortality.csv", keep_default_na=False, dtype=str)
    noted = mortality[mortality["infinite_note"] != ""]
    # an infinite upper limit is an empty cell with its reason
    for _, row in noted.iterrows():
        for part in row["infinite_note"].split("; "):
            column = part.split(" ")[0]
            assert row[column] == "", (row["trust_code"], column)
            assert "infinite" in part


def test_flags_carry_trust_and_indicator_names(run_dir: Path):
    flags = pd.read_csv(run_dir / "flags.csv", dtype=str, keep_default_na=False)
    bands = pd.read_csv(run_dir / "bands.csv", dtype=str, keep_default_na=False)
    names = dict(zip(bands["trust_code"], bands["trust_name"], strict=True))
    assert (flags["trust_name"] == flags["trust_code"].map(names)).all()
    catalogue = load_catalogue()
    assert (flags["indicator_name"] == flags["indicator_id"].map(catalogue["name"])).all()
    # added after the DESIGN columns, which keep their names and order
    n = len(pipeline.FLAGS_COLUMNS)
    assert list(flags.columns[:n]) == pipeline.FLAGS_COLUMNS
    assert list(flags.columns[n : n + 3]) == ["trust_name", "indicator_name", "infinite_note"]


def test_alert_caution_follows_the_minimum_expected(run_dir: Path):
    alerts = pd.read_csv(run_dir / "alerts.csv", keep_default_na=False)
    n = len(pipeline.ALERTS_COLUMNS)
    assert list(alerts.columns[: n + 1]) == [*pipeline.ALERTS_COLUMNS, "caution"]
    expected = alerts["expected"].astype(float)
    assert ((alerts["caution"] != "") == (expected < 1.0)).all()


def test_undocumented_column_is_refused():
    with pytest.raises(OutputContractError, match="undocumented_column"):
        data_dictionary({"flags.csv": ["trust_code", "surprise"]})
    table = data_dictionary({"bands.csv": ["trust_code", "band"]})
    assert table[["file", "column"]].values.tolist() == [
        ["bands.csv", "trust_code"],
        ["bands.csv", "band"],
    ]
    # every documented file names each column once
    for file, docs in PUBLISHED_COLUMNS.items():
        names = [d.column for d in docs]
        assert len(names) == len(set(names)), file


def test_blank_infinities_writes_empty_cells_with_a_reason():
    frame = pd.DataFrame(
        {"upper998": [1.5, np.inf, np.inf], "z": [0.1, 2.0, -np.inf], "name": ["a", "b", "c"]}
    )
    out = blank_infinities(frame)
    assert out["upper998"].isna().tolist() == [False, True, True]
    assert out["z"].isna().tolist() == [False, False, True]
    assert out["infinite_note"].tolist() == [
        "",
        "upper998 +infinite (expected deaths too few for a finite funnel limit)",
        "upper998 +infinite (expected deaths too few for a finite funnel limit); "
        "z -infinite (zero events on a log scale)",
    ]
    assert np.isinf(frame["upper998"]).sum() == 2  # the input is left alone
