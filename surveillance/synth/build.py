"""Build the synthetic nation: one input bundle per quarter plus ``ground_truth.json``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from surveillance import __version__
from surveillance.periods import Quarter
from surveillance.synth.config import DOMAINS
from surveillance.synth.indicators import generate_indicators, load_profiles
from surveillance.synth.inspections import inspection_history, last_inspection
from surveillance.synth.intelligence import generate_intelligence
from surveillance.synth.io import format_bool, format_date, write_csv, write_json
from surveillance.synth.spells import SpellWindow, write_spells
from surveillance.synth.staffing import generate_staffing, wards
from surveillance.synth.world import Nation, build_nation

TRUST_COLUMNS = [
    "trust_code",
    "trust_name",
    "region",
    "trust_type",
    "foundation_trust",
    "special_measures",
    "last_inspection_date",
    "last_rating",
]
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
) -> SynthSummary:
    """Write one complete bundle per quarter in ``out/<quarter>/`` and ``out/ground_truth.json``.

    Same arguments give byte-identical files. ``scale`` is ``test``, ``demo`` or ``national``.
    """
    from surveillance.catalogue import load_catalogue

    out = Path(out)
    qs = bundle_quarters(quarter, quarters)
    final = qs[-1]
    clock = time.perf_counter()
    nation = build_nation(seed, scale, final)
    catalogue = load_catalogue() if catalogue is None else catalogue
    profiles = load_profiles() if profiles is None else profiles
    summary = SynthSummary(out, seed, scale, [str(q) for q in qs])
    summary.seconds["nation"] = time.perf_counter() - clock

    clock = time.perf_counter()
    windows = [SpellWindow(q, out / str(q) / "spells.parquet") for q in qs]
    tally = write_spells(nation, windows)
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


def ground_truth(nation: Nation, qs: list[Quarter], tally, summary: SynthSummary) -> dict:
    """What a perfect surveillance system would know: failing trusts, planted signals, model."""
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
    return {
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
