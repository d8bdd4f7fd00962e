"""MLflow: both banding models round-trip through the registry and predict the same bands;
a quarterly banding run logs params, metrics and artifacts. Kept to two tests (MLflow is slow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from surveillance.banding.config import load_banding_config
from surveillance.banding.cqc2013 import CQC2013Model
from surveillance.banding.learned import LearnedBandingModel
from surveillance.tracking import (
    MODEL_NAMES,
    configure,
    load_model,
    log_banding_run,
    model_input,
    register_banding_models,
    tracking_uri,
)

# creating an MLflow sqlite store (its migrations) takes ~25 s on this machine
pytestmark = pytest.mark.slow

DOMAINS = ["safe", "effective", "caring", "responsive", "well_led"]


def _nation(seed=0, n=60, k=40):
    rng = np.random.default_rng(seed)
    codes = [f"R{t:03d}" for t in range(n)]
    quality = rng.normal(size=n)
    rows = []
    for t, c in enumerate(codes):
        z = 0.7 * quality[t] + rng.normal(size=k)
        flag = np.where(z > 3, "elevated_risk", np.where(z > 1.96, "risk", "no_evidence"))
        rows += [
            {
                "trust_code": c,
                "indicator_id": f"I{i:02d}",
                "domain": DOMAINS[i % 5],
                "type": "score",
                "z_adjusted": z[i],
                "z_sd": 0.7,
                "phi": 2.0,
                "flag": flag[i],
            }
            for i in range(k)
        ]
    trusts = pd.DataFrame(
        {
            "trust_code": codes,
            "trust_name": [f"Trust {c}" for c in codes],
            "region": "North",
            "special_measures": [t == 0 for t in range(n)],
            "last_inspection_date": ["2013-09-01" if t == 1 else "" for t in range(n)],
            "last_rating": rng.choice(["Good", "Requires improvement", "Inadequate", ""], n),
        }
    )
    failing = (quality + rng.normal(scale=0.7, size=n) > 0.8).astype(int)
    return pd.DataFrame(rows), trusts, failing


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite store for the module: creating its tables is most of MLflow's cost."""
    path = tmp_path_factory.mktemp("mlflow")
    configure(path, experiment="test-banding")
    return path


@pytest.mark.filterwarnings("ignore")
def test_models_round_trip_through_registry(store):
    tmp_path = store
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    flags, trusts, failing = _nation()
    replica = CQC2013Model()
    learned = LearnedBandingModel()
    learned.fit(learned.features(flags, trusts), failing)
    versions = register_banding_models(replica, learned, load_banding_config())
    assert versions == {"banding-cqc2013": "1", "banding-learned": "1"}
    from mlflow import MlflowClient

    champion = load_banding_config().champion
    alias = MlflowClient().get_model_version_by_alias(MODEL_NAMES[champion], "champion")
    assert str(alias.version) == "1"
    inp = model_input(flags, trusts, "2013Q3", excluded=["I39"])
    direct_rep = replica.predict_bands(flags, trusts, "2013Q3", excluded=["I39"])
    direct_learned = learned.predict_bands(flags, trusts, "2013Q3", excluded=["I39"])
    got_rep = load_model("banding-cqc2013", "champion").predict(inp)
    got_learned = load_model("banding-learned", "1").predict(inp)
    pd.testing.assert_frame_equal(got_rep.reset_index(drop=True), direct_rep)
    pd.testing.assert_frame_equal(got_learned.reset_index(drop=True), direct_learned)
    assert got_rep.set_index("trust_code").loc["R000", "band"] == "1"  # special measures
    assert got_rep.set_index("trust_code").loc["R001", "band"] == "recently_inspected"
    assert (tmp_path / "mlartifacts").is_dir()


@pytest.mark.filterwarnings("ignore")
def test_log_banding_run(store):
    import mlflow

    configure(store, experiment="test-run")
    flags, trusts, _ = _nation(seed=1, n=30, k=20)
    bands = CQC2013Model().predict_bands(flags, trusts, "2013Q3")
    run_id = log_banding_run(
        flags,
        bands,
        "2013Q3",
        config=load_banding_config(),
        validation={"auc": 0.71, "brier": 0.18, "band1_recall_inadequate": 0.5},
    )
    run = mlflow.get_run(run_id)
    assert run.data.params["quarter"] == "2013Q3"
    assert run.data.params["cut_points"].count(",") == 4
    assert run.data.metrics["validation_auc"] == 0.71
    counts = bands["band"].value_counts()
    assert run.data.metrics["band_1"] == counts.get("1", 0)
    assert sum(v for k, v in run.data.metrics.items() if k.startswith("band_")) == 30
    assert run.data.metrics["phi_median"] == 2.0
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    assert {"flags.csv", "bands.csv", "config.json"} <= names
