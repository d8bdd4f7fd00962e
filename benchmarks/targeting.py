"""Targeting benchmark: do the bands put the truly failing trusts first?

Over 20 synthetic nations (seeds 1..20, scale ``test``: the smallest scale that still has every
indicator), for the CQC-2013 replica and the learned model side by side: the share of truly
failing trusts (``ground_truth.json``) in band 1 and in bands 1-2, failing trusts left outside
bands 1-2, band-1 precision, and the AUC of each model's continuous score (replica: proportion
score; learned: predicted risk) for failing vs not.

No leakage of ground truth: the learned model for nation s is trained on the *other* 19
nations' flags and inspection ratings (target: latest rating Inadequate / Requires improvement,
history feature: the rating before it) and validated on nation s's own inspections (AUC, Brier,
band-1 recall of Inadequate). Band sizes are equal: the learned model uses the replica's band
counts in the same nation. Both models apply the same overrides (special measures -> band 1,
recently inspected, not banded); a ``ranking only`` variant with no overrides compares the
scores alone.

The replica's cut-points (models/banding/cqc2013.yaml) were calibrated by ``--calibrate`` on
seeds 101-105 (not the evaluation seeds): the median over those nations of the cut-points that
split the score-banded trusts so that, with special-measures trusts in band 1, the numeric bands
have the October 2013 proportions (24 / 20 / 30 / 25 / 24 / 38 of 161).

Mortality: the mortality module runs on each nation's spells (risk models, ratios, RA-CUSUM
alerts); at ``test`` scale most trust x group ratios fall below their minimum expected deaths and
are left out of banding by the coverage rule (reported in the JSON).

Usage: ``python benchmarks/targeting.py [--skip-slow] [--nations N] [--cache DIR] [--calibrate]``
(``--skip-slow`` uses 5 nations and no mortality stage).

An ``oracle`` row ranks the same trusts, with the same overrides and band sizes, by their TRUE
latent quality from ground_truth.json: it is not a model but the ceiling any model could reach,
because "failing" is a label drawn for 10% of trusts whose latent quality overlaps the others'.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_result  # noqa: E402

from surveillance import assess as A  # noqa: E402
from surveillance.banding.config import OCTOBER_2013_BAND_SIZES, load_cqc2013_config  # noqa: E402
from surveillance.banding.cqc2013 import CQC2013Model  # noqa: E402
from surveillance.banding.learned import (  # noqa: E402
    LearnedBandingModel,
    evaluate,
    time_split_validation,
    training_table,
)
from surveillance.banding.scoring import calibrate_cut_points, rescale_sizes  # noqa: E402
from surveillance.bundle import read_bundle  # noqa: E402
from surveillance.catalogue import load_catalogue  # noqa: E402

QUARTER = "2013Q3"
SCALE = "test"


def nation(seed: int, cache: Path, catalogue: pd.DataFrame, with_mortality: bool) -> dict:
    """Synthesise (cached) and assess one nation; returns flags, trusts, inspections, truth."""
    from surveillance.synth import synthesise

    root = cache / f"seed{seed}"
    flags_path = root / f"flags{'_m' if with_mortality else ''}.pkl"
    if not (root / "ground_truth.json").is_file():
        synthesise(root, seed=seed, scale=SCALE, quarter=QUARTER, quarters=1)
    b = read_bundle(root / QUARTER)
    truth = json.loads((root / "ground_truth.json").read_text())
    timing = {}
    if flags_path.is_file():
        flags = pd.read_pickle(flags_path)
    else:
        staff, _ = A.derive_staffing(b.staffing, QUARTER)
        activity = A.spells_activity(b.spells, QUARTER)
        intel = A.derive_intelligence(b.intelligence, QUARTER, b.trusts["trust_code"], activity)
        derived = [staff, intel]
        precomputed = None
        if with_mortality:
            from surveillance.pipeline import mortality

            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mr = mortality(b, catalogue, QUARTER)
            timing["mortality_s"] = time.perf_counter() - start
            derived.append(mr.indicators)
            precomputed = mr.precomputed
        rows = pd.concat(derived, ignore_index=True)
        start = time.perf_counter()
        flags = A.assess(
            b.indicators, catalogue, QUARTER, derived=rows, trusts=b.trusts, precomputed=precomputed
        )
        timing["assess_s"] = time.perf_counter() - start
        flags.attrs["excluded_from_banding"] = A.excluded_from_banding(flags)
        pd.to_pickle(flags, flags_path)
    return {
        "seed": seed,
        "flags": flags,
        "excluded": A.excluded_from_banding(flags),
        "trusts": b.trusts,
        "inspections": b.inspections,
        "failing": set(truth["failing_trusts"]),
        # ground truth, used ONLY for the oracle ceiling row (never by either model)
        "latent_badness": pd.Series(
            {
                c: -float(np.mean(list(v.values())))
                for c, v in truth["latent_quality"]["values"][QUARTER].items()
            }
        ),
        "timing": timing,
    }


def _metrics(bands: pd.DataFrame, score: pd.Series, failing: set[str]) -> dict:
    band = bands.set_index("trust_code")["band"].astype(str)
    is_fail = band.index.isin(list(failing))
    in1 = (band == "1").to_numpy()
    in12 = band.isin(["1", "2"]).to_numpy()
    s = score.reindex(band.index).fillna(-np.inf).to_numpy()
    return {
        "failing": int(is_fail.sum()),
        "failing_band1": int((is_fail & in1).sum()),
        "failing_band12": int((is_fail & in12).sum()),
        "failing_outside12": int((is_fail & ~in12).sum()),
        "band1_size": int(in1.sum()),
        "band12_size": int(in12.sum()),
        "auc": float(roc_auc_score(is_fail, s)) if 0 < is_fail.sum() < len(s) else np.nan,
    }


def _oracle_bands(replica_bands: pd.DataFrame, badness: pd.Series) -> pd.DataFrame:
    """Ceiling reference: the replica's overrides and band sizes, the other trusts ranked by
    their TRUE latent quality (ground truth). No model can do better than this ranking."""
    from surveillance.banding.scoring import bands_by_rank

    out = replica_bands.copy()
    reason = out["band_reason"].astype(str)
    rankable = out["band"].str.isdigit() & ~reason.str.startswith("special measures")
    sizes = [int((out.loc[rankable, "band"] == str(k)).sum()) for k in range(1, 7)]
    ranked = bands_by_rank(badness.reindex(out.loc[rankable, "trust_code"]).fillna(0.0), sizes)
    out.loc[rankable, "band"] = ranked.astype(str).to_numpy()
    return out


def _no_overrides(config):
    return config.model_copy(
        update={
            "overrides": config.overrides.model_copy(
                update={
                    "special_measures_band": None,
                    "recent_inspection_months": 0,
                    "min_applicable": 0,
                }
            )
        }
    )


def evaluate_nation(test: dict, train: list[dict], replica_cfg, learned_cfg) -> dict:
    """Both models on one held-out nation, learned model trained on the others."""
    model = LearnedBandingModel(learned_cfg)
    Xs, ys = [], []
    for n in train:
        X, y, _ = training_table(
            model, n["flags"], n["trusts"], n["inspections"], excluded=n["excluded"]
        )
        Xs.append(X)
        ys.append(y)
    model.fit(pd.concat(Xs), np.concatenate(ys))

    out = {"seed": test["seed"]}
    flags, trusts, excl, failing = test["flags"], test["trusts"], test["excluded"], test["failing"]
    for variant, rcfg, lcfg in (
        ("operational", replica_cfg, learned_cfg),
        ("ranking_only", _no_overrides(replica_cfg), _no_overrides(learned_cfg)),
    ):
        rep = CQC2013Model(rcfg, uncertainty=False).predict_bands(flags, trusts, QUARTER, excl)
        sizes = [int((rep["band"] == str(k)).sum()) for k in range(1, 7)]
        lm = LearnedBandingModel(lcfg)
        lm.estimator_, lm.feature_names_ = model.estimator_, model.feature_names_
        learned = lm.predict_bands(flags, trusts, QUARTER, excl, band_sizes=sizes)
        rep_score = rep.set_index("trust_code")["proportion_score"]
        learned_score = learned.set_index("trust_code")["risk"]
        oracle = _oracle_bands(rep, test["latent_badness"])
        out[variant] = {
            "replica": _metrics(rep, rep_score, failing),
            "learned": _metrics(learned, learned_score, failing),
            "oracle": _metrics(oracle, test["latent_badness"], failing),
            "band_sizes": sizes,
            "failing_not_banded_by_override": int(
                rep.loc[rep["trust_code"].isin(list(failing)), "band"]
                .isin(["recently_inspected", "not_banded"])
                .sum()
            ),
        }
        if variant == "operational":
            out["bands_learned_vs_replica_same_size"] = [
                int((learned["band"] == str(k)).sum()) == sizes[k - 1] for k in range(1, 7)
            ]
    # validation on this nation's own inspections (never used in training)
    X, y, ins = training_table(model, flags, trusts, test["inspections"], excluded=excl)
    risk = model.predict_proba(X)
    val = evaluate(risk, y)
    rep_val = (
        CQC2013Model(replica_cfg, uncertainty=False)
        .predict_bands(flags, trusts, QUARTER, excl)
        .set_index("trust_code")
    )
    learned_b = LearnedBandingModel(learned_cfg)
    learned_b.estimator_, learned_b.feature_names_ = model.estimator_, model.feature_names_
    lb = learned_b.predict_bands(
        flags,
        trusts,
        QUARTER,
        excl,
        band_sizes=[int((rep_val["band"] == str(k)).sum()) for k in range(1, 7)],
    ).set_index("trust_code")
    inadequate = ins.loc[ins["overall_rating"] == "Inadequate", "trust_code"]
    out["validation"] = {
        "n_inspections": int(len(y)),
        "learned_auc": val["auc"],
        "learned_brier": val["brier"],
        "prevalence": val["prevalence"],
        "replica_auc": float(
            roc_auc_score(y, rep_val["proportion_score"].reindex(X.index).fillna(0))
        )
        if 0 < y.sum() < len(y)
        else np.nan,
        "n_inadequate": int(len(inadequate)),
        "learned_band1_inadequate": int((lb["band"].reindex(inadequate) == "1").sum()),
        "replica_band1_inadequate": int((rep_val["band"].reindex(inadequate) == "1").sum()),
        "reliability": val["reliability"],
    }
    return out


def time_assess(root: Path, catalogue: pd.DataFrame) -> float:
    """Best of three wall times of assess() for one nation's quarter (derived rows included)."""
    b = read_bundle(root / QUARTER)
    staff, _ = A.derive_staffing(b.staffing, QUARTER)
    activity = A.spells_activity(b.spells, QUARTER)
    intel = A.derive_intelligence(b.intelligence, QUARTER, b.trusts["trust_code"], activity)
    rows = pd.concat([staff, intel], ignore_index=True)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        A.assess(b.indicators, catalogue, QUARTER, derived=rows, trusts=b.trusts)
        best = min(best, time.perf_counter() - start)
    return best


def calibrate(cache: Path, catalogue: pd.DataFrame, with_mortality: bool) -> tuple[float, ...]:
    """Median over seeds 101-105 of the cut-points reproducing the October 2013 band sizes."""
    cfg = load_cqc2013_config()
    cuts = []
    for seed in range(101, 106):
        n = nation(seed, cache, catalogue, with_mortality)
        bands = CQC2013Model(cfg, uncertainty=False).predict_bands(
            n["flags"], n["trusts"], QUARTER, n["excluded"]
        )
        reason = bands["band_reason"]
        scored = bands[~reason.str.contains("special measures|inspected|applicable")]
        n_sm = int(reason.str.contains("special measures").sum())
        # final numeric bands (scored + special measures in band 1) in October 2013 proportions
        sizes = rescale_sizes(OCTOBER_2013_BAND_SIZES, len(scored) + n_sm)
        sizes[0] = max(sizes[0] - n_sm, 0)
        cuts.append(calibrate_cut_points(scored["proportion_score"], sizes))
        print(f"seed {seed}: cut-points {np.round(cuts[-1], 4).tolist()}")
    med = tuple(float(np.round(v, 4)) for v in np.median(np.array(cuts), axis=0))
    print(f"median cut-points: {list(med)}")
    return med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-slow", action="store_true", help="5 nations, no mortality stage")
    ap.add_argument("--nations", type=int, default=20)
    ap.add_argument("--cache", type=Path, default=None, help="keep synthetic nations here")
    ap.add_argument("--calibrate", action="store_true", help="print cut-points from seeds 101-105")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    n_nations = 5 if args.skip_slow else args.nations
    with_mortality = not args.skip_slow
    cache = args.cache or Path(tempfile.mkdtemp(prefix="targeting-"))
    cache.mkdir(parents=True, exist_ok=True)
    catalogue = load_catalogue()
    if args.calibrate:
        calibrate(cache, catalogue, with_mortality)
        return

    start = time.perf_counter()
    nations = [nation(s, cache, catalogue, with_mortality) for s in range(1, n_nations + 1)]
    prep_s = time.perf_counter() - start
    replica_cfg = load_cqc2013_config()
    learned_cfg = LearnedBandingModel().config
    results = []
    for i, test in enumerate(nations):
        train = [n for j, n in enumerate(nations) if j != i]
        results.append(evaluate_nation(test, train, replica_cfg, learned_cfg))

    rows = []
    summary: dict = {}
    for variant in ("operational", "ranking_only"):
        for model in ("replica", "learned", "oracle"):
            m = pd.DataFrame([r[variant][model] for r in results])
            failing = m["failing"].sum()
            row = {
                "variant": variant,
                "model": model,
                "failing": int(failing),
                "share_band1": float(m["failing_band1"].sum() / failing),
                "share_band12": float(m["failing_band12"].sum() / failing),
                "failing_outside_12": int(m["failing_outside12"].sum()),
                "band1_precision": float(m["failing_band1"].sum() / m["band1_size"].sum()),
                "band12_precision": float(m["failing_band12"].sum() / m["band12_size"].sum()),
                "auc_mean": float(m["auc"].mean()),
                "failing_override_unbanded": int(
                    sum(r[variant]["failing_not_banded_by_override"] for r in results)
                ),
            }
            rows.append(row)
            summary[f"{variant}_{model}"] = row
    val = pd.DataFrame([r["validation"] for r in results])
    validation = {
        "learned_auc_mean": float(val["learned_auc"].mean()),
        "replica_auc_mean": float(val["replica_auc"].mean()),
        "learned_brier_mean": float(val["learned_brier"].mean()),
        "prevalence_mean": float(val["prevalence"].mean()),
        "brier_of_prevalence": float((val["prevalence"] * (1 - val["prevalence"])).mean()),
        "inadequate": int(val["n_inadequate"].sum()),
        "learned_band1_recall_inadequate": float(
            val["learned_band1_inadequate"].sum() / max(val["n_inadequate"].sum(), 1)
        ),
        "replica_band1_recall_inadequate": float(
            val["replica_band1_inadequate"].sum() / max(val["n_inadequate"].sum(), 1)
        ),
    }
    # time split: inspections to 2011 train, 2012-2013 validate (pooled over the nations)
    split = time_split_validation(
        learned_cfg,
        [(n["flags"], n["trusts"], n["inspections"], n["excluded"]) for n in nations],
        "2011-12-31",
    )
    validation.update({f"time_split_{k}": v for k, v in split.items()})
    assess_best = time_assess(cache / "seed1", catalogue)
    print_table(rows, title=f"Targeting over {n_nations} synthetic nations (scale {SCALE})")
    print_table([validation], title="Validation on each held-out nation's own inspections")
    op_r, op_l = summary["operational_replica"], summary["operational_learned"]
    target_outside = op_l["failing_outside_12"] <= op_r["failing_outside_12"] / 2
    target_precision = op_l["band1_precision"] > op_r["band1_precision"]
    assess_s = [n["timing"].get("assess_s") for n in nations if n["timing"].get("assess_s")]
    print(f"assess(): {assess_best:.3f} s for 161 trusts x {len(catalogue)} indicators (best of 3)")
    verdict = (
        f"learned leaves {op_l['failing_outside_12']} failing trusts outside bands 1-2 vs "
        f"replica {op_r['failing_outside_12']} (target <= half: {'met' if target_outside else 'not met'}); "
        f"band-1 precision {op_l['band1_precision']:.3f} vs {op_r['band1_precision']:.3f} "
        f"({'met' if target_precision else 'not met'}); AUC {op_l['auc_mean']:.3f} vs "
        f"{op_r['auc_mean']:.3f}; oracle (true latent quality) leaves "
        f"{summary['operational_oracle']['failing_outside_12']}, AUC "
        f"{summary['operational_oracle']['auc_mean']:.3f}"
    )
    print(verdict)
    payload = {
        "summary": f"{n_nations} nations: {verdict}",
        "nations": n_nations,
        "scale": SCALE,
        "quarter": QUARTER,
        "mortality_stage": with_mortality,
        "cut_points": list(replica_cfg.cut_points),
        "results": rows,
        "validation": validation,
        "target_outside_bands_12_met": bool(target_outside),
        "target_band1_precision_met": bool(target_precision),
        "assess_seconds_best_of_3": assess_best,
        "assess_seconds_median_first_run": float(np.median(assess_s)) if assess_s else None,
        "excluded_indicators_example": nations[0]["excluded"],
        "prep_seconds": prep_s,
        "per_nation": results,
    }
    path = write_result("targeting", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
