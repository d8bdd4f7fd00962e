"""The run / verify / deploy / report commands (Typer CliRunner, same Prefect harness)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from surveillance.cli import app

pytestmark = pytest.mark.usefixtures("prefect_harness")
runner = CliRunner()


@pytest.fixture(scope="module")
def cli_run(small_bundles, tmp_path_factory, prefect_harness) -> Path:
    """2013Q2 published through ``surveillance run`` (no MLflow: see test_quarterly)."""
    out = tmp_path_factory.mktemp("cli")
    result = runner.invoke(
        app,
        [
            "run",
            "--data",
            str(small_bundles["2013Q2"]),
            "--quarter",
            "2013Q2",
            "--out",
            str(out),
            "--no-mlflow",
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    (tmp_path_factory.getbasetemp() / "cli-run-output.txt").write_text(result.output)
    return out


def test_run_prints_summary(cli_run: Path, tmp_path_factory, prefect_harness) -> None:
    import pandas as pd

    output = (tmp_path_factory.getbasetemp() / "cli-run-output.txt").read_text()
    bands = pd.read_csv(cli_run / "2013Q2" / "bands.csv", dtype=str)
    counts = bands["band"].value_counts()
    expected = ", ".join(
        f"{b}: {counts[b]}"
        for b in sorted(counts.index, key=lambda b: (int(b) if b.isdigit() else 99, b))
    )
    assert expected in output
    assert "reports/index.html" in output.replace("\n", "")
    # the run used the session's one Prefect server and started none of its own (issue 17)
    assert f"Prefect API: {prefect_harness}" in output
    assert "starting Prefect's embedded server" not in output
    # not a terminal (CliRunner, like cron or a CI log): plain progress lines, one per stage
    assert "2013Q2: running the quarterly flow" in output
    for stage in ("validate", "mortality", "band", "publish"):
        assert f"2013Q2: {stage} done (" in output, stage
    timings = json.loads((cli_run / "2013Q2" / "timings.json").read_text())
    assert "mlflow_run_id" not in timings  # --no-mlflow


def test_run_refuses_existing_quarter(cli_run: Path, small_bundles) -> None:
    result = runner.invoke(
        app,
        [
            "run",
            "--data",
            str(small_bundles["2013Q2"]),
            "--quarter",
            "2013Q2",
            "--out",
            str(cli_run),
        ],
    )
    assert result.exit_code == 1
    assert "already exists: pass --force" in result.output
    assert "nothing was published" in result.output


@pytest.mark.parametrize("quarter", ["../2013Q2", "2013Q2/../../x", "2013Q9"])
def test_run_rejects_quarter_escaping_out(quarter: str, small_bundles, tmp_path) -> None:
    result = runner.invoke(
        app,
        [
            "run",
            "--data",
            str(small_bundles["2013Q2"]),
            "--quarter",
            quarter,
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2
    assert "quarter must look like 2013Q3" in result.output
    assert not any(tmp_path.iterdir())


def test_run_bad_runner_is_usage_error(small_bundles, tmp_path) -> None:
    result = runner.invoke(
        app,
        [
            "run",
            "--data",
            str(small_bundles["2013Q2"]),
            "--quarter",
            "2013Q2",
            "--out",
            str(tmp_path),
            "--runner",
            "local",
            "--dask-address",
            "tcp://x:1",
        ],
    )
    assert result.exit_code == 2
    assert "--dask-address needs --runner dask" in result.output


def test_verify_ok_then_detects_tampering(cli_run: Path, small_bundles, tmp_path) -> None:
    run = tmp_path / "2013Q2"
    shutil.copytree(cli_run / "2013Q2", run)
    ok = runner.invoke(app, ["verify", str(run), "--data", str(small_bundles["2013Q2"])])
    assert ok.exit_code == 0, ok.output
    assert "OK" in ok.output
    flags = run / "flags.csv"
    flags.write_bytes(flags.read_bytes().replace(b"risk", b"rusk", 1))
    bad = runner.invoke(app, ["verify", str(run)], env={"COLUMNS": "200"})
    assert bad.exit_code == 1
    assert "flags.csv" in bad.output and "changed" in bad.output


def test_verify_detects_changed_input(cli_run: Path, small_bundles, tmp_path) -> None:
    data = tmp_path / "data"
    shutil.copytree(small_bundles["2013Q2"], data)
    trusts = data / "trusts.csv"
    trusts.write_text(trusts.read_text().replace("NHS", "N.H.S.", 1))
    result = runner.invoke(
        app, ["verify", str(cli_run / "2013Q2"), "--data", str(data)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 1
    assert "trusts.csv" in result.output and "input" in result.output


def test_verify_not_a_run(tmp_path) -> None:
    result = runner.invoke(app, ["verify", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a published run" in result.output


def test_deploy_dry_run_shows_next_dates() -> None:
    result = runner.invoke(app, ["deploy", "--dry-run"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "0 7 1-7 1,4,7,10 1-5" in result.output
    assert "0 7 15 * *" in result.output


def test_deploy_registers_with_prefect_api(tmp_path) -> None:
    from prefect.client.orchestration import get_client

    result = runner.invoke(
        app, ["deploy", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("registered deployment") == 2
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("quarterly/quarterly-first-working-day")
    assert deployment.parameters["scheduled"] is True
    assert deployment.schedules[0].schedule.cron == "0 7 1-7 1,4,7,10 1-5"


def test_report_rerender_keeps_run_verifiable(cli_run: Path, tmp_path) -> None:
    run = tmp_path / "2013Q2"
    shutil.copytree(cli_run / "2013Q2", run)
    (run / "reports" / "index.html").unlink()
    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "reports" / "index.html").is_file()
    verified = runner.invoke(app, ["verify", str(run)])
    assert verified.exit_code == 0, verified.output
    manifest = json.loads((run / "manifest.json").read_text())
    assert "reports_code_version" in manifest
