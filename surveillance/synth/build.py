"""Build the synthetic nation: one input bundle per quarter plus ``ground_truth.json``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from surveillance import __version__
from surveillance.contracts import COLUMN_KINDS
from surveillance.periods import Quarter
from surveillance.synth.config import DOMAINS
from surveillance.synth.indicators import generate_indicators, load_profiles
from surveillance.synth.inspections import inspection_history, last_inspection
from surveillance.synth.intelligence import generate_intelligence
from surveillance.synth.io import format_bool, format_date, write_csv, write_json
from surveillance.synth.spells import MONITORED_MONTHS, SpellWindow, write_spells
from surveillance.synth.staffing import generate_staffing, wards
from surveillance.synth.world import Nation, build_nation

TRUST_COLUMNS = list(COLUMN_KINDS["trusts"])  # trusts.csv columns (input contract)
BUNDLE_FILES = (
    "trusts.csv",
    "indicators.csv",
    "spells.parquet",
    "staffing.csv",
    "intelligence.csv",
    "inspections.csv",
)


@dataclass
class SynthSummary:
    """What was built: per-quarter row counts, file sizes and timings."""

    out: Path
    seed: int
    scale: str
    quarters: list[str]
    world: str = "default"
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    bytes: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def bundle_quarters(quarter: Quarter | str, quarters: int) -> list[Quarter]:
    """The ``quarters`` quarters ending at ``quarter``, oldest first."""
    q = Quarter.parse(str(quarter))
    if quarters < 1:
        raise ValueError(f"quarters must be >= 1, got {quarters}")
    out = [q]
    for _ in range(quarters - 1):
        out.append(out[-1].previous())
    return out[::-1]


def trusts_frame(nation: Nation, quarter: Quarter, history: pd.DataFrame) -> pd.DataFrame:
    t = nation.trusts
    last = last_inspection(history, t["trust_code"])
    frame = pd.DataFrame(
        {
            "trust_code": t["trust_code"],
            "trust_name": t["trust_name"],
            "region": t["region"],
            "trust_type": t["trust_type"],
            "foundation_trust": format_bool(t["foundation_trust"]),
            "special_measures": format_bool(pd.Series(nation.special_measures(quarter))),
            "last_inspection_date": format_date(last["last_inspection_date"]),
            "last_rating": last["last_rating"].fillna("").astype(object),
        }
    )
    return frame[TRUST_COLUMNS]


def synthesise(
    out: Path | str = Path("data/synth"),
    seed: int = 2013,
    scale: str = "demo",
    quarter: Quarter | str = "2013Q3",
    quarters: int = 2,
    catalogue: pd.DataFrame | None = None,
    profiles: dict[str, dict] | None = None,
    world: str = "default",
) -> SynthSummary:
    """Write one complete bundle per quarter in ``out/<quarter>/`` and ``out/ground_truth.json``.

    Same arguments give byte-identical files. ``scale`` is one of nation.yaml's ``scales``
    (``test``, ``demo``, ``m5``, ``m15``, ``national``). ``world="harder"`` builds the harder world
    (nation.yaml ``harder``) and also writes the oracle sidecar ``out/oracle_risks_<quarter>.parquet``
    for the final bundle; the default world is unchanged by it.
    """
    from surveillance.catalogue import load_catalogue

    out = Path(out)
    qs = bundle_quarters(quarter, quarters)
    final = qs[-1]
    clock = time.perf_counter()
    nation = build_nation(seed, scale, final, world=world)
    catalogue = load_catalogue() if catalogue is None else catalogue
    profiles = load_profiles() if profiles is None else profiles
    summary = SynthSummary(out, seed, scale, [str(q) for q in qs], world=world)
    summary.seconds["nation"] = time.perf_counter() - clock

    clock = time.perf_counter()
    windows = [SpellWindow(q, out / str(q) / "spells.parquet") for q in qs]
    oracle = out / oracle_file(final) if nation.harder is not None else None
    tally = write_spells(nation, windows, oracle)
    summary.seconds["spells"] = time.perf_counter() - clock

    clock = time.perf_counter()
    history = inspection_history(nation, final)
    ward_table = wards(nation)
    for q, window in zip(qs, windows, strict=True):
        d = out / str(q)
        hist_q = history[history["inspection_date"] <= q.end]
        tables = {
            "trusts.csv": trusts_frame(nation, q, hist_q),
            "indicators.csv": generate_indicators(nation, q, catalogue, profiles),
            "staffing.csv": generate_staffing(nation, q, ward_table),
            "intelligence.csv": generate_intelligence(nation, q),
            "inspections.csv": hist_q.assign(
                inspection_date=format_date(hist_q["inspection_date"])
            ),
        }
        for name, frame in tables.items():
            write_csv(frame, d / name)
        summary.counts[str(q)] = {
            **{name.split(".")[0]: len(frame) for name, frame in tables.items()},
            "spells": window.rows,
            "deaths_30d": window.deaths,
        }
        summary.bytes[str(q)] = {name: (d / name).stat().st_size for name in BUNDLE_FILES}
    summary.seconds["tables"] = time.perf_counter() - clock

    write_json(ground_truth(nation, qs, tally, summary), out / "ground_truth.json")
    return summary


def oracle_file(final: Quarter) -> str:
    """The oracle sidecar's path relative to the output directory (harder world)."""
    return f"oracle_risks_{final}.parquet"


def ground_truth(nation: Nation, qs: list[Quarter], tally, summary: SynthSummary) -> dict:
    """What a perfect surveillance system would know: failing trusts, planted signals, model.

    The harder world adds the fields described by :func:`harder_truth` (the default world's
    ground truth is unchanged, key for key).
    """
    t = nation.trusts
    latent = {
        str(q): {
            code: dict(zip(DOMAINS, map(float, row), strict=True))
            for code, row in zip(t["trust_code"], nation.latent_quality(q), strict=True)
        }
        for q in qs
    }
    det = nation.deteriorations.copy()
    det["spells_after_start"] = tally.spells.astype(int)
    det["deaths_after_start"] = tally.deaths.astype(int)
    det["expected_deaths_without_deterioration"] = tally.expected_without
    det["spells_before_start"] = tally.spells_before.astype(int)
    det["deaths_before_start"] = tally.deaths_before.astype(int)
    det["expected_deaths_before_start"] = tally.expected_before
    if nation.harder is not None:
        det["expected_deaths_per_year_monitored_window"] = tally.expected_monitored
        det["spells_monitored_window"] = tally.spells_monitored.astype(int)
        det["deaths_monitored_window"] = tally.deaths_monitored.astype(int)
    det = det.drop(columns=["trust_index", "group_index"])
    coef = nation.coef.model_dump()
    trusts = [
        {
            "trust_code": r.trust_code,
            "trust_type": r.trust_type,
            "specialty": r.specialty,
            "failing": bool(r.failing),
            "special_measures": bool(r.special_measures_chosen),
            "annual_spells_national_scale": int(r.annual_spells),
            "palliative_coding_rate_of_deaths": float(r.palliative_rate),
            "comorbidity_coding_depth": float(r.coding_depth),
        }
        for r in t.itertuples()
    ]
    effects = {
        str(q): dict(zip(t["trust_code"], map(float, nation.trust_effect(q)), strict=True))
        for q in qs
    }
    truth = {
        "generator": "surveillance.synth",
        "version": __version__,
        "seed": nation.seed,
        "scale": nation.scale,
        "spells_per_year_england": nation.config.scales[nation.scale],
        "quarters": [str(q) for q in qs],
        "counts": summary.counts,
        "n_trusts": len(t),
        "n_specialist": int((t["trust_type"] == "acute_specialist").sum()),
        "failing_trusts": sorted(t.loc[t["failing"], "trust_code"].tolist()),
        "special_measures_trusts": sorted(
            t.loc[t["special_measures_chosen"], "trust_code"].tolist()
        ),
        "special_measures_from": nation.config.special_measures.start_date,
        "trusts": trusts,
        "latent_quality": {
            "note": "per quarter, trust and domain; higher = better, about N(0, 1) before the "
            "failing shift",
            "values": latent,
        },
        "mortality_trust_effect": {
            "note": "logit-scale trust effect on 30-day death at each quarter (positive = worse)",
            "values": effects,
        },
        "planted_deteriorations": {
            "note": "odds of 30-day death multiplied by odds_ratio in this trust x diagnosis group "
            "for spells admitted from start_month (inclusive); tallies are for the final "
            "quarter's spells file",
            "rows": det.to_dict(orient="records"),
        },
        "recoding": {
            "note": "coding changes from start_month (palliative: palliative-care coding of deaths "
            "jumps; comorbidity: comorbidity coding depth rises); deaths do not change",
            "rows": nation.recoding.drop(columns=["trust_index"]).to_dict(orient="records"),
        },
        "risk_model": {
            "outcome": "died_30d",
            "formula": "logit p = intercept[group] + age_per_decade*(age-65)/10 + "
            "age_squared*((age-65)/10)^2 + male*[M] + emergency*[emergency] + "
            "comorbidity*min(true comorbidity, cap) + deprivation*(quintile-3, 0 if missing) + "
            "winter*[Dec-Feb] + year*(years since 2012-01) + trust effect + log(planted OR)",
            "note": "uses TRUE comorbidity; the spells file carries coded comorbidity, which adds "
            "each trust's coding depth (and the recoding jumps)",
            "coefficients": coef,
            "intercepts": dict(
                zip(nation.groups.names.tolist(), map(float, nation.intercepts), strict=True)
            ),
            "base_mortality": dict(
                zip(
                    nation.groups.names.tolist(),
                    map(float, nation.groups.base_mortality),
                    strict=True,
                )
            ),
        },
        "national_crude_mortality_target": float(
            np.sum(nation.groups.weight * nation.groups.base_mortality) / nation.groups.weight.sum()
        ),
    }
    if nation.harder is not None:
        harder_truth(truth, nation, qs[-1])
    return truth


#: Descriptions of every field the harder world adds to ground_truth.json (written into it).
HARDER_FIELDS = {
    "world": "'harder' (absent in the default world)",
    "worse_minority_trusts": "codes of the worse-minority trusts (trusts[].worse_minority)",
    "deprivation_gap_trusts": "codes of the trusts with concentrated missing deprivation",
    "harder_world.note": "what the harder world changes, in one paragraph",
    "harder_world.fields": "this table: every field the harder world adds, described",
    "harder_world.parameters": "the nation.yaml `harder` section this nation was built with",
    "harder_world.true_model": "the harder world's true logistic model of 30-day death",
    "harder_world.monitored_window": "first and last admission month of the alert charts' "
    "12-month monitored window (to the final quarter's end)",
    "oracle_risks.path": "the sidecar Parquet, relative to the directory of ground_truth.json",
    "oracle_risks.quarter": "the bundle it covers (the final quarter)",
    "oracle_risks.columns": "one row per spell of the final quarter's spells.parquet, same order: "
    "spell_id, p_in_control = TRUE risk without any planted deterioration (trust effect, worse "
    "minority, palliative, age hinges, season, year included), p_true = TRUE risk with it "
    "(equal to p_in_control outside planted charts and before their start month)",
    "trusts[].true_logit_effect": "the trust's logit-scale mortality effect in the final "
    "quarter (symmetric spread plus worse_minority_shift; also mortality_trust_effect)",
    "trusts[].worse_minority": "true for the ~10% of clearly worse trusts",
    "trusts[].worse_minority_shift": "their extra logit effect (0.20-0.35; 0 for the others)",
    "trusts[].palliative_coding_sensitivity": "share of TRULY palliative patients the trust "
    "codes palliative (any outcome); palliative_coding_rate_of_deaths is then the habit of "
    "coding the other deaths (and the recoding trusts' jump)",
    "trusts[].deprivation_missing_share": "the trust's chance that a spell's quintile is missing",
    "trusts[].deprivation_gap": "true for the few trusts with concentrated (30-100%) missing "
    "deprivation",
    "planted_deteriorations.rows[].cluster": "cluster number (1, 2, ...) when the chart is one "
    "of 3-5 trusts deteriorating at once in the same diagnosis group, else null",
    "planted_deteriorations.rows[].expected_deaths_per_year_monitored_window": "expected deaths "
    "WITHOUT the deterioration (sum of p_in_control) over the chart's spells admitted in the 12 "
    "monitored months and discharged by the final quarter's end: deaths a year",
    "planted_deteriorations.rows[].spells_monitored_window": "that chart's spells over the same "
    "12 months",
    "planted_deteriorations.rows[].deaths_monitored_window": "that chart's observed deaths over "
    "the same 12 months",
    "risk_model.note": "amended: the harder world's true model is harder_world.true_model",
    "planted_deteriorations.clusters": "per cluster: diagnosis group and member trusts",
}


def harder_truth(truth: dict, nation: Nation, final: Quarter) -> None:
    """Add the harder world's ground truth to ``truth`` in place (fields: :data:`HARDER_FIELDS`)."""
    h = nation.harder
    t = nation.trusts
    effect = nation.trust_effect(final)
    for row, e, r in zip(truth["trusts"], effect, t.itertuples(), strict=True):
        row["true_logit_effect"] = float(e)
        row["worse_minority"] = bool(r.worse_minority)
        row["worse_minority_shift"] = float(r.worse_shift)
        row["palliative_coding_sensitivity"] = float(r.palliative_sensitivity)
        row["deprivation_missing_share"] = float(r.deprivation_missing)
        row["deprivation_gap"] = bool(r.deprivation_gap)
    det = nation.deteriorations
    clusters = [
        {
            "cluster": int(c),
            "diagnosis_group": str(rows["diagnosis_group"].iat[0]),
            "trust_codes": sorted(rows["trust_code"].tolist()),
        }
        for c, rows in det[det["cluster"].notna()].groupby("cluster")
    ]
    truth["planted_deteriorations"]["clusters"] = clusters
    truth["planted_deteriorations"]["note"] += (
        "; harder world: odds ratios in equal numbers, start months in the first "
        f"{h.deteriorations.start_months} of the 12 monitored months, clustered groups (cluster)"
    )
    months = final.lookback_months(MONITORED_MONTHS)
    truth["world"] = "harder"
    truth["risk_model"]["note"] += (
        "; HARDER WORLD: the true model is harder_world.true_model (its year and winter terms "
        "replace coefficients.year and coefficients.winter; intercepts are recalibrated with it)"
    )
    truth["worse_minority_trusts"] = sorted(t.loc[t["worse_minority"], "trust_code"].tolist())
    truth["deprivation_gap_trusts"] = sorted(t.loc[t["deprivation_gap"], "trust_code"].tolist())
    truth["oracle_risks"] = {
        "path": oracle_file(final),
        "quarter": str(final),
        "columns": ["spell_id", "p_in_control", "p_true"],
        "note": HARDER_FIELDS["oracle_risks.columns"],
    }
    hinges = " + ".join(f"{x.slope_per_year}*max(age-{x.knot:g},0)" for x in h.age_hinges)
    truth["harder_world"] = {
        "note": "the harder world: a worse minority of trusts, palliative care a true risk "
        "factor and a coding habit, age effects not linear in the bands, a 2.5%-a-year fall "
        "and a cosine winter, missing deprivation concentrated in a few trusts, clustered and "
        "OR 2/3 planted deteriorations. Every field it adds is described in `fields`.",
        "fields": HARDER_FIELDS,
        "parameters": h.model_dump(),
        "true_model": "logit p = intercept[group] (recalibrated with these terms) + "
        "age_per_decade*(age-65)/10 + age_squared*((age-65)/10)^2 + " + hinges + " + male*[M] "
        "+ emergency*[emergency] + comorbidity*min(true comorbidity, cap) + "
        "deprivation*(TRUE quintile-3, also when the file's quintile is missing) + "
        f"{h.palliative.log_odds_ratio}*[truly palliative] + "
        f"{h.winter_amplitude}*cos(2*pi*(month-1)/12) + {h.year}*(years since 2012-01) + "
        "trust effect (incl. worse_minority_shift) + log(planted OR); truly palliative with "
        "probability expit(palliative.intercept + age_per_decade*(age-65)/10 + "
        "comorbidity*min(true comorbidity, cap) + emergency*[emergency])",
        "monitored_window": [months[0], months[-1]],
    }
