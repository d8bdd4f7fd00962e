"""Publishing runs: atomic, locked, path-safe, byte-stable CSVs, DuckDB catalogue."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from surveillance import store
from surveillance.manifest import Manifest, hash_outputs, write_manifest


def _write_run(staging: Path, quarter: str, n: int = 3, marker: str = "a") -> None:
    flags = pd.DataFrame(
        {
            "trust_code": [f"R{i:02d}" for i in range(n)],
            "indicator_id": "ind_x",
            "z": np.linspace(-1.0, 2.0, n),
            "flag": ["no_evidence"] * (n - 1) + ["risk"],
        }
    )
    store.write_csv(flags, staging / "flags.csv", sort_by=["trust_code"])
    bands = pd.DataFrame({"trust_code": flags["trust_code"], "band": ["1"] * n, "note": marker})
    store.write_csv(bands, staging / "bands.csv", sort_by=["trust_code"])
    manifest = Manifest(
        run_id=f"{quarter}-{marker}",
        quarter=quarter,
        inputs={},
        catalogue_sha256="c",
        model_configs={},
        code_version={"package": "0", "git_commit": None},
        options={},
        row_counts={"flags.csv": n, "bands.csv": n},
        outputs=hash_outputs(staging),
    )
    write_manifest(manifest, staging)


# ------------------------------------------------------------------ paths


@pytest.mark.parametrize("bad", ["../2013Q3", "2013Q3/..", "/etc", "2013Q5", "2013q3x", ".."])
def test_quarter_that_is_not_a_quarter_is_rejected(tmp_path: Path, bad: str) -> None:
    with pytest.raises(store.StoreError, match="--quarter"):
        store.run_directory(tmp_path, bad)


def test_symlinked_quarter_escaping_out_is_rejected(tmp_path: Path) -> None:
    out = tmp_path / "out"
    elsewhere = tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "2013Q3").symlink_to(elsewhere)
    with pytest.raises(store.StoreError, match="outside the output directory"):
        store.run_directory(out, "2013Q3")


def test_run_directory_is_child_of_out(tmp_path: Path) -> None:
    assert (
        store.run_directory(tmp_path / "x" / ".." / "y", "2014Q1")
        == (tmp_path / "y" / "2014Q1").resolve()
    )


# ------------------------------------------------------------------ publishing


def test_staged_run_publishes_complete_directory(tmp_path: Path) -> None:
    with store.staged_run(tmp_path, "2013Q3") as staging:
        assert staging.parent == tmp_path.resolve()
        assert staging.name.startswith(".2013Q3.staging-")
        _write_run(staging, "2013Q3")
        assert not (tmp_path / "2013Q3").exists()  # nothing visible until publish
    run = tmp_path / "2013Q3"
    assert sorted(p.name for p in run.iterdir()) == ["bands.csv", "flags.csv", "manifest.json"]
    assert not list(tmp_path.glob(".2013Q3.staging-*"))


def test_failed_run_publishes_nothing_and_cleans_staging(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="stage failed"):
        with store.staged_run(tmp_path, "2013Q3") as staging:
            _write_run(staging, "2013Q3")
            raise RuntimeError("stage failed")
    assert not (tmp_path / "2013Q3").exists()
    assert not list(tmp_path.glob(".2013Q3.*staging*"))


def test_failed_rerun_leaves_previous_publication_intact(tmp_path: Path) -> None:
    with store.staged_run(tmp_path, "2013Q3") as staging:
        _write_run(staging, "2013Q3", marker="first")
    before = (tmp_path / "2013Q3" / "bands.csv").read_bytes()
    with pytest.raises(RuntimeError):
        with store.staged_run(tmp_path, "2013Q3", force=True) as staging:
            _write_run(staging, "2013Q3", marker="second")
            raise RuntimeError("boom")
    assert (tmp_path / "2013Q3" / "bands.csv").read_bytes() == before


def test_republish_needs_force_then_swaps(tmp_path: Path) -> None:
    with store.staged_run(tmp_path, "2013Q3") as staging:
        _write_run(staging, "2013Q3", marker="first")
    with pytest.raises(store.AlreadyPublishedError, match="--force"):
        with store.staged_run(tmp_path, "2013Q3") as staging:
            pytest.fail("the body must not run when the quarter exists")  # pragma: no cover
    with store.staged_run(tmp_path, "2013Q3", force=True) as staging:
        _write_run(staging, "2013Q3", marker="second")
    bands = pd.read_csv(tmp_path / "2013Q3" / "bands.csv")
    assert set(bands["note"]) == {"second"}
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".2013Q3.")]
    assert leftovers == []  # the lock file goes with the run that held it (issue 17)


def test_exchange_fallback_gives_same_result(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(store, "_exchange", lambda a, b: False)
    with store.staged_run(tmp_path, "2013Q3") as staging:
        _write_run(staging, "2013Q3", marker="first")
    with store.staged_run(tmp_path, "2013Q3", force=True) as staging:
        _write_run(staging, "2013Q3", marker="second")
    assert set(pd.read_csv(tmp_path / "2013Q3" / "bands.csv")["note"]) == {"second"}
    assert not list(tmp_path.glob(".2013Q3.old-*"))


def _killed_child(out: str) -> None:  # pragma: no cover - runs in a child process
    with store.staged_run(out, "2013Q3") as staging:
        (staging / "flags.csv").write_text("partial\n")
        os._exit(9)  # killed mid-run: no cleanup code runs


def test_killed_run_leaves_no_partial_quarter(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_killed_child, args=(str(tmp_path),))
    child.start()
    child.join(30)
    assert child.exitcode == 9
    assert not (tmp_path / "2013Q3").exists()
    # the hidden staging dir is left; the next run of the quarter is not blocked by it
    with store.quarter_lock(tmp_path, "2013Q3"):
        assert store.clean_stale(tmp_path, "2013Q3")
    with store.staged_run(tmp_path, "2013Q3") as staging:
        _write_run(staging, "2013Q3")
    assert (tmp_path / "2013Q3" / "manifest.json").is_file()


# ------------------------------------------------------------------ locking


def _hold_lock(out: str, ready, release) -> None:  # pragma: no cover - child process
    with store.quarter_lock(out, "2013Q3"):
        ready.set()
        release.wait(30)


def test_lock_refuses_second_run_of_same_quarter(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(store.RunLockedError, match=r"another run of 2013Q3 is in progress"):
            with store.staged_run(tmp_path, "2013Q3"):
                pytest.fail("must not get the lock")  # pragma: no cover
        # another quarter is not blocked
        with store.staged_run(tmp_path, "2013Q4") as staging:
            _write_run(staging, "2013Q4")
    finally:
        release.set()
        holder.join(30)
    # released when the holder exits: now it can run
    with store.staged_run(tmp_path, "2013Q3") as staging:
        _write_run(staging, "2013Q3")
    assert (tmp_path / "2013Q3").is_dir()


def test_lock_message_names_holder_pid(tmp_path: Path) -> None:
    with store.quarter_lock(tmp_path, "2013Q3"):
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()

        def probe() -> None:  # pragma: no cover - child
            try:
                with store.quarter_lock(tmp_path, "2013Q3"):
                    queue.put("acquired")
            except store.RunLockedError as exc:
                queue.put(str(exc))

        child = ctx.Process(target=probe)
        child.start()
        message = queue.get(timeout=30)
        child.join(30)
    assert f"pid {os.getpid()}" in message


# ------------------------------------------------------------------ output directory errors


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_output_directory_is_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(store.StoreError, match="permission denied"):
            store.ensure_output_dir(out)
    finally:
        out.chmod(stat.S_IRWXU)


def test_full_disk_is_a_clear_error(tmp_path: Path) -> None:
    full = Path("/dev/full")
    if not full.exists():
        pytest.skip("/dev/full not available")
    with pytest.raises(store.StoreError, match="no space left"):
        store.write_json({"a": 1}, full)


def test_output_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(store.StoreError, match="cannot create the output directory"):
        store.ensure_output_dir(tmp_path / "f")


# ------------------------------------------------------------------ CSV writing


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3+cmd", "'-2+3+cmd"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("-1.5", "-1.5"),
        ("+3e-4", "+3e-4"),
        ("-", "-"),
        ("RXX", "RXX"),
        ("a=b", "a=b"),
        (3.5, 3.5),
    ],
)
def test_formula_cells_are_neutralised(cell, expected) -> None:
    assert store.neutralise_formula(cell) == expected


def test_write_csv_neutralises_and_is_byte_stable(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "trust_code": ["RB", "RA", "RC"],
            "trust_name": ["=1+2", "Normal", "@evil()"],
            "z": [1 / 3, -2.0, np.nan],
            "p": [1e-12, 0.5, 0.25],
            "ok": [True, False, True],
        }
    )
    first = store.write_csv(frame, tmp_path / "a.csv", sort_by=["trust_code"]).read_bytes()
    shuffled = frame.sample(frac=1.0, random_state=3)
    second = store.write_csv(shuffled, tmp_path / "b.csv", sort_by=["trust_code"]).read_bytes()
    assert first == second
    assert first.decode() == (
        "trust_code,trust_name,z,p,ok\n"
        "RA,Normal,-2,0.5,False\n"
        "RB,'=1+2,0.3333333333,1e-12,True\n"
        "RC,'@evil(),,0.25,True\n"
    )


def test_write_json_is_sorted_and_stable(tmp_path: Path) -> None:
    path = store.write_json({"b": np.int64(2), "a": [np.float64(0.5)]}, tmp_path / "x.json")
    assert path.read_text() == '{\n  "a": [\n    0.5\n  ],\n  "b": 2\n}\n'


# ------------------------------------------------------------------ DuckDB catalogue


def test_duckdb_catalogue_queries_all_quarters(tmp_path: Path) -> None:
    for quarter, n in (("2013Q3", 3), ("2013Q4", 4)):
        with store.staged_run(tmp_path, quarter) as staging:
            _write_run(staging, quarter, n=n, marker=quarter)
    runs = store.query_catalogue(tmp_path, "SELECT quarter, run_id, n_flags FROM runs ORDER BY 1")
    assert runs.to_dict("records") == [
        {"quarter": "2013Q3", "run_id": "2013Q3-2013Q3", "n_flags": 3},
        {"quarter": "2013Q4", "run_id": "2013Q4-2013Q4", "n_flags": 4},
    ]
    risks = store.query_catalogue(
        tmp_path,
        "SELECT quarter, count(*) AS n, sum(z) AS z FROM flags WHERE flag = 'risk' "
        "GROUP BY quarter ORDER BY quarter",
    )
    assert risks["n"].tolist() == [1, 1]
    assert risks["z"].tolist() == pytest.approx([2.0, 2.0])
    assert store.query_catalogue(tmp_path, "SELECT count(*) AS n FROM bands")["n"][0] == 7
    # republishing replaces the quarter's rows, it does not add to them
    with store.staged_run(tmp_path, "2013Q3", force=True) as staging:
        _write_run(staging, "2013Q3", n=5, marker="again")
    counts = store.query_catalogue(
        tmp_path, "SELECT quarter, count(*) AS n FROM flags GROUP BY 1 ORDER BY 1"
    )
    assert counts["n"].tolist() == [5, 4]
    assert store.query_catalogue(tmp_path, "SELECT run_id FROM runs WHERE quarter='2013Q3'")[
        "run_id"
    ].tolist() == ["2013Q3-again"]
    # codes stay text (leading zeros etc. are never lost)
    codes = store.query_catalogue(tmp_path, "SELECT DISTINCT trust_code FROM flags ORDER BY 1")
    assert codes["trust_code"].tolist()[:2] == ["R00", "R01"]


def test_catalogue_missing_is_clear(tmp_path: Path) -> None:
    with pytest.raises(store.StoreError, match="no run has been published"):
        store.query_catalogue(tmp_path, "SELECT 1")


def test_published_runs_ignores_non_quarter_dirs(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "2013Q3").mkdir()  # no manifest: not a published run
    with store.staged_run(tmp_path, "2014Q1") as staging:
        _write_run(staging, "2014Q1")
    assert [r.quarter for r in store.published_runs(tmp_path)] == ["2014Q1"]
    manifest = json.loads((tmp_path / "2014Q1" / "manifest.json").read_text())
    assert manifest["run_id"] == "2014Q1-a"


def test_lock_is_released_after_exception(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        with store.quarter_lock(tmp_path, "2013Q3"):
            raise ValueError
    t0 = time.monotonic()
    with store.quarter_lock(tmp_path, "2013Q3"):
        pass
    assert time.monotonic() - t0 < 5


def test_read_only_file_system_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    import errno
    import tempfile

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(store.StoreError, match="the file system is read-only"):
        store.ensure_output_dir(tmp_path)


def test_catalogue_busy_does_not_unpublish(tmp_path: Path) -> None:
    """An analyst holding catalogue.duckdb open for writing: the run still publishes (warning)."""
    import duckdb

    with store.staged_run(tmp_path, "2013Q3") as staging:
        _write_run(staging, "2013Q3")
    holder = multiprocessing.get_context("fork")
    ready, release = holder.Event(), holder.Event()

    def hold() -> None:  # pragma: no cover - child process
        con = duckdb.connect(str(tmp_path / store.CATALOGUE_FILE))
        ready.set()
        release.wait(30)
        con.close()

    child = holder.Process(target=hold)
    child.start()
    try:
        assert ready.wait(30)
        with pytest.warns(UserWarning, match="run catalogue was not updated"):
            with store.staged_run(tmp_path, "2013Q4") as staging:
                _write_run(staging, "2013Q4")
    finally:
        release.set()
        child.join(30)
    assert (tmp_path / "2013Q4" / "manifest.json").is_file()
    store.register_run(tmp_path)  # rebuilt from disk afterwards
    quarters = store.query_catalogue(tmp_path, "SELECT quarter FROM runs ORDER BY 1")["quarter"]
    assert quarters.tolist() == ["2013Q3", "2013Q4"]
