"""The synthetic nation's fixed facts: trusts, sizes, latent quality, case mix and the planted truth.

Everything here is drawn from ``numpy.random.Generator`` streams keyed by ``(seed, stream, ...)``
so that each part (a month of spells, a quarter's indicators) can be regenerated on its own and
comes out identical whatever window is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import yaml
from scipy.special import expit

from surveillance.periods import Quarter
from surveillance.synth.config import (
    _LOADER,
    DOMAINS,
    HERE,
    WORLDS,
    HarderWorld,
    NationConfig,
    RiskModelCoefficients,
    load_diagnosis_groups,
    load_nation_config,
    load_risk_model,
)

# Stream identifiers: one independent random stream per part of the nation.
STREAM_TRUSTS = 1
STREAM_DRIFT = 2
STREAM_SPELLS = 3
STREAM_INDICATORS = 4
STREAM_STAFFING = 5
STREAM_INTELLIGENCE = 6
STREAM_INSPECTIONS = 7
STREAM_PLANTED = 8
STREAM_HARDER = 9  # the harder world's own draws (trust extras, palliative truth): the default
# world never touches this stream, so its output does not change
CALIBRATION_SEED = 20130716  # fixed: the true risk model does not depend on the user's seed

CODE_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def rng_for(seed: int, stream: int, *keys: int) -> np.random.Generator:
    """An independent generator for one part of the nation (``SeedSequence`` entropy list)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(stream), *map(int, keys)]))


def month_ordinal(period: pd.Period | str) -> int:
    p = pd.Period(period, freq="M")
    return p.year * 12 + p.month - 1


def quarter_ordinal(q: Quarter) -> int:
    return q.year * 4 + q.q - 1


@dataclass(frozen=True)
class GroupArrays:
    """Diagnosis-group parameters as arrays indexed by group position."""

    names: np.ndarray
    weight: np.ndarray
    base_mortality: np.ndarray
    mean_age: np.ndarray
    sd_age: np.ndarray
    min_age: np.ndarray
    max_age: np.ndarray
    male_share: np.ndarray
    elective_share: np.ndarray
    mean_los: np.ndarray
    specialty: np.ndarray

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> GroupArrays:
        return cls(
            names=frame["diagnosis_group"].to_numpy(str),
            weight=frame["volume_weight"].to_numpy(float),
            base_mortality=frame["base_mortality"].to_numpy(float),
            mean_age=frame["mean_age"].to_numpy(float),
            sd_age=frame["sd_age"].to_numpy(float),
            min_age=frame["min_age"].to_numpy(float),
            max_age=frame["max_age"].to_numpy(float),
            male_share=frame["male_share"].to_numpy(float),
            elective_share=frame["elective_share"].to_numpy(float),
            mean_los=frame["mean_los"].to_numpy(float),
            specialty=frame["specialty"].to_numpy(str),
        )


@dataclass
class CaseMix:
    """Patient characteristics of a batch of spells (true comorbidity, before coding)."""

    age: np.ndarray  # int16
    male: np.ndarray  # bool
    emergency: np.ndarray  # bool
    comorbidity: np.ndarray  # int16, true Charlson-style index
    deprivation: np.ndarray  # int8, 1-5, 0 = missing
    deprivation_true: np.ndarray | None = None  # int8, 1-5, the quintile before it went missing


def deprivation_cdf(tilt: np.ndarray) -> np.ndarray:
    """Cumulative quintile shares (n_trusts, 5): a tilt > 0 leans towards deprived (5)."""
    logits = np.outer(tilt, np.arange(1, 6, dtype=float) - 3.0)
    probs = np.exp(logits)
    cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    cdf[:, -1] = 1.0
    return cdf


def draw_by_row_cdf(rng: np.random.Generator, cdf: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Index drawn from the categorical distribution ``cdf[row[i]]`` for every ``i``.

    One vectorised search: row ``r`` of the cumulative table is shifted by ``2 r``.
    """
    n_rows, k = cdf.shape
    flat = (cdf + 2.0 * np.arange(n_rows)[:, None]).ravel()
    u = rng.random(row.size)
    idx = np.searchsorted(flat, u + 2.0 * row, side="right") - row.astype(np.int64) * k
    return np.minimum(idx, k - 1)


def draw_case_mix(
    rng: np.random.Generator,
    g: np.ndarray,
    groups: GroupArrays,
    trust: np.ndarray,
    dep_cdf: np.ndarray,
    dep_missing: np.ndarray,
    paediatric: np.ndarray,
) -> CaseMix:
    """Draw age, sex, admission method, comorbidity and deprivation for spells in groups ``g``.

    ``trust`` indexes the per-trust arrays ``dep_cdf`` (see :func:`deprivation_cdf`),
    ``dep_missing`` (share of spells without a quintile) and ``paediatric``.
    """
    n = g.size
    child = paediatric[trust]
    age = rng.normal(groups.mean_age[g], groups.sd_age[g])
    child_age = rng.gamma(1.3, 4.0, size=n)
    age = np.where(child, np.minimum(child_age, 17.0), age)
    age = np.clip(np.rint(age), groups.min_age[g], groups.max_age[g])
    age = np.where(child, np.minimum(age, 17), age).astype(np.int16)
    male = rng.random(n) < groups.male_share[g]
    emergency = rng.random(n) >= groups.elective_share[g]
    lam = 0.9 * np.exp(0.03 * (age - 65.0)) * np.where(emergency, 1.2, 0.8)
    comorbidity = np.minimum(rng.poisson(lam), 20).astype(np.int16)
    quint = 1 + draw_by_row_cdf(rng, dep_cdf, trust)
    missing = rng.random(n) < dep_missing[trust]
    deprivation = np.where(missing, 0, quint).astype(np.int8)
    return CaseMix(age, male, emergency, comorbidity, deprivation, quint.astype(np.int8))


def linear_predictor(
    mix: CaseMix, g: np.ndarray, intercepts: np.ndarray, coef: RiskModelCoefficients
) -> np.ndarray:
    """The true model's linear predictor without trust, season, year or planted terms."""
    a = (mix.age.astype(float) - 65.0) / 10.0
    dep = np.where(mix.deprivation > 0, mix.deprivation.astype(float) - 3.0, 0.0)
    return (
        intercepts[g]
        + coef.age_per_decade * a
        + coef.age_squared * a * a
        + coef.male * mix.male
        + coef.emergency * mix.emergency
        + coef.comorbidity * np.minimum(mix.comorbidity, coef.comorbidity_cap)
        + coef.deprivation * dep
    )


def palliative_probability(
    mix: CaseMix, coef: RiskModelCoefficients, harder: HarderWorld
) -> np.ndarray:
    """Chance that a patient is truly palliative (harder world): logistic in age, comorbidity,
    admission method."""
    h = harder.palliative
    a = (mix.age.astype(float) - 65.0) / 10.0
    return expit(
        h.intercept
        + h.age_per_decade * a
        + h.comorbidity * np.minimum(mix.comorbidity, coef.comorbidity_cap)
        + h.emergency * mix.emergency
    )


def harder_linear_predictor(
    mix: CaseMix,
    g: np.ndarray,
    intercepts: np.ndarray,
    coef: RiskModelCoefficients,
    harder: HarderWorld,
    palliative: np.ndarray,
) -> np.ndarray:
    """The harder world's true linear predictor without trust, season, year or planted terms.

    The default model's terms with the TRUE deprivation quintile (so a missing quintile hides
    real risk), plus age hinges ``slope x max(age - knot, 0)`` and ``log_odds_ratio`` for a truly
    palliative patient.
    """
    true_dep = CaseMix(mix.age, mix.male, mix.emergency, mix.comorbidity, mix.deprivation_true)
    lp = linear_predictor(true_dep, g, intercepts, coef)
    age = mix.age.astype(float)
    for hinge in harder.age_hinges:
        lp += hinge.slope_per_year * np.maximum(age - hinge.knot, 0.0)
    return lp + harder.palliative.log_odds_ratio * palliative


def calibrate_intercepts(
    groups: GroupArrays, coef: RiskModelCoefficients, harder: HarderWorld | None = None
) -> np.ndarray:
    """Group intercepts so that an average trust's mortality equals ``base_mortality``.

    Solved by Newton's method on a fixed-seed sample of 5,000 spells per group. With ``harder``
    the sample carries the harder world's true terms (palliative, age hinges; its cosine winter
    averages to zero over the year).
    """
    rng = np.random.default_rng(CALIBRATION_SEED)
    n_groups = groups.names.size
    per = 5_000
    g = np.repeat(np.arange(n_groups), per)
    zero = np.zeros(g.size, dtype=np.int64)
    mix = draw_case_mix(
        rng, g, groups, zero, deprivation_cdf(np.zeros(1)), np.full(1, 0.02), np.zeros(1, bool)
    )
    if harder is None:
        base = linear_predictor(mix, g, np.zeros(n_groups), coef).reshape(n_groups, per)
        base = base + coef.winter * 0.25  # average season
    else:
        palliative = rng.random(g.size) < palliative_probability(mix, coef, harder)
        zeros = np.zeros(n_groups)
        base = harder_linear_predictor(mix, g, zeros, coef, harder, palliative)
        base = base.reshape(n_groups, per)
    b = np.log(groups.base_mortality / (1 - groups.base_mortality)) - base.mean(axis=1)
    for _ in range(50):
        p = expit(base + b[:, None])
        f = p.mean(axis=1) - groups.base_mortality
        step = f / np.maximum((p * (1 - p)).mean(axis=1), 1e-12)
        b -= step
        if np.max(np.abs(f / groups.base_mortality)) < 1e-6:
            break
    return b


@dataclass
class Nation:
    """The synthetic nation's fixed facts for one seed, scale and final quarter."""

    seed: int
    scale: str
    final_quarter: Quarter
    config: NationConfig
    coef: RiskModelCoefficients
    groups: GroupArrays
    trusts: pd.DataFrame  # one row per trust, sorted by trust_code (internal columns too)
    base_quality: np.ndarray  # (n_trusts, 5), latent quality without drift, higher = better
    intercepts: np.ndarray
    group_cdf: np.ndarray  # (n_trusts, n_groups) cumulative case-mix shares
    deteriorations: pd.DataFrame
    recoding: pd.DataFrame
    world: str = "default"
    _drift_cache: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def harder(self) -> HarderWorld | None:
        """The harder world's parameters, or None in the default world."""
        return self.config.harder if self.world == "harder" else None

    @property
    def n_trusts(self) -> int:
        return len(self.trusts)

    @property
    def scale_factor(self) -> float:
        """Spells at this scale per spell at national scale."""
        return self.config.scales[self.scale] / self.config.sizes.national_total

    # ---- latent quality -------------------------------------------------------------------
    def drift(self, quarter: Quarter) -> np.ndarray:
        """AR(1) drift of latent quality at ``quarter`` (started at the fixed epoch)."""
        target = quarter_ordinal(quarter)
        epoch = quarter_ordinal(Quarter.parse(self.config.epoch))
        if target < epoch:
            raise ValueError(f"quarter {quarter} is before the nation's epoch {self.config.epoch}")
        q = self.config.quality
        innov_sd = q.drift_sd * np.sqrt(1 - q.drift_rho**2)
        known = [k for k in self._drift_cache if k <= target]
        start = max(known) if known else epoch - 1
        d = self._drift_cache.get(start, np.zeros((self.n_trusts, len(DOMAINS))))
        for k in range(start + 1, target + 1):
            e = rng_for(self.seed, STREAM_DRIFT, k).normal(0.0, innov_sd, d.shape)
            d = q.drift_rho * d + e
            self._drift_cache[k] = d
        return self._drift_cache[target]

    def latent_quality(self, quarter: Quarter) -> np.ndarray:
        """Latent quality per trust and domain at ``quarter`` (higher = better, sd ~1)."""
        return self.base_quality + self.drift(quarter)

    def trust_effect(self, quarter: Quarter) -> np.ndarray:
        """Logit-scale mortality effect per trust at ``quarter`` (positive = more deaths)."""
        m = self.config.mortality
        effective = self.latent_quality(quarter)[:, DOMAINS.index("effective")]
        effect = -m.effective_sd * effective + self.trusts["mortality_noise"].to_numpy()
        if "worse_shift" in self.trusts:  # harder world: the worse minority
            effect = effect + self.trusts["worse_shift"].to_numpy()
        return effect

    @cached_property
    def paediatric(self) -> np.ndarray:
        return (self.trusts["specialty"] == "paediatric").to_numpy()

    @cached_property
    def deprivation_cdf(self) -> np.ndarray:
        return deprivation_cdf(self.trusts["deprivation_tilt"].to_numpy())

    def special_measures(self, quarter: Quarter) -> np.ndarray:
        start = pd.Timestamp(self.config.special_measures.start_date)
        chosen = self.trusts["special_measures_chosen"].to_numpy()
        return chosen & (quarter.end >= start)


# ---- building the nation ------------------------------------------------------------------


def _trust_sizes(rng: np.random.Generator, specialist: np.ndarray, cfg: NationConfig) -> np.ndarray:
    """Admitted spells a year: lognormal with the median fixed, spread solved for the total."""
    s = cfg.sizes
    z = rng.standard_normal(specialist.size) + np.where(specialist, s.specialist_shift, 0.0)
    z = z - np.median(z)

    def sizes(sigma: float) -> np.ndarray:
        return np.clip(s.median * np.exp(sigma * z), s.minimum, s.maximum)

    lo, hi = 0.05, 3.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if sizes(mid).sum() < s.national_total:
            lo = mid
        else:
            hi = mid
    return np.rint(sizes(0.5 * (lo + hi)))


def _trust_codes(rng: np.random.Generator, n: int) -> list[str]:
    """ODS-style codes ``R`` + two characters, second character 2-9 (unused by real trusts)."""
    pool = [f"R{a}{b}" for a in "23456789" for b in CODE_CHARS]
    if n > len(pool):
        raise ValueError(f"at most {len(pool)} synthetic trust codes available, asked for {n}")
    return sorted(rng.choice(pool, size=n, replace=False).tolist())


def _trust_names(
    rng: np.random.Generator, specialty: np.ndarray, foundation: np.ndarray
) -> list[str]:
    spec = yaml.load((HERE / "names.yaml").read_text(), Loader=_LOADER)
    places, counties = spec["places"], spec["counties"]
    used_place: dict[str, int] = {}
    names: list[str] = []
    seen: set[str] = set()
    for kind, ft in zip(specialty, foundation, strict=True):
        templates = (
            spec["general_templates"] if kind == "general" else spec["specialist_templates"][kind]
        )
        for _attempt in range(1000):
            template = templates[rng.integers(len(templates))]
            p1, p2 = rng.choice(places, size=2, replace=False)
            county = counties[rng.integers(len(counties))]
            base = template.format(place=p1, place2=p2, county=county)
            in_name = [p for p in (p1, p2) if "{place" in template and p in base]
            # A place names at most one general trust and appears in at most two names.
            first_ok = kind != "general" or not in_name or used_place.get(p1, 0) == 0
            if base not in seen and first_ok and all(used_place.get(p, 0) < 2 for p in in_name):
                break
        else:  # pragma: no cover - the name space is far larger than 161
            raise RuntimeError("could not find a unique synthetic trust name")
        seen.add(base)
        for p in in_name:
            used_place[p] = used_place.get(p, 0) + 1
        names.append(base + (" NHS Foundation Trust" if ft else " NHS Trust"))
    return names


def build_nation(seed: int, scale: str, final_quarter: Quarter, world: str = "default") -> Nation:
    """Draw the nation's trusts, latent quality, case mix and planted truth for ``seed``.

    ``world="harder"`` adds the ``harder`` section of nation.yaml on top of the same trusts,
    quality and recoding (see :func:`_harder_trusts`, :func:`_plant_harder_deteriorations`).
    """
    cfg = load_nation_config()
    if scale not in cfg.scales:
        raise ValueError(f"scale must be one of {sorted(cfg.scales)}, got {scale!r}")
    if world not in WORLDS:
        raise ValueError(f"world must be one of {list(WORLDS)}, got {world!r}")
    coef = load_risk_model()
    groups = GroupArrays.from_frame(load_diagnosis_groups())
    rng = rng_for(seed, STREAM_TRUSTS)
    n = cfg.n_trusts
    codes = _trust_codes(rng, n)

    specialty = np.array(["general"] * n, dtype=object)
    spec_idx = rng.choice(n, size=cfg.n_specialist, replace=False)
    kinds = [k for k, c in cfg.specialist_types.items() for _ in range(c)]
    specialty[spec_idx] = rng.permutation(np.array(kinds, dtype=object))
    specialist = specialty != "general"
    regions = rng.permutation(np.array([r for r, c in cfg.regions.items() for _ in range(c)]))
    size = _trust_sizes(rng, specialist, cfg)

    # Latent quality: correlated domains; failing trusts shifted down.
    k = len(DOMAINS)
    corr = np.full((k, k), cfg.quality.correlation) + (1 - cfg.quality.correlation) * np.eye(k)
    base = rng.multivariate_normal(np.zeros(k), corr, size=n, method="cholesky")
    n_fail = int(round(cfg.quality.failing_fraction * n))
    w = np.where(specialist, 0.3, 1.0)
    failing_idx = rng.choice(n, size=n_fail, replace=False, p=w / w.sum())
    failing = np.zeros(n, bool)
    failing[failing_idx] = True
    shift = np.array([cfg.quality.failing_shift[d] for d in DOMAINS])
    base[failing] += shift

    foundation = rng.random(n) < np.where(
        failing, cfg.foundation_share_failing, cfg.foundation_share
    )
    names = _trust_names(rng, specialty, foundation)

    # Special measures: mostly failing trusts, a few poor-but-not-failing ones (Keogh was a
    # selection on mortality, not a verdict on every domain).
    sm = np.zeros(n, bool)
    fail_general = np.flatnonzero(failing & ~specialist)
    n_sm_fail = min(cfg.special_measures.from_failing, fail_general.size)
    sm[rng.choice(fail_general, size=n_sm_fail, replace=False)] = True
    composite = base.mean(axis=1)
    others = np.flatnonzero(~failing & ~specialist & (composite < np.quantile(composite, 0.3)))
    n_other = min(cfg.special_measures.count - n_sm_fail, others.size)
    sm[rng.choice(others, size=n_other, replace=False)] = True

    m = cfg.mortality
    trusts = pd.DataFrame(
        {
            "trust_code": codes,
            "trust_name": names,
            "region": regions,
            "trust_type": np.where(specialist, "acute_specialist", "acute"),
            "specialty": specialty.astype(str),
            "foundation_trust": foundation,
            "annual_spells": size.astype(np.int64),
            "failing": failing,
            "special_measures_chosen": sm,
            "mortality_noise": rng.normal(0.0, m.trust_noise_sd, n),
            "palliative_rate": rng.uniform(*m.palliative_death_rate, n),
            "coding_depth": rng.gamma(2.0, m.coding_depth_mean / 2.0, n),
            "deprivation_tilt": rng.normal(0.0, 0.5, n),
            "deprivation_missing": rng.uniform(*m.deprivation_missing, n),
        }
    )
    for j, d in enumerate(DOMAINS):
        trusts[f"quality_{d}"] = base[:, j]

    # Case mix: each trust's group shares (specialists concentrate on their specialty).
    noise = rng.lognormal(0.0, 0.15, (n, groups.names.size))
    shares = groups.weight[None, :] * noise
    for i in np.flatnonzero(specialist):
        own = groups.specialty == specialty[i]
        row = shares[i]
        row = np.where(own, row / row[own].sum() * cfg.specialist_own_share, row)
        row = np.where(~own, row / row[~own].sum() * (1 - cfg.specialist_own_share), row)
        shares[i] = row
    shares /= shares.sum(axis=1, keepdims=True)
    group_cdf = np.cumsum(shares, axis=1)
    group_cdf[:, -1] = 1.0

    harder = cfg.harder if world == "harder" else None
    if harder is not None:
        _harder_trusts(rng_for(seed, STREAM_HARDER), trusts, harder)
    intercepts = calibrate_intercepts(groups, coef, harder)
    nation = Nation(
        seed=seed,
        scale=scale,
        final_quarter=final_quarter,
        config=cfg,
        coef=coef,
        groups=groups,
        trusts=trusts,
        base_quality=base,
        intercepts=intercepts,
        group_cdf=group_cdf,
        deteriorations=pd.DataFrame(),
        recoding=pd.DataFrame(),
        world=world,
    )
    if harder is None:
        nation.deteriorations = _plant_deteriorations(nation)
    else:
        nation.deteriorations = _plant_harder_deteriorations(nation, harder)
    nation.recoding = _plant_recoding(nation)
    return nation


def _plant_deteriorations(nation: Nation) -> pd.DataFrame:
    """Trust x group cells whose odds of death rise by ``odds_ratio`` from ``start_month``.

    Groups are drawn among those with at least 1% mortality, weighted towards more deaths but
    spanning small and large volumes; the start month is in the final quarter's last 12 months.
    """
    m = nation.config.mortality
    rng = rng_for(nation.seed, STREAM_PLANTED)
    g = nation.groups
    eligible = np.flatnonzero(g.base_mortality >= 0.01)
    months = nation.final_quarter.lookback_months(12)
    specialty = nation.trusts["specialty"].to_numpy()
    cells: set[tuple[int, int]] = set()
    rows = []
    # Weighted towards cells with more deaths (so some are detectable even at demo scale) while
    # still spanning small ones: group ~ volume x mortality (its share of deaths), trust ~ size.
    gw = g.weight[eligible] * g.base_mortality[eligible]
    size = nation.trusts["annual_spells"].to_numpy(float)
    while len(rows) < m.deteriorations:
        gi = int(rng.choice(eligible, p=gw / gw.sum()))
        allowed = np.flatnonzero((specialty == "general") | (specialty == g.specialty[gi]))
        tw = size[allowed]
        ti = int(rng.choice(allowed, p=tw / tw.sum()))
        start = months[int(rng.integers(len(months)))]
        odds = float(np.round(rng.uniform(*m.odds_ratio_range), 2))
        if (ti, gi) in cells:
            continue
        cells.add((ti, gi))
        rows.append((ti, gi, start, odds))
    frame = pd.DataFrame(rows, columns=["trust_index", "group_index", "start_month", "odds_ratio"])
    frame.insert(0, "trust_code", nation.trusts["trust_code"].to_numpy()[frame["trust_index"]])
    frame.insert(1, "diagnosis_group", g.names[frame["group_index"]])
    return frame.sort_values(["trust_code", "diagnosis_group"], ignore_index=True)


def _plant_recoding(nation: Nation) -> pd.DataFrame:
    """Trusts whose coding (palliative care, comorbidity depth) jumps part-way: deaths do not."""
    m = nation.config.mortality.recoding
    rng = rng_for(nation.seed, STREAM_PLANTED, 1)
    t = nation.trusts
    effective = t["quality_effective"].to_numpy()
    pool = np.flatnonzero(
        (t["specialty"] == "general").to_numpy() & (effective < np.median(effective))
    )
    n = m.palliative + m.comorbidity
    chosen = rng.choice(pool, size=n, replace=False)
    months = nation.final_quarter.lookback_months(18)[:12]
    rows = []
    for j, ti in enumerate(chosen):
        kind = "palliative" if j < m.palliative else "comorbidity"
        rows.append((str(t["trust_code"].iat[ti]), int(ti), kind, months[int(rng.integers(12))]))
    frame = pd.DataFrame(rows, columns=["trust_code", "trust_index", "kind", "start_month"])
    return frame.sort_values(["trust_code"], ignore_index=True)


def _harder_trusts(rng: np.random.Generator, trusts: pd.DataFrame, harder: HarderWorld) -> None:
    """Harder-world trust columns (in place): the worse minority's logit shift, palliative coding
    sensitivity and the trusts with concentrated missing deprivation."""
    n = len(trusts)
    specialist = (trusts["specialty"] != "general").to_numpy()
    wm = harder.worse_minority
    w = np.where(specialist, wm.specialist_weight, 1.0)
    worse = rng.choice(n, size=int(round(wm.fraction * n)), replace=False, p=w / w.sum())
    shift = np.zeros(n)
    shift[worse] = rng.uniform(*wm.logit_shift, worse.size)
    trusts["worse_shift"] = shift
    trusts["worse_minority"] = shift > 0
    trusts["palliative_sensitivity"] = rng.uniform(*harder.palliative.sensitivity, n)
    gaps = harder.deprivation_gaps
    general = np.flatnonzero(~specialist)
    chosen = rng.choice(general, size=min(gaps.trusts, general.size), replace=False)
    missing = trusts["deprivation_missing"].to_numpy().copy()
    missing[chosen] = rng.uniform(*gaps.missing_share, chosen.size)
    trusts["deprivation_missing"] = missing
    trusts["deprivation_gap"] = np.isin(np.arange(n), chosen)


def _plant_harder_deteriorations(nation: Nation, harder: HarderWorld) -> pd.DataFrame:
    """Planted charts of the harder world: odds ratios in equal numbers, start months in the
    first ``start_months`` of the 12 monitored months, and ``clusters`` diagnosis groups in which
    3-5 trusts deteriorate within a month or so of each other.

    ``large_charts`` cells are drawn with weight (expected deaths)^2, the rest as in
    :func:`_plant_deteriorations` (group by its share of deaths, trust by size), so the planted
    charts span volumes while enough of them have many expected deaths.
    """
    d = harder.deteriorations
    rng = rng_for(nation.seed, STREAM_PLANTED, 2)
    g = nation.groups
    eligible = np.flatnonzero(g.base_mortality >= 0.01)
    months = nation.final_quarter.lookback_months(12)[: d.start_months]
    specialty = nation.trusts["specialty"].to_numpy()
    size = nation.trusts["annual_spells"].to_numpy(float)
    gw = g.weight[eligible] * g.base_mortality[eligible]
    odds = np.resize(np.asarray(d.odds_ratios, float), d.count)
    odds = rng.permutation(odds)
    cells: dict[tuple[int, int], tuple[str, int | None]] = {}

    def trusts_for(gi: int) -> np.ndarray:
        return np.flatnonzero((specialty == "general") | (specialty == g.specialty[gi]))

    cluster_groups = rng.choice(eligible, size=d.clusters, replace=False, p=gw / gw.sum())
    for c, gi in enumerate(cluster_groups, start=1):
        allowed = trusts_for(int(gi))
        k = int(rng.integers(d.cluster_size[0], d.cluster_size[1] + 1))
        members = rng.choice(allowed, size=k, replace=False, p=size[allowed] / size[allowed].sum())
        centre = int(rng.integers(len(months)))
        for ti in members:
            at = centre + int(rng.integers(-d.cluster_start_spread, d.cluster_start_spread + 1))
            cells[(int(ti), int(gi))] = (months[min(max(at, 0), len(months) - 1)], c)
    # Large charts: cells weighted by the square of their expected deaths (national-scale size x
    # case-mix share x group mortality), so enough planted charts are big enough to judge.
    shares = np.diff(nation.group_cdf, axis=1, prepend=0.0)
    expected = size[:, None] * shares * g.base_mortality[None, :]
    allowed_cell = (specialty[:, None] == "general") | (specialty[:, None] == g.specialty[None, :])
    allowed_cell &= np.isin(np.arange(g.names.size), eligible)[None, :]
    allowed_cell[:, cluster_groups] = False
    for ti, gi in list(cells):
        allowed_cell[ti, gi] = False
    w2 = np.where(allowed_cell, expected, 0.0).ravel() ** 2
    n_large = min(d.large_charts, d.count - len(cells))
    for flat in rng.choice(w2.size, size=n_large, replace=False, p=w2 / w2.sum()):
        ti, gi = divmod(int(flat), g.names.size)
        cells[(ti, gi)] = (months[int(rng.integers(len(months)))], None)
    while len(cells) < d.count:
        gi = int(rng.choice(eligible, p=gw / gw.sum()))
        allowed = trusts_for(gi)
        ti = int(rng.choice(allowed, p=size[allowed] / size[allowed].sum()))
        start = months[int(rng.integers(len(months)))]
        if (ti, gi) in cells or gi in cluster_groups:
            continue  # clustered groups hold exactly their cluster's trusts
        cells[(ti, gi)] = (start, None)
    rows = [
        (ti, gi, start, float(o), cluster)
        for ((ti, gi), (start, cluster)), o in zip(cells.items(), odds, strict=True)
    ]
    frame = pd.DataFrame(
        rows, columns=["trust_index", "group_index", "start_month", "odds_ratio", "cluster"]
    )
    frame["cluster"] = pd.Series([r[4] for r in rows], dtype=object)  # int or None
    frame.insert(0, "trust_code", nation.trusts["trust_code"].to_numpy()[frame["trust_index"]])
    frame.insert(1, "diagnosis_group", g.names[frame["group_index"]])
    return frame.sort_values(["trust_code", "diagnosis_group"], ignore_index=True)
