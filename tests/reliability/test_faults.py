"""Faults (issue 7, part 2): killed runs, full and read-only disks, concurrent runs, path escapes.

Killed runs use ``fault_runner.py``: a subprocess that runs the quarter without Prefect and
SIGKILLs itself when a named stage starts. After every kill the published quarter must be absent
(or, after the rename, complete and identical to an uninterrupted run), and a rerun must publish
a quarter byte-identical to the reference run (``conftest.published["b"]``: same inputs, same
options) apart from the volatile ``timings.json``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from rel_common import QUARTER, run_options
from typer.testing import CliRunner

from surveillance import pipeline, store
from surveillance.cli import app
from surveillance.manifest import TIMINGS_FILE

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "fault_runner.py"
#: stages in run order (functions of surveillance.pipeline, then the store's publish steps).
PRE_PUBLISH = [
    "fingerprint",
    "load_catalogue",
    "load",
    "assemble_sources",
    "validate",
    "derive",
    "mortality",
    "previous_outputs",
    "assess_flags",
    "band",
    "write_outputs",
    "render_reports",
    "finish_manifest",
    "write_timings",
    "store.publish",
]
#: the subset run by default (one subprocess each, ~7 s): before staging, half-way through the
#: staging directory, and just before the rename; the full list is the slow test.
KEY_STAGES = ["validate", "render_reports", "store.publish"]


def _run(data: Path, out: Path, stage: str, mode: str = "pipeline") -> subprocess.CompletedProcess:
    """Run ``fault_runner.py`` in its own process group; afterwards kill what is left of the group.

    Under Prefect the runner starts the embedded API server as a child process; SIGKILL of the
    runner orphans it, still holding the runner's stdout, so output goes to files (not pipes) and
    the group is killed once the runner is gone.
    """
    cmd = [sys.executable, str(RUNNER), str(data), str(out), QUARTER, stage, mode]
    logs = out.parent / f"runner-{uuid.uuid4().hex[:8]}"
    with open(f"{logs}.out", "w+") as stdout, open(f"{logs}.err", "w+") as stderr:
        proc = subprocess.Popen(
            cmd, stdout=stdout, stderr=stderr, text=True, start_new_session=True
        )
        try:
            returncode = proc.wait(timeout=600)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        stdout.seek(0)
        stderr.seek(0)
        return subprocess.CompletedProcess(cmd, returncode, stdout.read(), stderr.read())


def _differences(run_dir: Path, reference: Path) -> list[str]:
    a = {p.relative_to(run_dir).as_posix(): p for p in run_dir.rglob("*") if p.is_file()}
    b = {p.relative_to(reference).as_posix(): p for p in reference.rglob("*") if p.is_file()}
    out = sorted(set(a) ^ set(b))
    out += [
        n
        for n in sorted(set(a) & set(b))
        if n != TIMINGS_FILE and a[n].read_bytes() != b[n].read_bytes()
    ]
    return out


def _kill_each_then_rerun(stages: list[str], data: Path, out: Path, reference: Path) -> list[dict]:
    results = []
    for stage in stages:
        proc = _run(data, out, stage)
        assert proc.returncode == -9, (stage, proc.returncode, proc.stdout, proc.stderr[-2000:])
        assert f"killed at {stage}" in proc.stdout
        assert not (out / QUARTER).exists(), f"a quarter was published after a kill at {stage}"
        results.append({"stage": stage, "published_after_kill": False})
    proc = _run(data, out, "none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _differences(out / QUARTER, reference) == []
    assert not list(out.glob(f".{QUARTER}.staging-*"))  # the rerun cleared the killed stagings
    return results


def test_sigkill_at_key_stages_then_rerun_is_identical(published, hostile_bundle, tmp_path):
    _kill_each_then_rerun(KEY_STAGES, hostile_bundle, tmp_path / "out", published["b"] / QUARTER)


@pytest.mark.slow  # 15 subprocess runs, ~2 min on 2 busy cores
def test_sigkill_at_every_stage_then_rerun_is_identical(published, hostile_bundle, tmp_path):
    _kill_each_then_rerun(PRE_PUBLISH, hostile_bundle, tmp_path / "out", published["b"] / QUARTER)


def test_sigkill_after_publish_leaves_a_complete_quarter(published, hostile_bundle, tmp_path):
    """Killed after the rename (while updating the DuckDB catalogue): the quarter is complete."""
    out = tmp_path / "out"
    proc = _run(hostile_bundle, out, "store.register_run")
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert _differences(out / QUARTER, published["b"] / QUARTER) == []
    verify = CliRunner().invoke(app, ["verify", str(out / QUARTER), "--data", str(hostile_bundle)])
    assert verify.exit_code == 0, verify.output
    again = _run(hostile_bundle, out, "none")  # a plain rerun refuses: the quarter exists
    assert again.returncode != 0 and "already exists" in again.stderr


# ------------------------------------------------------------------ concurrency


def test_two_runs_of_one_quarter_at_once(published, hostile_bundle, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, str(RUNNER), str(hostile_bundle), str(out), QUARTER, "none"]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(rc for rc, _, _ in results)
    assert codes[0] == 0 and codes[1] != 0, results
    refused = next(err for rc, _, err in results if rc != 0)
    # the loser either found the lock held or, if it started late, the quarter published
    assert "RunLockedError" in refused or "AlreadyPublishedError" in refused, refused[-2000:]
    assert _differences(out / QUARTER, published["b"] / QUARTER) == []


def _hold_lock(out: str, ready, release) -> None:
    with store.quarter_lock(out, QUARTER):
        ready.set()
        release.wait(60)


def test_run_refuses_while_another_process_holds_the_lock(hostile_bundle, tmp_path):
    out = tmp_path / "out"
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(out), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(store.RunLockedError, match=f"another run of {QUARTER} is in progress"):
            pipeline.run_quarter(run_options(hostile_bundle, out))
        assert not (out / QUARTER).exists()
    finally:
        release.set()
        holder.join(30)


# ------------------------------------------------------------------ disks


@contextlib.contextmanager
def _mounted(args: list[str], target: Path):
    target.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount here ({proc.stderr.strip()}): needs root in a sandbox")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def test_disk_full_gives_a_clear_error_and_publishes_nothing(hostile_bundle, tmp_path):
    """A 1 MiB tmpfs: the run fills it while writing (tables fit, reports do not)."""
    with _mounted(["-t", "tmpfs", "-o", "size=1m", "tmpfs"], tmp_path / "small") as disk:
        out = disk / "out"
        with pytest.raises(store.StoreError, match="no space left on the device"):
            pipeline.run_quarter(run_options(hostile_bundle, out))
        assert not (out / QUARTER).exists()
        assert not list(out.glob(f".{QUARTER}.staging-*"))


@pytest.mark.slow  # one `surveillance run` subprocess on the session's Prefect server
def test_disk_full_through_the_cli_is_one_message(hostile_bundle, tmp_path, prefect_harness):
    """Issue 17: the disk fills during the flow (tables fit, reports do not): one message, no
    traceback on either stream, and nothing left in --out (no staging, write test, lock, cache)."""
    with _mounted(["-t", "tmpfs", "-o", "size=1m", "tmpfs"], tmp_path / "small") as disk:
        out = disk / "out"
        args = ["--data", str(hostile_bundle), "--quarter", QUARTER, "--out", str(out)]
        proc = subprocess.run(
            [sys.executable, "-m", "surveillance.cli", "run", *args, "--no-mlflow"],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
            timeout=600,
        )
        left = sorted(p.name for p in disk.rglob("*"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no space left on the device" in proc.stdout
    assert proc.stdout.strip().endswith("nothing was published")
    assert "Traceback" not in proc.stdout and "Traceback" not in proc.stderr, proc.stderr
    assert left == []  # the --out this run created is gone again: nothing was left in it


def test_full_disk_leaves_no_write_test_file(tmp_path):
    """Issue 17: the output directory's write test fails on a full disk and is removed."""
    with _mounted(["-t", "tmpfs", "-o", "size=64k", "tmpfs"], tmp_path / "full") as disk:
        out = disk / "out"
        out.mkdir()
        with contextlib.suppress(OSError), (disk / "filler").open("wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        with pytest.raises(store.StoreError, match="no space left on the device") as info:
            store.ensure_output_dir(out)
        assert info.value is not None  # the error (and anything it references) is still alive
        assert list(out.iterdir()) == []
        with pytest.raises(store.StoreError, match="no space left on the device"):
            store.check_output_dir(out)  # the check before orchestration says the same


def test_lock_file_goes_with_the_run(hostile_bundle, tmp_path):
    """Issue 17: neither a published nor a refused run leaves its lock file in --out."""
    out = tmp_path / "out"
    pipeline.run_quarter(run_options(hostile_bundle, out))
    assert not (out / f".{QUARTER}.lock").exists()
    with pytest.raises(store.AlreadyPublishedError):
        pipeline.run_quarter(run_options(hostile_bundle, out))
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(f".{QUARTER}")) == []


def test_disk_full_simulated_anywhere(hostile_bundle, tmp_path, monkeypatch):
    """Without a mount: every file write raises ENOSPC once the tables are written."""
    import errno

    real = pipeline.render_reports

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "out"))

    monkeypatch.setattr(pipeline, "render_reports", full)
    with pytest.raises(store.StoreError, match="no space left on the device"):
        pipeline.run_quarter(run_options(hostile_bundle, tmp_path / "out"))
    assert real is not full
    assert not (tmp_path / "out" / QUARTER).exists()


def test_read_only_output_directory(hostile_bundle, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    with _mounted(["--bind", "-o", "ro", str(source)], tmp_path / "ro") as ro:
        with pytest.raises(store.StoreError, match="read-only"):
            pipeline.run_quarter(run_options(hostile_bundle, ro))
    assert list(source.iterdir()) == []


def test_immutable_output_directory(hostile_bundle, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    if subprocess.run(["chattr", "+i", str(out)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this file system")
    try:
        with pytest.raises(store.StoreError, match="not permitted|permission denied"):
            pipeline.run_quarter(run_options(hostile_bundle, out))
    finally:
        subprocess.run(["chattr", "-i", str(out)], capture_output=True)
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------ path escapes


@pytest.mark.parametrize(
    "quarter", ["../x", "../../etc", "/tmp/x", "2013Q3/../../x", "..", "2013Q3/"]
)
def test_quarter_argument_cannot_escape(quarter, hostile_bundle, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["run", "--data", str(hostile_bundle), "--quarter", quarter, "--out", str(out)]
    )
    assert result.exit_code == 2, result.output  # usage error before anything runs
    assert "--quarter" in result.output
    with pytest.raises((ValueError, store.StoreError)):
        pipeline.run_quarter(
            pipeline.RunOptions(data_dir=hostile_bundle, quarter=quarter, out=out, mlflow=False)
        )
    assert not out.exists() or list(out.iterdir()) == []
    assert not (tmp_path / "x").exists()


def test_symlinked_quarter_pointing_outside_out_is_refused(hostile_bundle, tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / QUARTER).symlink_to(elsewhere)
    with pytest.raises(store.StoreError, match="outside the output directory"):
        pipeline.run_quarter(run_options(hostile_bundle, out, force=True))
    assert list(elsewhere.iterdir()) == []
    assert (out / QUARTER).is_symlink()


def test_out_that_is_a_file_is_refused(hostile_bundle, tmp_path):
    target = tmp_path / f"out-{uuid.uuid4().hex}"
    target.write_text("not a directory\n")
    with pytest.raises(store.StoreError):
        pipeline.run_quarter(run_options(hostile_bundle, target))
    assert target.read_text() == "not a directory\n"


def test_out_through_a_symlinked_parent_writes_only_inside_the_resolved_out(
    published, hostile_bundle, tmp_path
):
    """``--out link/out`` where ``link`` points elsewhere: everything lands in the real out."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    pipeline.run_quarter(run_options(hostile_bundle, tmp_path / "link" / "out"))
    assert _differences(real / "out" / QUARTER, published["b"] / QUARTER) == []


def test_read_only_output_directory_cli(hostile_bundle, tmp_path):
    """Refused by the checks before orchestration (issue 17): seconds, no Prefect server."""
    source = tmp_path / "src"
    source.mkdir()
    with _mounted(["--bind", "-o", "ro", str(source)], tmp_path / "ro") as ro:
        result = CliRunner().invoke(
            app,
            [
                "run",
                "--data",
                str(hostile_bundle),
                "--quarter",
                QUARTER,
                "--out",
                str(ro / "x"),
                "--no-mlflow",
            ],
        )
    assert result.exit_code == 1, result.output
    assert "read-only" in result.output and "nothing was published" in result.output
    assert list(source.iterdir()) == []


#: stages killed under the Prefect flow (each run starts Prefect's embedded server, ~30 s): one
#: cached compute stage, the stage after it (resume from the cache), half-way through staging and
#: just before the rename.
CLI_STAGES = ["mortality", "assess_flags", "render_reports", "store.publish"]


@pytest.mark.slow  # 5 subprocess runs through `surveillance run` (Prefect), ~3 min on 2 cores
def test_sigkill_under_prefect_then_rerun_resumes_identically(
    published, hostile_bundle, tmp_path, prefect_harness
):
    """The runs share the session's Prefect server (``PREFECT_API_URL`` is inherited)."""
    out = tmp_path / "out"
    for stage in CLI_STAGES:
        proc = _run(hostile_bundle, out, stage, mode="cli")
        assert proc.returncode == -9, (stage, proc.returncode, proc.stdout[-2000:])
        assert f"killed at {stage}" in proc.stdout
        assert not (out / QUARTER).exists(), stage
    proc = _run(hostile_bundle, out, "none", mode="cli")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert _differences(out / QUARTER, published["b"] / QUARTER) == []
    from flows.quarterly import work_directory

    assert not work_directory(out, QUARTER).exists()  # the result cache goes once published
    assert not (out / ".work").exists()
