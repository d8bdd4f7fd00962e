"""The quarterly flow end to end under one Prefect test harness (small synthetic bundle)."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from surveillance import pipeline, store
from surveillance.catalogue import load_catalogue
from surveillance.manifest import VOLATILE_FILES, sha256_file, verify_run

# Each test here runs the quarterly flow (two quarters in the module fixture): about 2-3 minutes
# on 2 shared cores, so the module is marked slow (CI runs it; `make test-fast` skips it). The
# fast suite keeps flow coverage through test_cli_orchestration.py and test_pipeline_stages.py.
pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]

CONTRACT = {
    "flags.csv": pipeline.FLAGS_COLUMNS,
    "alerts.csv": pipeline.ALERTS_COLUMNS,
    "mortality.csv": pipeline.MORTALITY_COLUMNS,
    "bands.csv": pipeline.BANDS_COLUMNS,
}


def _files(run_dir: Path) -> dict[str, bytes]:
    """Every file of a run except the volatile ones (timings.json), by relative path."""
    return {
        p.relative_to(run_dir).as_posix(): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name not in VOLATILE_FILES[1:]
    }


def _differ(a: Path, b: Path) -> list[str]:
    """Files (except timings.json) whose bytes differ between two runs, or that only one has."""
    fa, fb = _files(a), _files(b)
    return sorted(n for n in set(fa) | set(fb) if fa.get(n) != fb.get(n))


def _run_flow(bundles, out: Path, quarter: str, code: dict, **kwargs):
    from flows.quarterly import quarterly

    kwargs.setdefault("mlflow", False)  # MLflow's first sqlite set-up alone takes ~45 s here
    return quarterly(
        data_dir=str(bundles[quarter]), out=str(out), quarter=quarter, code=code, **kwargs
    )


@pytest.fixture(scope="module")
def published(small_bundles, code_version, tmp_path_factory) -> Path:
    """2013Q2 then 2013Q3 published by the flow into one output directory."""
    out = tmp_path_factory.mktemp("runs")
    for quarter in ("2013Q2", "2013Q3"):
        result = _run_flow(small_bundles, out, quarter, code_version)
        assert result["run_dir"] == str(out.resolve() / quarter)
    return out


def test_flow_produces_every_contract_output(published: Path, small_bundles) -> None:
    run = published / "2013Q3"
    for name, columns in CONTRACT.items():
        frame = pd.read_csv(run / name, dtype=str, keep_default_na=False)
        assert list(frame.columns[: len(columns)]) == columns, name
    for name in (
        "manifest.json",
        "timings.json",
        "sources.csv",
        "models/risk_model.json",
        "reports/index.html",
    ):
        assert (run / name).is_file(), name
    trusts = pd.read_csv(small_bundles["2013Q3"] / "trusts.csv", dtype=str)
    flags = pd.read_csv(run / "flags.csv", dtype=str, keep_default_na=False)
    bands = pd.read_csv(run / "bands.csv", dtype=str, keep_default_na=False)
    catalogue = load_catalogue()
    # one row per trust x catalogue indicator, one band per trust
    assert len(flags) == len(trusts) * len(catalogue)
    assert set(flags["indicator_id"]) == set(catalogue.index)
    assert sorted(bands["trust_code"]) == sorted(trusts["trust_code"])
    assert set(flags["flag"]) <= {"no_evidence", "risk", "elevated_risk", "not_applicable"}
    # rows written in key order
    assert list(flags["trust_code"]) == sorted(flags["trust_code"])
    # movement against the previous published quarter
    previous = pd.read_csv(published / "2013Q2" / "bands.csv", dtype=str, keep_default_na=False)
    assert (
        bands["previous_band"].tolist()
        == bands["trust_code"].map(previous.set_index("trust_code")["band"]).tolist()
    )


def test_band_scores_follow_from_flags(published: Path) -> None:
    """Independent recomputation: score = 1 per risk + 2 per elevated risk over banded flags."""
    run = published / "2013Q3"
    flags = pd.read_csv(run / "flags.csv", dtype=str, keep_default_na=False)
    bands = pd.read_csv(run / "bands.csv", dtype=str, keep_default_na=False).set_index("trust_code")
    used = flags[flags["in_banding"] == "True"]
    points = used["flag"].map({"no_evidence": 0, "risk": 1, "elevated_risk": 2})
    applicable = used[used["flag"] != "not_applicable"]
    score = points.groupby(used["trust_code"]).sum()
    n = applicable.groupby("trust_code").size()
    for code in bands.index:
        assert int(bands.loc[code, "score"]) == int(score.get(code, 0)), code
        assert int(bands.loc[code, "applicable"]) == int(n.get(code, 0)), code
        assert int(bands.loc[code, "max_score"]) == 2 * int(n.get(code, 0)), code


def test_manifest_hashes_and_verify(published: Path, small_bundles) -> None:
    run = published / "2013Q3"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["quarter"] == "2013Q3"
    assert manifest["run_id"].startswith("2013Q3-")
    for name, entry in manifest["inputs"].items():
        assert entry["sha256"] == sha256_file(small_bundles["2013Q3"] / entry["path"]), name
    assert manifest["outputs"]["flags.csv"] == sha256_file(run / "flags.csv")
    assert "timings.json" not in manifest["outputs"]
    flags_rows = sum(1 for _ in (run / "flags.csv").open()) - 1
    assert manifest["row_counts"]["flags.csv"] == flags_rows
    assert manifest["catalogue_sha256"] == sha256_file(pipeline.default_catalogue_path())
    assert verify_run(run, small_bundles["2013Q3"]).ok
    timings = json.loads((run / "timings.json").read_text())
    assert timings["flow_run_id"]


def test_duckdb_catalogue_has_both_quarters(published: Path) -> None:
    counts = store.query_catalogue(
        published, "SELECT quarter, count(*) AS n FROM bands GROUP BY 1 ORDER BY 1"
    )
    assert counts["quarter"].tolist() == ["2013Q2", "2013Q3"]
    bands = pd.read_csv(published / "2013Q3" / "bands.csv")
    assert counts["n"].tolist()[1] == len(bands)
    runs = store.query_catalogue(published, "SELECT * FROM runs ORDER BY quarter")
    manifest = json.loads((published / "2013Q3" / "manifest.json").read_text())
    assert runs["run_id"].tolist()[1] == manifest["run_id"]
    assert runs["published_at"].notna().all()
    assert runs["n_flags"].tolist()[1] == manifest["row_counts"]["flags.csv"]


def test_rerun_is_byte_identical(published: Path, small_bundles, code_version) -> None:
    run = published / "2013Q3"
    before = _files(run)
    _run_flow(small_bundles, published, "2013Q3", code_version, force=True)
    after = _files(run)
    assert sorted(after) == sorted(before)
    changed = [name for name in before if before[name] != after[name]]
    assert changed == []


def test_flow_matches_plain_pipeline(
    published: Path, small_bundles, code_version, tmp_path
) -> None:
    """The flow adds orchestration only: the same bytes as the stage functions chained by hand."""
    options = pipeline.RunOptions(
        data_dir=small_bundles["2013Q3"],
        quarter="2013Q3",
        out=tmp_path,
        code=code_version,
        previous_run=published / "2013Q2",
        mlflow=False,
    )
    run_dir = pipeline.run_quarter(options).run_dir
    assert _differ(run_dir, published / "2013Q3") == []


def test_failed_stage_publishes_nothing_and_rerun_resumes(
    published: Path, small_bundles, code_version, tmp_path, monkeypatch
) -> None:
    out = tmp_path / "out"
    # same previous quarter as the reference run, so the outputs can be compared byte for byte
    (out / "2013Q2").parent.mkdir(parents=True)
    import shutil

    shutil.copytree(published / "2013Q2", out / "2013Q2")

    def broken(*args, **kwargs):
        raise RuntimeError("banding exploded")

    monkeypatch.setattr(pipeline, "band", broken)
    with pytest.raises(RuntimeError, match="banding exploded"):
        _run_flow(small_bundles, out, "2013Q3", code_version)
    assert not (out / "2013Q3").exists()
    assert not list(out.glob(".2013Q3.staging-*"))
    from flows.quarterly import work_directory

    assert (work_directory(out, "2013Q3") / "results").is_dir()  # finished stages kept
    # ... outside --out: the failed run left nothing there beside the published 2013Q2
    assert sorted(p.name for p in out.iterdir()) == ["2013Q2"]
    # ... and small: compressed, the mortality stage's result is ~0.2 MB here instead of ~34 MB
    results = work_directory(out, "2013Q3") / "results"
    cached = sum(p.stat().st_size for p in results.rglob("*") if p.is_file())
    assert cached < 4_000_000, cached

    # the rerun must take mortality, derive and assess from the cache: make them unrunnable
    monkeypatch.undo()

    def must_be_cached(*args, **kwargs):
        raise AssertionError("stage recomputed instead of taken from the cache")

    for name in ("mortality", "derive", "assess_flags", "assemble_sources"):
        monkeypatch.setattr(pipeline, name, must_be_cached)
    _run_flow(small_bundles, out, "2013Q3", code_version)
    monkeypatch.undo()
    assert _differ(out / "2013Q3", published / "2013Q3") == []
    assert not work_directory(out, "2013Q3").exists()  # removed once published
    assert not work_directory(out, "2013Q3").parent.exists()


def test_rerun_after_the_previous_quarter_is_published_uses_it(
    published: Path, small_bundles, code_version, tmp_path, monkeypatch
) -> None:
    """Issue 17: a 2013Q3 run fails at publish with its stage results cached while --out holds
    no 2013Q2; 2013Q2 is published; the rerun must not reuse the assess / band results computed
    without it (they used to be keyed on the bundle alone: movement "new" for every trust)."""
    import shutil

    out = tmp_path / "out"

    def broken(*args, **kwargs):
        raise RuntimeError("publishing failed")

    monkeypatch.setattr(pipeline, "write_outputs", broken)
    with pytest.raises(RuntimeError, match="publishing failed"):
        _run_flow(small_bundles, out, "2013Q3", code_version)
    monkeypatch.undo()
    shutil.copytree(published / "2013Q2", out / "2013Q2")
    _run_flow(small_bundles, out, "2013Q3", code_version)
    bands = pd.read_csv(out / "2013Q3" / "bands.csv", dtype=str, keep_default_na=False)
    reference = pd.read_csv(published / "2013Q3" / "bands.csv", dtype=str, keep_default_na=False)
    assert bands["movement"].tolist() == reference["movement"].tolist()
    assert set(bands["movement"]) != {"new"}
    assert _differ(out / "2013Q3", published / "2013Q3") == []


def _hold_lock(out: str, ready, release) -> None:  # pragma: no cover - child process
    with store.quarter_lock(out, "2013Q3"):
        ready.set()
        release.wait(60)


def test_lock_refuses_concurrent_run(small_bundles, code_version, tmp_path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(store.RunLockedError, match="another run of 2013Q3 is in progress"):
            _run_flow(small_bundles, tmp_path, "2013Q3", code_version)
    finally:
        release.set()
        holder.join(60)
    assert not (tmp_path / "2013Q3").exists()


def test_already_published_needs_force(published: Path, small_bundles, code_version) -> None:
    with pytest.raises(store.AlreadyPublishedError, match="--force"):
        _run_flow(small_bundles, published, "2013Q3", code_version)


def test_scheduled_run_skips_when_not_first_working_day(
    small_bundles, code_version, tmp_path, monkeypatch
) -> None:
    from flows import schedule

    monkeypatch.setattr(schedule, "is_first_working_day", lambda day: False)
    from flows.quarterly import quarterly

    result = quarterly(
        data_dir=str(small_bundles["2013Q3"]), out=str(tmp_path), code=code_version, scheduled=True
    )
    assert "not the first working day" in result["skipped"]
    assert not any(tmp_path.iterdir())


def test_monthly_flow_reuses_quarter_models(published: Path, small_bundles, code_version) -> None:
    from flows.monthly import monthly_mortality

    result = monthly_mortality(
        data_dir=str(small_bundles["2013Q3"]),
        out=str(published),
        month="2013-08",
        code=code_version,
    )
    run = Path(result["run_dir"])
    assert run == published.resolve() / "monthly" / "2013-08"
    alerts = pd.read_csv(run / "alerts.csv", dtype=str, keep_default_na=False)
    assert list(alerts.columns[: len(pipeline.ALERTS_COLUMNS)]) == pipeline.ALERTS_COLUMNS
    # the 12-month window to August; new = the chart's first signal in August
    assert set(alerts["signal_month"]) <= {
        str(m) for m in pd.period_range(end="2013-08", periods=12, freq="M")
    }
    assert (
        alerts["status"] == np.where(alerts["first_signal_month"] == "2013-08", "new", "persisting")
    ).all()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["options"]["risk_model_from"] == "2013Q2"  # the latest quarter before August
    assert verify_run(run).ok
    # the alerts are those of the saved 2013Q2 models on the 12 months to August
    from surveillance.mortality.monitor import monitor_month
    from surveillance.mortality.risk_model import RiskModel

    # the charts' own model: the alert model with its typical-trust baseline
    model = RiskModel.load(published / "2013Q2" / "models" / "alert_model.json")
    assert pipeline.latest_risk_model(published, "2013-08").name == "alert_model.json"
    bundle = store.read_bundle(small_bundles["2013Q3"])
    expected = monitor_month(bundle.spells, model, "2013-08")
    got = pd.read_csv(run / "alerts.csv", dtype={"trust_code": str})
    assert len(got) == len(expected)
    if len(expected):
        assert got["trust_code"].tolist() == expected["trust_code"].astype(str).tolist()
        assert got["first_signal_month"].tolist() == expected["first_signal_month"].tolist()
        np.testing.assert_allclose(got["cusum"], expected["cusum"].astype(float), rtol=1e-8)


def test_monthly_run_on_spells_left_on_disk(published: Path, small_bundles, monkeypatch, tmp_path):
    """A spells file of AUTO_CHUNKED_SPELLS rows or more stays on disk (``Bundle.spells`` is
    None, ``spells_source`` set); the monthly run reads its window from it row group by row group
    and gives the alerts of the spells in memory (it used to stop with "needs spells")."""
    import shutil

    model_path = published / "2013Q2" / "models" / "alert_model.json"
    in_memory = pipeline.monthly_alerts(
        store.read_bundle(small_bundles["2013Q3"]), model_path, "2013-08"
    )
    lazy = store.read_bundle(small_bundles["2013Q3"], lazy_spells=True)
    assert lazy.spells is None and lazy.spells_source is not None
    pd.testing.assert_frame_equal(pipeline.monthly_alerts(lazy, model_path, "2013-08"), in_memory)
    # the plain monthly run: the national-size rule (here every file is "large") leaves it on disk
    monkeypatch.setattr(pipeline, "AUTO_CHUNKED_SPELLS", 1)
    assert pipeline.load(small_bundles["2013Q3"]).spells is None
    out = tmp_path / "out"
    shutil.copytree(published / "2013Q2", out / "2013Q2")
    run = pipeline.run_month(small_bundles["2013Q3"], out, "2013-08")
    got = pd.read_csv(run / "alerts.csv", dtype={"trust_code": str})
    assert len(got) == len(in_memory)
    assert got["trust_code"].tolist() == in_memory["trust_code"].astype(str).tolist()


@pytest.mark.slow
def test_dask_runner_gives_same_outputs(published: Path, small_bundles, code_version, tmp_path):
    """The flow on a 2-worker Dask cluster (by scheduler address) writes the same bytes."""
    import shutil

    from distributed import LocalCluster

    from flows.quarterly import quarterly
    from flows.runners import task_runner

    shutil.copytree(published / "2013Q2", tmp_path / "2013Q2")
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        flow = quarterly.with_options(task_runner=task_runner("dask", cluster.scheduler_address))
        flow(
            data_dir=str(small_bundles["2013Q3"]),
            out=str(tmp_path),
            quarter="2013Q3",
            code=code_version,
            mlflow=False,
        )
    timings = json.loads((tmp_path / "2013Q3" / "timings.json").read_text())
    assert timings["runner"] == "DaskTaskRunner"
    assert _differ(tmp_path / "2013Q3", published / "2013Q3") == []


@pytest.mark.slow
def test_mlflow_run_is_logged_and_tagged(published: Path, small_bundles, code_version, tmp_path):
    import shutil

    import mlflow

    shutil.copytree(published / "2013Q2", tmp_path / "2013Q2")
    _run_flow(small_bundles, tmp_path, "2013Q3", code_version, mlflow=True)
    run = tmp_path / "2013Q3"
    timings = json.loads((run / "timings.json").read_text())
    manifest = json.loads((run / "manifest.json").read_text())
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}")
    logged = client.get_run(timings["mlflow_run_id"])
    assert logged.data.tags["surveillance.run_id"] == manifest["run_id"]
    bands = pd.read_csv(run / "bands.csv", dtype=str)
    n_band_1 = int((bands["band"] == "1").sum())
    assert any(v == n_band_1 for k, v in logged.data.metrics.items() if k.endswith("1")), (
        logged.data.metrics
    )
    # MLflow is outside the byte-compared files: the published run equals the untracked one
    assert _differ(run, published / "2013Q3") == []
    assert store.query_catalogue(tmp_path, "SELECT mlflow_run_id FROM runs WHERE quarter='2013Q3'")[
        "mlflow_run_id"
    ].tolist() == [timings["mlflow_run_id"]]
