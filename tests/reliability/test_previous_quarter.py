"""No lost input, no stale results (issue 17, item 0), on the plain pipeline (no Prefect).

* ``--out`` may never contain, replace or lie inside ``--data``, whatever the flags (the demo
  layout ``--data data/synth/2013Q3 --out data/synth --force`` used to delete the bundle).
* The run id and the manifest record the previous quarter read: its run id and the sha256 of
  its ``bands.csv`` and ``flags.csv`` (movement and persistence depend on them), and of each
  ``bands.csv`` read for the band history.
* A corrupt previous quarter (binary bytes, a ``bands.csv`` without ``trust_code``, a table that
  differs from its manifest) stops the run with one plain message saying it does not continue.

The Prefect stage cache keyed on the previous quarter is tested in ``tests/flows/test_quarterly.py``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from rel_common import QUARTER, run_options

from surveillance import pipeline, store
from surveillance.manifest import sha256_file

PREVIOUS = "2013Q2"


def _files(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _with_previous(published: dict[str, Path], out: Path) -> Path:
    """``out`` holding a published 2013Q2 (the reference 2013Q3 run's files under that name)."""
    out.mkdir(parents=True)
    shutil.copytree(published["b"] / QUARTER, out / PREVIOUS)
    return out / PREVIOUS


@pytest.mark.parametrize("force", [False, True])
def test_out_holding_the_bundle_is_refused_and_the_bundle_kept(
    hostile_bundle, tmp_path, force
) -> None:
    """``--data X/2013Q3 --out X [--force]``: refused before anything is written."""
    out = tmp_path / "X"
    data = out / QUARTER
    shutil.copytree(hostile_bundle, data)
    before = _files(out)
    with pytest.raises(store.StoreError, match="is inside --out"):
        pipeline.run_quarter(run_options(data, out, force=force))
    assert _files(out) == before  # every input byte still there, nothing added
    assert sorted(p.name for p in out.iterdir()) == [QUARTER]


def test_out_inside_the_bundle_is_refused(hostile_bundle, tmp_path) -> None:
    data = tmp_path / "data"
    shutil.copytree(hostile_bundle, data)
    before = _files(data)
    with pytest.raises(store.StoreError, match="is inside --data"):
        pipeline.run_quarter(run_options(data, data / "out"))
    assert _files(data) == before
    assert not (data / "out").exists()


def test_bundle_deep_inside_out_is_refused(hostile_bundle, tmp_path) -> None:
    data = tmp_path / "out" / "inputs" / "nested"
    shutil.copytree(hostile_bundle, data)
    with pytest.raises(store.StoreError, match="is inside --out"):
        pipeline.run_quarter(run_options(data, tmp_path / "out"))


def test_run_id_and_manifest_record_the_previous_quarter(
    published, hostile_bundle, tmp_path
) -> None:
    """Into an empty --out and into one holding 2013Q2: different run ids, and the manifest says
    which previous quarter was read (run id and hashes), so the two runs can be told apart."""
    previous = _with_previous(published, tmp_path / "out")
    alone = json.loads((published["b"] / QUARTER / "manifest.json").read_text())
    summary = pipeline.run_quarter(run_options(hostile_bundle, tmp_path / "out"))
    manifest = json.loads((summary.run_dir / "manifest.json").read_text())

    assert alone["previous"] == {}
    assert manifest["run_id"] != alone["run_id"]
    assert manifest["inputs"] == alone["inputs"]
    prior_manifest = json.loads((previous / "manifest.json").read_text())
    assert manifest["previous"] == {
        "previous_quarter": {
            "quarter": PREVIOUS,
            "run_id": prior_manifest["run_id"],
            "sha256": {
                "bands.csv": sha256_file(previous / "bands.csv"),
                "flags.csv": sha256_file(previous / "flags.csv"),
            },
        },
        "band_history": {PREVIOUS: sha256_file(previous / "bands.csv")},
    }
    # the previous quarter was really used: the same bands last quarter, so every trust is "same"
    bands = pd.read_csv(summary.run_dir / "bands.csv", dtype=str, keep_default_na=False)
    prior = pd.read_csv(previous / "bands.csv", dtype=str, keep_default_na=False)
    assert (
        bands["previous_band"] == bands["trust_code"].map(prior.set_index("trust_code")["band"])
    ).all()
    assert set(bands["movement"]) == {"same"}


def test_run_id_follows_the_previous_quarter_bytes(published, hostile_bundle, tmp_path) -> None:
    """A republished previous quarter (other bands) gives another run id: no stale identity."""
    out = tmp_path / "out"
    previous = _with_previous(published, out)
    first = pipeline.fingerprint(run_options(hostile_bundle, out)).run_id
    bands = pd.read_csv(previous / "bands.csv", dtype=str, keep_default_na=False)
    bands.loc[0, "band"] = "1" if bands.loc[0, "band"] != "1" else "2"
    bands.to_csv(previous / "bands.csv", index=False, lineterminator="\n")
    manifest = json.loads((previous / "manifest.json").read_text())
    manifest["outputs"]["bands.csv"] = sha256_file(previous / "bands.csv")
    (previous / "manifest.json").write_text(json.dumps(manifest))
    assert pipeline.fingerprint(run_options(hostile_bundle, out)).run_id != first


def _corrupt_binary(previous: Path) -> None:
    (previous / "bands.csv").write_bytes(bytes(range(256)) * 4)


def _corrupt_no_trust_code(previous: Path) -> None:
    bands = pd.read_csv(previous / "bands.csv", dtype=str, keep_default_na=False)
    bands.rename(columns={"trust_code": "code"}).to_csv(previous / "bands.csv", index=False)


def _corrupt_manifest(previous: Path) -> None:
    (previous / "manifest.json").write_bytes(b"\x00\xff not json")


def _changed_after_publishing(previous: Path) -> None:
    flags = previous / "flags.csv"
    flags.write_bytes(flags.read_bytes().replace(b"elevated_risk", b"risk", 1))


@pytest.mark.parametrize(
    ("corrupt", "problem"),
    [
        (_corrupt_binary, "bands.csv differs from the sha256 its manifest.json recorded"),
        (_corrupt_no_trust_code, "bands.csv differs from the sha256"),
        (_corrupt_manifest, "manifest.json is not readable JSON"),
        (_changed_after_publishing, "flags.csv differs from the sha256"),
    ],
    ids=["binary", "no-trust-code", "manifest", "changed"],
)
def test_corrupt_previous_quarter_stops_plainly(
    corrupt, problem, published, hostile_bundle, tmp_path
) -> None:
    out = tmp_path / "out"
    previous = _with_previous(published, out)
    corrupt(previous)
    with pytest.raises(pipeline.PreviousQuarterError) as info:
        pipeline.run_quarter(run_options(hostile_bundle, out))
    message = str(info.value)
    assert f"published quarter {previous} cannot be read" in message
    assert problem in message
    assert "does not continue without it" in message
    assert not (out / QUARTER).exists()


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (bytes(range(256)) * 4, "bands.csv is not UTF-8 text (byte 128, line 2)"),
        (b"code,band\nRXX,1\n", "bands.csv has no column trust_code"),
        (b"", "bands.csv is not a readable CSV"),
    ],
    ids=["binary", "no-trust-code", "empty"],
)
def test_corrupt_previous_without_manifest_names_the_problem(
    payload, problem, published, hostile_bundle, tmp_path
) -> None:
    """Without a manifest to compare against, the table itself is checked."""
    out = tmp_path / "out"
    previous = _with_previous(published, out)
    (previous / "manifest.json").unlink()
    (previous / "bands.csv").write_bytes(payload)
    with pytest.raises(pipeline.PreviousQuarterError, match="does not continue") as info:
        pipeline.run_quarter(run_options(hostile_bundle, out))
    assert problem in str(info.value)
    assert not (out / QUARTER).exists()
