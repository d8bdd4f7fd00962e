"""MLflow helpers: tracking store, the two banding models as registered pyfunc models, and the
quarterly banding run (params, metrics, artifacts).

Embedded default: ``sqlite:///<data dir>/mlflow.db`` with artifacts under ``<data dir>/mlartifacts``
(an explicit artifact location, so runs never write into the working directory). Registered
models: ``banding-cqc2013`` and ``banding-learned``; the alias ``champion`` sits on the version
of the model that ``models/banding/banding.yaml`` selects.

The pyfunc input is one frame: the flags rows (flags.csv columns and extras, ``in_banding``
marks indicators counted in banding), each row carrying its trust's columns from trusts.csv
(``trust_name``, ``region``, ``special_measures``, ``last_inspection_date``, ``last_rating``)
and the run's ``quarter``; see :func:`model_input`. The output is the bands.csv frame.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from surveillance.store import write_csv

TRUST_COLUMNS = ("trust_name", "region", "special_measures", "last_inspection_date", "last_rating")
MODEL_NAMES = {"cqc2013": "banding-cqc2013", "learned": "banding-learned"}
DEFAULT_EXPERIMENT = "surveillance-banding"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the SQLAlchemy / MLflow deprecation and future warnings inside MLflow calls."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"sqlalchemy.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"mlflow.*")
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"mlflow.*")
        warnings.filterwarnings("ignore", message=".*[Ss][Qq][Ll][Aa]lchemy.*")
        yield


def tracking_uri(data_dir: str | Path) -> str:
    """``sqlite:///<absolute data dir>/mlflow.db``."""
    return f"sqlite:///{Path(data_dir).resolve() / 'mlflow.db'}"


def configure(
    data_dir: str | Path, experiment: str = DEFAULT_EXPERIMENT, uri: str | None = None
) -> str:
    """Point MLflow at the data dir's store; create the experiment with an explicit artifact
    location (``<data dir>/mlartifacts``) if needed. Returns the experiment id."""
    import mlflow

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    with quiet():
        mlflow.set_tracking_uri(uri or tracking_uri(data_dir))
        exp = mlflow.get_experiment_by_name(experiment)
        if exp is None:
            artifacts = (data_dir.resolve() / "mlartifacts").as_uri()
            exp_id = mlflow.create_experiment(experiment, artifact_location=artifacts)
        else:
            exp_id = exp.experiment_id
        mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


# ---------------------------------------------------------------------------------------------
# pyfunc wrapper


def model_input(
    flags: pd.DataFrame, trusts: pd.DataFrame, quarter: str, excluded: Iterable[str] = ()
) -> pd.DataFrame:
    """One frame for the pyfunc models: flags rows + their trust's columns + ``quarter``."""
    t = trusts[["trust_code", *[c for c in TRUST_COLUMNS if c in trusts.columns]]].copy()
    for col in TRUST_COLUMNS:
        if col not in t.columns:
            t[col] = ""
    t["trust_code"] = t["trust_code"].astype(str)
    for col in TRUST_COLUMNS:
        t[col] = t[col].astype("string").fillna("").astype(str)
    f = flags.drop(columns=[c for c in TRUST_COLUMNS if c in flags.columns]).copy()
    f["trust_code"] = f["trust_code"].astype(str)
    excluded = set(excluded)
    counted = (
        f["in_banding"].astype(str).str.strip().str.lower().isin(["true", "1"])
        if "in_banding" in f.columns
        else True
    )  # flags read back from CSV carry "True"/"False" text
    f["in_banding"] = ~f["indicator_id"].isin(excluded) & counted
    out = f.merge(t, on="trust_code", how="left", validate="many_to_one")
    out["quarter"] = str(quarter)
    return out


def from_model_input(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str, list[str]]:
    """Inverse of :func:`model_input`: (flags, trusts, quarter, excluded indicators)."""
    quarters = df["quarter"].astype(str).unique()
    if len(quarters) != 1:
        raise ValueError(f"model input must hold one quarter, got {sorted(quarters)}")
    trusts = (
        df[["trust_code", *TRUST_COLUMNS]]
        .drop_duplicates("trust_code")
        .sort_values("trust_code")
        .reset_index(drop=True)
    )
    trusts = trusts.replace({"last_inspection_date": {"": None}})
    flags = df.drop(columns=[*TRUST_COLUMNS, "quarter"])
    in_banding = flags["in_banding"].astype(str).str.lower().isin(["true", "1"])
    excluded = sorted(flags.loc[~in_banding, "indicator_id"].unique())
    return flags, trusts, str(quarters[0]), excluded


def _pyfunc_class():
    import mlflow.pyfunc

    class BandingPyfunc(mlflow.pyfunc.PythonModel):
        """A fitted banding model (replica or learned) as an MLflow pyfunc model."""

        def __init__(self, model: Any):
            self.model = model

        def predict(self, context, model_input, params=None):  # no hints: no signature inference
            flags, trusts, quarter, excluded = from_model_input(model_input)
            return self.model.predict_bands(flags, trusts, quarter, excluded=excluded)

    return BandingPyfunc


def register_model(
    model: Any, name: str | None = None, champion: bool = False, run_id: str | None = None
) -> str:
    """Log ``model`` as a pyfunc model, register it (``banding-cqc2013`` / ``banding-learned``
    by default) and, when ``champion``, move the ``champion`` alias to this version.
    Uses the current tracking URI (see :func:`configure`). Returns the version."""
    import mlflow
    from mlflow import MlflowClient

    name = name or getattr(model, "name", None)
    if not name:
        raise ValueError("model has no registry name: pass name=")
    pyfunc = _pyfunc_class()(model)
    with quiet():
        ctx = mlflow.start_run(run_id=run_id) if run_id else mlflow.start_run(run_name=name)
        with ctx:
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=pyfunc,
                registered_model_name=name,
                pip_requirements=[],
            )
        version = str(info.registered_model_version)
        if champion:
            MlflowClient().set_registered_model_alias(name, "champion", version)
    return version


def register_banding_models(replica: Any, learned: Any | None, selection: Any) -> dict[str, str]:
    """Register the replica and (if given, fitted) learned model; the ``champion`` alias goes to
    the model ``selection.champion`` names (``models/banding/banding.yaml``). Returns
    {registered name: version}."""
    versions = {}
    for key, model in (("cqc2013", replica), ("learned", learned)):
        if model is None:
            continue
        name = MODEL_NAMES[key]
        versions[name] = register_model(model, name, champion=selection.champion == key)
    return versions


def load_model(name: str, alias: str = "champion"):
    """Load a registered banding model (pyfunc) by alias (or a version number as ``alias``)."""
    import mlflow.pyfunc

    ref = f"models:/{name}/{alias}" if str(alias).isdigit() else f"models:/{name}@{alias}"
    with quiet():
        return mlflow.pyfunc.load_model(ref)


# ---------------------------------------------------------------------------------------------
# the quarterly banding run


def _band_counts(bands: pd.DataFrame, prefix: str) -> dict[str, float]:
    counts = bands["band"].astype(str).value_counts()
    labels = [str(k) for k in range(1, 7)] + ["recently_inspected", "not_banded"]
    return {f"{prefix}band_{lab}": float(counts.get(lab, 0)) for lab in labels}


def _phi_summary(flags: pd.DataFrame) -> dict[str, float]:
    per = flags.groupby("indicator_id")["phi"].first().astype(float).dropna()
    if per.empty:
        return {}
    return {
        "phi_median": float(per.median()),
        "phi_p90": float(per.quantile(0.9)),
        "phi_max": float(per.max()),
        "phi_share_over_1": float((per > 1).mean()),
        "indicators_assessed": float(len(per)),
    }


def log_banding_run(
    flags: pd.DataFrame,
    bands: pd.DataFrame,
    quarter: str,
    config: Any = None,
    validation: dict[str, float] | None = None,
    other_bands: dict[str, pd.DataFrame] | None = None,
    extra_params: dict[str, Any] | None = None,
    run_name: str | None = None,
) -> str:
    """Log one quarterly banding run to the current experiment; return the MLflow run id.

    Params: the banding config (champion, cut-points, points, overrides, thresholds used by the
    flags). Metrics: band counts (and those of ``other_bands``, e.g. the challenger model's,
    prefixed by their key), flag counts, phi summary over indicators, and ``validation``
    (e.g. ``auc``, ``brier``, ``band1_recall_inadequate``). Artifacts: ``flags.csv``,
    ``bands.csv`` (and ``bands_<key>.csv`` for ``other_bands``), ``config.json``.
    """
    import mlflow

    params: dict[str, Any] = {"quarter": str(quarter)}
    cfg_json = "{}"
    if config is not None:
        dump = config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config)
        cfg_json = json.dumps(dump, sort_keys=True)
        if "champion" in dump:
            params["champion"] = dump["champion"]
            rep = dump.get("cqc2013", {})
        else:
            rep = dump
        if "cut_points" in rep:
            params["cut_points"] = ",".join(f"{c:g}" for c in rep["cut_points"])
        for k, v in rep.get("overrides", {}).items():
            params[f"override_{k}"] = v
        for k, v in rep.get("points", {}).items():
            params[f"points_{k}"] = v
        if "uncertainty" in rep:
            params["uncertainty_draws"] = rep["uncertainty"].get("n_draws")
            params["uncertainty_seed"] = rep["uncertainty"].get("seed")
    for col in ("threshold_risk", "threshold_elevated", "p_risk", "p_elevated"):
        if col in flags.columns:
            vals = pd.to_numeric(flags[col], errors="coerce").dropna().unique()
            params[f"flag_{col}"] = ",".join(f"{v:g}" for v in sorted(vals)[:10])
    params.update(extra_params or {})

    metrics = _band_counts(bands, "")
    metrics.update(_phi_summary(flags) if "phi" in flags.columns else {})
    for flag, n in flags["flag"].value_counts().items():
        metrics[f"flags_{flag}"] = float(n)
    for key, other in (other_bands or {}).items():
        metrics.update(_band_counts(other, f"{key}_"))
    for k, v in (validation or {}).items():
        if isinstance(v, int | float | np.floating) and np.isfinite(v):
            metrics[f"validation_{k}"] = float(v)

    with quiet(), mlflow.start_run(run_name=run_name or f"banding-{quarter}") as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            # the same byte-stable, formula-neutralised CSV as the published run
            write_csv(flags, tmp_path / "flags.csv")
            write_csv(bands, tmp_path / "bands.csv")
            (tmp_path / "config.json").write_text(cfg_json + "\n")
            for key, other in (other_bands or {}).items():
                write_csv(other, tmp_path / f"bands_{key}.csv")
            for f in sorted(os.listdir(tmp_path)):
                mlflow.log_artifact(str(tmp_path / f))
        return run.info.run_id
