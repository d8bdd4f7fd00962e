"""Log a fitted :class:`RiskModel` to MLflow: spec and sizes as params, per-group c-statistic and
calibration as metrics, coefficients / group summary / saved model as artifacts."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np

from surveillance.mortality.risk_model import RiskModel


def _metric_key(text: str) -> str:
    """MLflow metric names allow alphanumerics, _ - . / and spaces: replace anything else."""
    return re.sub(r"[^0-9A-Za-z_\-./ ]", "_", text)


def log_risk_model(
    model: RiskModel,
    tracking_uri: str,
    artifact_location: str | Path | None = None,
    experiment: str = "risk-models",
    run_name: str | None = None,
) -> str:
    """Log ``model`` as one MLflow run; returns the run id.

    ``tracking_uri`` e.g. ``sqlite:///mlflow.db``; ``artifact_location`` (a directory) is used
    when the experiment is created. Metrics: ``c_statistic/<group>``, ``oe_ratio/<group>``,
    ``calibration_slope/<group>`` (NaN values skipped) and national summaries.
    """
    import mlflow
    from mlflow.entities import Metric, Param

    model._check_fitted()
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        loc = None
        if artifact_location is not None:
            loc = Path(artifact_location).resolve().as_uri()
        exp_id = client.create_experiment(experiment, artifact_location=loc)
    else:
        exp_id = exp.experiment_id
    run = client.create_run(exp_id, run_name=run_name or f"{model.spec.name}-{model.end_month_}")
    rid = run.info.run_id
    g = model.groups_
    params = {
        "spec_name": model.spec.name,
        "spec_sha256": model.spec.digest(),
        "outcome": model.outcome,
        "end_month": model.end_month_,
        "fit_months": model.spec.fit_months,
        "n_groups": len(g),
        "n_spells": int(g["spells"].sum()),
        "n_deaths": int(g["deaths"].sum()),
        **{f"n_level_{k}": int(v) for k, v in g["level"].value_counts().sort_index().items()},
    }
    metrics = []
    for _, row in g.iterrows():
        for name in ("c_statistic", "oe_ratio", "calibration_slope"):
            v = float(row[name])
            if np.isfinite(v):
                key = _metric_key(f"{name}/{row['diagnosis_group']}")
                metrics.append(Metric(key, v, 0, 0))
    w = g["deaths"].to_numpy(float)
    cs = g["c_statistic"].to_numpy(float)
    ok = np.isfinite(cs)
    if ok.any():
        metrics.append(
            Metric("c_statistic_death_weighted", float(np.average(cs[ok], weights=w[ok])), 0, 0)
        )
    metrics.append(Metric("national_rate", float(model.national_rate_), 0, 0))
    plist = [Param(k, str(v)) for k, v in params.items()]
    for i in range(0, max(len(metrics), 1), 900):  # MLflow batch limit is 1000 entries
        client.log_batch(rid, metrics=metrics[i : i + 900], params=plist if i == 0 else [])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model.coefficients().to_csv(tmp / "coefficients.csv", index=False)
        g.to_csv(tmp / "groups.csv", index=False)
        model.save(tmp / "risk_model.json")
        (tmp / "spec.json").write_text(model.spec.model_dump_json(indent=1))
        for f in sorted(tmp.iterdir()):
            client.log_artifact(rid, str(f))
    client.set_terminated(rid)
    return rid
