"""The analyst notebooks execute top to bottom (nbclient, the venv's python3 kernel) on a run, and
what they report agrees with an independent computation from the run's own files."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient import NotebookClient

# Each notebook starts a kernel and imports the scientific stack: ~30 s each on the shared
# 2-core machine, so they are "slow" (run by `make test` and CI, skipped by `make test-fast`).
pytestmark = [pytest.mark.notebooks, pytest.mark.slow]

PROJECT = Path(__file__).resolve().parents[2]
NOTEBOOKS = PROJECT / "notebooks"


def _load_fixture_module():
    spec = importlib.util.spec_from_file_location(
        "reports_run_fixture", PROJECT / "tests" / "reports" / "run_fixture.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _load_fixture_module().write_fixture_run(tmp_path_factory.mktemp("nbrun") / "2013Q3")


def execute(
    name: str, env: dict[str, str], timeout: int = 300
) -> tuple[nbformat.NotebookNode, dict]:
    """Run a notebook in ``notebooks/`` with extra environment variables; return it and its RESULT."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        ).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    lines = [
        line
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
        for line in out.get("text", "").splitlines()
        if line.startswith("RESULT ")
    ]
    assert len(lines) == 1, f"{name}: expected one RESULT line, got {lines}"
    return nb, json.loads(lines[0][len("RESULT ") :])


def test_quarter_overview(fixture_run: Path):
    _, result = execute("quarter_overview.ipynb", {"SURVEILLANCE_RUN_DIR": str(fixture_run)})
    bands = pd.read_csv(fixture_run / "bands.csv", dtype=str)
    assert result["quarter"] == "2013Q3"
    assert result["band_counts"] == bands["band"].value_counts().to_dict()
    prev = bands[bands["previous_band"].notna()]
    assert result["n_moved"] == int((prev["previous_band"] != prev["band"]).sum())
    flags = pd.read_csv(fixture_run / "flags.csv")
    funnel = flags[flags.type.isin(["ratio", "proportion", "rate", "count", "score"])]
    n = funnel[funnel.flag.isin(["risk", "elevated_risk"])].groupby("indicator_id").size()
    assert result["funnel_indicator"] == n.sort_values(ascending=False, kind="mergesort").index[0]


def test_mortality_alert_deep_dive(fixture_run: Path):
    _, result = execute(
        "mortality_alert_deep_dive.ipynb", {"SURVEILLANCE_RUN_DIR": str(fixture_run)}
    )
    alerts = pd.read_csv(fixture_run / "alerts.csv", dtype={"trust_code": str})
    # the new alert with the largest excess of deaths among those meeting the minimum expected
    # count (1, monitoring.yaml); REE's FRACTURED_NOF (0.9 expected, a caution) is never picked
    new = alerts[(alerts.status == "new") & (alerts.expected >= 1.0)]
    new = new.assign(excess=new.observed - new.expected)
    top = new.sort_values(["excess", "trust_code"], ascending=[False, True]).iloc[0]
    assert (result["trust_code"], result["diagnosis_group"]) == (
        top.trust_code,
        top.diagnosis_group,
    )
    assert (top.trust_code, top.diagnosis_group) == ("RAA", "AMI")
    assert result["meets_min_expected"] is True
    assert result["oe"] == pytest.approx(top.observed / top.expected, rel=1e-6)
    assert result["has_path"] is (top.trust_code in ("RAA", "RCC"))


def test_banding_what_if(fixture_run: Path):
    from surveillance.banding.config import load_cqc2013_config
    from surveillance.banding.scoring import band_from_proportion, calibrate_cut_points

    _, result = execute("banding_what_if.ipynb", {"SURVEILLANCE_RUN_DIR": str(fixture_run)})
    bands = pd.read_csv(fixture_run / "bands.csv", dtype={"band": str})
    cuts = tuple(load_cqc2013_config().cut_points)
    numeric = bands.band.str.fullmatch(r"[1-6]")
    scored = bands[numeric & ~bands.band_reason.str.contains("special|override", case=False)]
    assert result["n_scored"] == len(scored) == 9  # 10 numeric bands, one by special measures
    p = scored.proportion_score.to_numpy(float)
    stricter = band_from_proportion(p, [c * 1.25 for c in cuts])
    assert result["sizes"]["stricter"] == [int((stricter == k).sum()) for k in range(1, 7)]
    assert result["sizes"]["published"] == [int((scored.band == str(k)).sum()) for k in range(1, 7)]
    assert sum(result["sizes"]["calibrated"]) == len(scored)
    calibrated = band_from_proportion(p, calibrate_cut_points(p, (24, 20, 30, 25, 24, 38)))
    assert result["n_moved"] == int((calibrated != scored.band.astype(int).to_numpy()).sum())


def test_real_data_ae_funnel():
    _, result = execute("real_data_ae_funnel.ipynb", {})
    # Independent computation from the shipped CSV (METHODS.md sections 1-2).
    ae = pd.read_csv(NOTEBOOKS / "data" / "ae_attendances.csv", dtype={"type": str})
    year = ae[(ae["type"] == "1") & (ae["period"] >= "2018-04-01") & (ae["period"] <= "2019-03-01")]
    g = year.groupby("org_code")[["attendances", "breaches"]].sum()
    g = g[g.attendances > 0]
    assert result["n_trusts"] == len(g) and result["attendances"] == int(g.attendances.sum())
    r, n = g.breaches.to_numpy(float), g.attendances.to_numpy(float)
    target = np.arcsin(np.sqrt(r.sum() / n.sum()))
    z = (np.arcsin(np.sqrt(r / n)) - target) * 2 * np.sqrt(n)
    lo, hi = np.quantile(z, [0.1, 0.9])
    phi = float(np.mean(np.clip(z, lo, hi) ** 2))
    assert result["phi"] == pytest.approx(phi, rel=1e-6)
    assert phi > 50  # A&E performance is grossly overdispersed between trusts
    w = 4 * n
    tau2 = (len(z) * phi - (len(z) - 1)) / (w.sum() - (w**2).sum() / w.sum())
    assert result["tau2"] == pytest.approx(tau2, rel=1e-6)
    # Unadjusted: the binomial limits flag far more trusts than the adjusted ones.
    assert result["outside998_high_unadjusted"] > 3 * result["outside998_high_adjusted"]


@pytest.fixture(scope="module")
def demo_run() -> tuple[Path, Path | None]:
    fx = _load_fixture_module()
    run = fx.demo_run_dir(PROJECT)
    if not (run / "bands.csv").is_file():
        pytest.skip(f"no finished run in {run}")
    return run, fx.demo_bundle_dir(PROJECT, run)


def test_notebooks_on_the_demo_run(demo_run):
    """The three run notebooks on a quarterly run of the synthetic nation (161 trusts)."""
    run, bundle = demo_run
    env = {"SURVEILLANCE_RUN_DIR": str(run)}
    if bundle is not None:
        env["SURVEILLANCE_BUNDLE_DIR"] = str(bundle)
    bands = pd.read_csv(run / "bands.csv", dtype=str)
    _, overview = execute("quarter_overview.ipynb", env)
    assert overview["band_counts"] == bands["band"].value_counts().to_dict()
    assert sum(overview["band_counts"].values()) == 161
    _, what_if = execute("banding_what_if.ipynb", env)
    scored = bands[
        bands.band.str.fullmatch(r"[1-6]")
        & ~bands.band_reason.str.contains("special|override", case=False)
    ]
    assert what_if["n_scored"] == len(scored)
    assert what_if["sizes"]["published"] == [
        int((scored.band == str(k)).sum()) for k in range(1, 7)
    ]
    alerts = pd.read_csv(run / "alerts.csv", dtype={"trust_code": str})
    if len(alerts):
        _, deep = execute("mortality_alert_deep_dive.ipynb", env)
        assert (deep["trust_code"], deep["diagnosis_group"]) in set(
            zip(alerts.trust_code, alerts.diagnosis_group, strict=True)
        )
        assert deep["has_path"] is (bundle is not None or (run / "cusum_paths.csv").is_file())


SHARED_DATA = PROJECT.parent / "shared" / "data"


@pytest.mark.skipif(
    not (SHARED_DATA / "cancer_waiting_times").is_dir(),
    reason=f"the real publisher files are not present ({SHARED_DATA})",
)
def test_real_quarter_2023q3(tmp_path: Path):
    _, result = execute(
        "real_quarter_2023q3.ipynb",
        {"SURVEILLANCE_SOURCES": str(SHARED_DATA), "SURVEILLANCE_REAL_OUT": str(tmp_path)},
        timeout=600,
    )
    run = tmp_path / "runs" / "2023Q3"
    flags = pd.read_csv(run / "flags.csv", dtype={"trust_code": str})
    trusts = pd.read_csv(tmp_path / "bundle" / "trusts.csv", dtype=str)
    assert result["n_trusts"] == len(trusts) == flags["trust_code"].nunique()
    assert result["n_indicators"] == flags["indicator_id"].nunique()
    applicable = flags[flags["flag"] != "not_applicable"]
    assert result["assessed"] == sorted(applicable["indicator_id"].unique())
    assert {"wait_cancer_62d", "wait_cancer_28d_fds"} <= set(result["assessed"])
    assert not {"bed_occupancy", "wait_ae_4h"} & set(result["assessed"])  # late feeds
    for ind, counts in result["outliers"].items():
        f = flags[flags["indicator_id"] == ind]
        assert counts["after"] == int(f["flag"].isin(["risk", "elevated_risk"]).sum())
    sources = pd.read_csv(run / "sources.csv", dtype=str, keep_default_na=False)
    kh03 = sources[sources["source"] == "NHS England KH03"]
    assert set(kh03["status"]) == {"late"} and set(kh03["latest_period"]) == {"2022-03"}
    cwt = sources[
        (sources["source"] == "NHS England Cancer Waiting Times") & (sources["status"] == "ok")
    ]
    assert set(cwt["provisional"]) == {"2023-07, 2023-08, 2023-09"}
    assert result["kh03_latest"] == "2022Q1"
