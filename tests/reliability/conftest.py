"""Fixtures for the reliability tests: one small synthetic quarter, published twice."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rel_common import (  # noqa: E402
    CODE,
    HOSTILE_NAMES,
    HOSTILE_REGIONS,
    N_TRUSTS,
    QUARTER,
    run_options,
    subset_bundle,
)


@pytest.fixture(scope="session")
def code() -> dict:
    return dict(CODE)


@pytest.fixture(scope="session")
def synth_nation(tmp_path_factory) -> Path:
    """The synthetic nation at ``test`` scale, one quarter (about 3 s)."""
    from surveillance.synth.build import synthesise

    root = tmp_path_factory.mktemp("nation")
    synthesise(root, seed=2013, scale="test", quarter=QUARTER, quarters=1)
    return root / QUARTER


@pytest.fixture(scope="session")
def hostile_bundle(synth_nation, tmp_path_factory) -> Path:
    """12 trusts of the test nation, six named with formula or HTML payloads, two such regions."""
    import pandas as pd

    trusts = pd.read_csv(synth_nation / "trusts.csv", dtype=str, keep_default_na=False)
    codes = sorted(trusts["trust_code"])[:N_TRUSTS]
    target = tmp_path_factory.mktemp("hostile") / "data"
    subset_bundle(synth_nation, target, set(codes))
    trusts = pd.read_csv(target / "trusts.csv", dtype=str, keep_default_na=False)
    trusts = trusts.sort_values("trust_code").reset_index(drop=True)
    for i, name in enumerate(HOSTILE_NAMES):
        trusts.loc[i, "trust_name"] = name
    for i, region in enumerate(HOSTILE_REGIONS):
        trusts.loc[len(HOSTILE_NAMES) + i, "region"] = region
    trusts.to_csv(target / "trusts.csv", index=False, lineterminator="\n")
    return target


@pytest.fixture(scope="session")
def published(hostile_bundle, tmp_path_factory) -> dict[str, Path]:
    """The hostile quarter published twice from the same inputs: ``a`` with MLflow tracking and
    ``b`` without (so the comparison also shows tracking does not touch the outputs)."""
    from surveillance import pipeline

    outs = {}
    for label, mlflow in (("a", True), ("b", False)):
        out = tmp_path_factory.mktemp(f"published-{label}")
        pipeline.run_quarter(run_options(hostile_bundle, out, mlflow=mlflow))
        outs[label] = out
    return outs
