"""Seeded spell simulator with known risk-model coefficients and planted deteriorations.

Used by the mortality tests and benchmarks (the synthetic nation in ``surveillance.synth`` is the
realistic generator; this one is small, fast, and its truth is exactly the risk model's own
parametrisation so coefficient recovery and detection can be measured).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import expit

from surveillance.mortality.encode import covariate_digits, month_number
from surveillance.mortality.spec import RiskSpec, load_risk_spec

# Shared covariate effects (log odds, first level = reference), scaled per group by a factor.
BASE_EFFECTS: dict[str, np.ndarray] = {
    "age_band": np.array([0.0, 0.4, 0.9, 1.3, 1.7, 2.1, 2.5, 2.8]),
    "sex": np.array([0.0, -0.15]),
    "admission_method": np.array([0.0, 0.9]),
    "comorbidity_band": np.array([0.0, 0.3, 0.55, 0.85, 1.2]),
    "deprivation": np.array([0.0, 0.04, 0.08, 0.12, 0.18, 0.1]),
    "admission_month": 0.12 * np.cos(2 * np.pi * np.arange(12) / 12) - 0.12,
    "year_index": np.array([0.0, 0.06, 0.12]),
}


@dataclass(frozen=True)
class Deterioration:
    """From ``start_month`` (``YYYY-MM``, period date) on, the chart's odds of death x odds_ratio."""

    trust_code: str
    diagnosis_group: str
    start_month: str
    odds_ratio: float


@dataclass
class SimulatedSpells:
    spells: pd.DataFrame
    intercepts: dict[str, float]
    scale: dict[str, float]
    trust_log_or: dict[str, float]
    deteriorations: list[Deterioration] = field(default_factory=list)
    worse_trusts: list[str] = field(default_factory=list)

    def true_coefficients(self, group: str) -> dict[str, np.ndarray]:
        """True effect arrays (reference level first) of one group."""
        return {k: self.scale[group] * v for k, v in BASE_EFFECTS.items()}


def simulate_spells(
    n_spells: int = 200_000,
    n_trusts: int = 20,
    n_groups: int = 10,
    end: str = "2013-09",
    months: int = 36,
    seed: int = 0,
    trust_sd: float = 0.1,
    base_rates: np.ndarray | None = None,
    deteriorations: list[Deterioration] | None = None,
    palliative_rate: float = 0.03,
    spec: RiskSpec | None = None,
    worse_share: float = 0.0,
    worse_shift: float = 0.25,
) -> SimulatedSpells:
    """Simulate spells in the DESIGN.md section 4 columns over ``months`` months ending ``end``.

    Deaths follow the default risk spec's logistic model: group intercept + group scale x
    :data:`BASE_EFFECTS` + trust random effect (sd ``trust_sd`` on the log-odds scale) + planted
    deteriorations. ``base_rates`` (one per group) set the intercepts. ``worse_share`` of the
    trusts (drawn from a separate stream, so the rest of the draw is unchanged) are
    ``worse_shift`` log-odds worse on top of that spread (listed in ``worse_trusts``).
    """
    spec = spec or load_risk_spec()
    rng = np.random.default_rng(seed)
    trusts = np.array([f"T{i:03d}" for i in range(n_trusts)])
    groups = np.array([f"G{i:03d}" for i in range(n_groups)])
    trust_w = rng.lognormal(0.0, 0.5, n_trusts)
    group_w = rng.lognormal(0.0, 0.8, n_groups)
    trust = rng.choice(n_trusts, n_spells, p=trust_w / trust_w.sum()).astype(np.int32)
    group = rng.choice(n_groups, n_spells, p=group_w / group_w.sum()).astype(np.int32)

    end_m = month_number(end)

    start = (pd.Period(end, freq="M") - (months - 1)).start_time
    last = pd.Period(end, freq="M").end_time.normalize()
    span = (last - start).days + 1
    discharge = np.datetime64(start.date(), "D") + rng.integers(0, span, n_spells).astype(
        "timedelta64[D]"
    )
    los = np.minimum(rng.geometric(0.25, n_spells) - 1, 60)
    admission = discharge - los.astype("timedelta64[D]")

    age = np.clip(rng.normal(62, 20, n_spells), 0, 104).round().astype(np.int16)
    sex = np.where(rng.random(n_spells) < 0.52, "F", "M")
    emergency = rng.random(n_spells) < 0.55
    comorb = rng.poisson(np.clip((age - 30) / 25.0, 0.05, None)).astype(np.int16)
    dep = rng.integers(1, 6, n_spells).astype(float)
    dep[rng.random(n_spells) < 0.04] = np.nan

    frame = pd.DataFrame(
        {
            "spell_id": np.arange(1, n_spells + 1, dtype=np.int64),
            "trust_code": pd.Categorical.from_codes(trust, trusts),
            "admission_date": admission.astype("datetime64[ns]"),
            "discharge_date": discharge.astype("datetime64[ns]"),
            "diagnosis_group": pd.Categorical.from_codes(group, groups),
            "age": age,
            "sex": pd.Categorical(sex, categories=["F", "M"]),
            "admission_method": pd.Categorical.from_codes(
                emergency.astype(np.int8), ["elective", "emergency"]
            ),
            "comorbidity": comorb,
            "deprivation_quintile": pd.array(dep, dtype="Int64"),
        }
    )
    digits = covariate_digits(frame, spec, end_m)
    if base_rates is None:
        base_rates = np.exp(rng.uniform(np.log(0.002), np.log(0.05), n_groups))
    base_rates = np.asarray(base_rates, float)
    intercepts = np.log(base_rates / (1 - base_rates))
    scale = rng.uniform(0.7, 1.3, n_groups)
    eta = intercepts[group].copy()
    for j, name in enumerate(BASE_EFFECTS):
        eta += scale[group] * BASE_EFFECTS[name][digits[:, j]]
    trust_eff = rng.normal(0.0, trust_sd, n_trusts)
    worse = np.zeros(n_trusts, bool)
    if worse_share > 0:
        k = int(round(worse_share * n_trusts))
        worse[np.random.default_rng([seed, 1]).choice(n_trusts, k, replace=False)] = True
        trust_eff = trust_eff + worse_shift * worse
    eta += trust_eff[trust]
    planted = list(deteriorations or [])
    period_m = discharge.astype("datetime64[M]").astype(np.int64)
    t_index = {t: i for i, t in enumerate(trusts)}
    g_index = {g: i for i, g in enumerate(groups)}
    for det in planted:
        hit = (
            (trust == t_index[det.trust_code])
            & (group == g_index[det.diagnosis_group])
            & (period_m >= month_number(det.start_month))
        )
        eta[hit] += np.log(det.odds_ratio)
    p = expit(eta)
    died_30d = rng.random(n_spells) < p
    died_in_hospital = died_30d & (rng.random(n_spells) < 0.7)
    pall_p = np.clip(palliative_rate * np.where(died_30d, 8.0, 0.5), 0, 0.9)
    frame["palliative_care"] = rng.random(n_spells) < pall_p
    frame["died_in_hospital"] = died_in_hospital
    frame["died_30d"] = died_30d
    return SimulatedSpells(
        spells=frame,
        intercepts=dict(zip(groups, intercepts, strict=True)),
        scale=dict(zip(groups, scale, strict=True)),
        trust_log_or=dict(zip(trusts, trust_eff, strict=True)),
        deteriorations=planted,
        worse_trusts=[str(t) for t in trusts[worse]],
    )
