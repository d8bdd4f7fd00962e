"""Manifest: deterministic run id, hashes, verify detects every kind of change."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from surveillance import manifest as mf


def _manifest(run_dir: Path, data_dir: Path) -> mf.Manifest:
    inputs = mf.hash_inputs({"trusts": data_dir / "trusts.csv"}, root=data_dir)
    return mf.Manifest(
        run_id="2013Q3-x",
        quarter="2013Q3",
        inputs=inputs,
        catalogue_sha256="0" * 64,
        model_configs={},
        code_version={"package": "0.1.0", "git_commit": None},
        options={},
        row_counts={"flags.csv": 1},
        outputs=mf.hash_outputs(run_dir),
    )


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "trusts.csv").write_text("trust_code\nRXX\n")
    run_dir = tmp_path / "out" / "2013Q3"
    (run_dir / "reports").mkdir(parents=True)
    (run_dir / "flags.csv").write_text("a\n1\n")
    (run_dir / "reports" / "index.html").write_text("<html></html>")
    (run_dir / "timings.json").write_text('{"total_seconds": 1.0}\n')
    mf.write_manifest(_manifest(run_dir, data), run_dir)
    return run_dir, data


def test_sha256_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    payload = bytes(range(256)) * 5000
    path.write_bytes(payload)
    assert mf.sha256_file(path) == hashlib.sha256(payload).hexdigest()


def test_outputs_exclude_volatile_files(run) -> None:
    run_dir, _ = run
    hashes = mf.read_manifest(run_dir)["outputs"]
    assert sorted(hashes) == ["flags.csv", "reports/index.html"]
    assert hashes["flags.csv"] == hashlib.sha256(b"a\n1\n").hexdigest()


def test_inputs_recorded_relative_to_bundle(run) -> None:
    run_dir, _ = run
    entry = mf.read_manifest(run_dir)["inputs"]["trusts"]
    assert entry == {
        "path": "trusts.csv",
        "sha256": hashlib.sha256(b"trust_code\nRXX\n").hexdigest(),
    }


def test_verify_clean_run(run) -> None:
    run_dir, data = run
    result = mf.verify_run(run_dir, data)
    assert result.ok
    assert result.checked == 3


def test_timings_may_change_without_failing_verify(run) -> None:
    run_dir, data = run
    (run_dir / "timings.json").write_text('{"total_seconds": 99.0}\n')
    assert mf.verify_run(run_dir, data).ok


def test_verify_reports_changed_missing_unexpected(run) -> None:
    run_dir, data = run
    (run_dir / "flags.csv").write_text("a\n2\n")
    (run_dir / "reports" / "index.html").unlink()
    (run_dir / "extra.csv").write_text("x\n")
    (data / "trusts.csv").write_text("trust_code\nRYY\n")
    result = mf.verify_run(run_dir, data)
    assert not result.ok
    found = {(m.kind, m.name, m.problem) for m in result.mismatches}
    assert found == {
        ("output", "flags.csv", "changed"),
        ("output", "reports/index.html", "missing"),
        ("output", "extra.csv", "unexpected"),
        ("input", "trusts.csv", "changed"),
    }


def test_verify_catalogue_change(run, tmp_path: Path) -> None:
    run_dir, _ = run
    catalogue = tmp_path / "cat.yaml"
    catalogue.write_text("x: 1\n")
    result = mf.verify_run(run_dir, catalogue_path=catalogue)
    assert [(m.kind, m.problem) for m in result.mismatches] == [("catalogue", "changed")]
    assert "inputs not checked" in result.notes[0]


def test_verify_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="not a published run"):
        mf.verify_run(tmp_path)


def test_run_id_is_deterministic_and_sensitive() -> None:
    inputs = {"trusts": {"path": "trusts.csv", "sha256": "a" * 64}}
    code = {"package": "0.1.0", "git_commit": "abc"}
    base = mf.run_id("2013Q3", inputs, "c", {"m": "d"}, code)
    assert base == mf.run_id("2013Q3", dict(inputs), "c", {"m": "d"}, dict(code))
    assert base.startswith("2013Q3-") and len(base) == 7 + 16
    changed_input = {"trusts": {"path": "trusts.csv", "sha256": "b" * 64}}
    assert mf.run_id("2013Q3", changed_input, "c", {"m": "d"}, code) != base
    assert mf.run_id("2013Q3", inputs, "c2", {"m": "d"}, code) != base
    assert mf.run_id("2013Q3", inputs, "c", {"m": "e"}, code) != base
    assert mf.run_id("2013Q3", inputs, "c", {"m": "d"}, {**code, "git_commit": "x"}) != base
    assert mf.run_id("2013Q4", inputs, "c", {"m": "d"}, code) != base


def test_code_version_has_package_and_commit() -> None:
    from surveillance import __version__

    version = mf.code_version()
    assert version["package"] == __version__
    assert version["git_commit"] is None or len(version["git_commit"]) == 40


def test_manifest_json_is_byte_stable(run) -> None:
    run_dir, data = run
    first = (run_dir / "manifest.json").read_bytes()
    mf.write_manifest(_manifest(run_dir, data), run_dir)
    assert (run_dir / "manifest.json").read_bytes() == first
