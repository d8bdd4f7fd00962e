"""Case-mix risk models: one logistic model per diagnosis group (SHMI style).

References
----------
NHS Digital, Summary Hospital-level Mortality Indicator (SHMI) methodology specification
(covariates: age band, sex, admission method, comorbidity, month, year; palliative care coding is
not adjusted for but reported as context). Bottle & Aylin, Health Serv Res 2008;43:10.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit
from threadpoolctl import threadpool_limits

from surveillance.errors import SurveillanceError
from surveillance.mortality.encode import (
    EncodedSpells,
    covariate_digits,
    encode_spells,
    level_counts,
    month_label,
    month_number,
    pattern_digits,
    pattern_index,
)
from surveillance.mortality.irls import c_statistic, calibration_slope, fit_logistic_patterns
from surveillance.mortality.palliative import (
    PalliativeRates,
    marginal_risk,
    palliative_counts,
    palliative_rates,
)
from surveillance.mortality.spec import COVARIATE_NAMES, RiskSpec, load_risk_spec
from surveillance.periods import Quarter


def resolve_end_month(end: Quarter | str | pd.Timestamp | None, fallback: int) -> int:
    """Months since 1970-01 of the last month of a window given as quarter, date or None."""
    if end is None:
        return int(fallback)
    if isinstance(end, Quarter):
        return month_number(end.end)
    if isinstance(end, str) and "Q" in end:
        return month_number(Quarter.parse(end).end)
    return month_number(pd.Timestamp(end))


def fit_window(spec: RiskSpec, end_month: int) -> tuple[int, int]:
    """First and last month (months since 1970-01) of the fit window for reference ``end_month``:
    ``spec.fit_months`` months ending ``spec.fit_lag_months`` before it."""
    last = int(end_month) - spec.fit_lag_months
    return last - spec.fit_months + 1, last


@dataclass
class GroupModel:
    """Fitted model of one diagnosis group."""

    diagnosis_group: str
    level: str
    covariates: list[str]
    coef: np.ndarray
    std_error: np.ndarray
    spells: int
    deaths: int
    iterations: int
    converged: bool


class RiskModel:
    """Per-diagnosis-group logistic risk model fitted on aggregated covariate patterns.

    Parameters
    ----------
    spec : RiskSpec, path to a YAML spec, or None for ``models/risk/default.yaml``.
    outcome : overrides the spec's outcome column (``died_30d`` or ``died_in_hospital``).

    Attributes after ``fit``: ``groups_`` (one row per group: level used, sizes, c-statistic,
    O/E and calibration slope in the fitted data), ``end_month_`` (``YYYY-MM`` of the last fitted
    month: year index 0 is the 12 months ending there), ``national_rate_``.
    """

    def __init__(self, spec: RiskSpec | str | Path | None = None, outcome: str | None = None):
        self.spec = spec if isinstance(spec, RiskSpec) else load_risk_spec(spec)
        if outcome is not None:
            self.spec = self.spec.model_copy(update={"outcome": outcome})
        self.outcome = self.spec.outcome

    # ------------------------------------------------------------------ design
    @property
    def sizes_(self) -> np.ndarray:
        return level_counts(self.spec)

    def _level_names(self) -> list[list[str]]:
        c = self.spec.covariates

        def bands(edges: list[float]) -> list[str]:
            e = [int(v) if float(v).is_integer() else v for v in edges]
            out = [
                f"{a}-{b - 1}" if isinstance(a, int) and isinstance(b, int) else f"{a}-{b}"
                for a, b in zip(e, e[1:], strict=False)
            ]
            return out + [f"{e[-1]}+"]

        dep = list(c.deprivation.levels) + (["missing"] if c.deprivation.missing_level else [])
        if c.admission_month.encoding == "month":
            months = [f"{m:02d}" for m in range(1, 13)]
        else:
            months = ["winter", "spring", "summer", "autumn"]
        return [
            bands(c.age_band.edges),
            list(c.sex.levels),
            list(c.admission_method.levels),
            bands(c.comorbidity_band.edges),
            dep,
            months,
            [str(i) for i in range(self.spec.n_years)],
            ["no", "yes"] if c.palliative is not None else ["any"],
        ]

    def _level_matrix(self, name: str) -> np.ndarray:
        """Design rows of each level of covariate ``name`` (levels x coefficients).

        Treatment coding (first level the reference) for every covariate but a ``linear`` year
        index, whose one coefficient is the change in log-odds per year forward (level k, k
        years before the reference year, has value -k)."""
        size = int(self.sizes_[COVARIATE_NAMES.index(name)])
        if self._linear_year(name):
            return -np.arange(size, dtype=float)[:, None]
        return np.eye(size)[:, 1:]

    def _linear_year(self, name: str) -> bool:
        return name == "year_index" and self.spec.covariates.year_index.encoding == "linear"

    def _design(self, digits: np.ndarray, covariates: list[str]) -> np.ndarray:
        """Intercept plus each covariate's level rows (:meth:`_level_matrix`) for ``covariates``."""
        cols = [np.ones((len(digits), 1))]
        for name in covariates:
            j = COVARIATE_NAMES.index(name)
            cols.append(self._level_matrix(name)[digits[:, j]])
        return np.hstack(cols)

    def _terms(self, covariates: list[str]) -> list[str]:
        names = self._level_names()
        terms = ["intercept"]
        for name in covariates:
            j = COVARIATE_NAMES.index(name)
            if self._linear_year(name):
                terms.append("year_index[trend per year]")
            else:
                terms += [f"{name}[{lvl}]" for lvl in names[j][1:]]
        return terms

    # ------------------------------------------------------------------ fit
    def encode(self, spells: pd.DataFrame) -> tuple[EncodedSpells, np.ndarray]:
        """Encoded spells and their covariate pattern numbers (needs a fitted ``end_month_``).

        The first call with the very frame ``fit`` saw whole (every spell in the fit window, as
        in the quarterly run) reuses the encoding ``fit`` made instead of encoding 45 million
        spells twice; the reuse is handed out once and then dropped.
        """
        cached = self.__dict__.pop("_fit_encoding", None)
        if cached is not None and cached[0]() is spells and cached[1] == len(spells):
            return cached[2], cached[3]
        enc = encode_spells(spells, self.outcome, self.spec.period_date)
        return enc, self.patterns(spells, enc.admission_day)

    def patterns(self, spells: pd.DataFrame, admission_day: np.ndarray) -> np.ndarray:
        """Covariate pattern number of each spell (``admission_day`` from its encoding), for the
        fitted reference month: what :meth:`encode` gives beside the encoding."""
        digits = covariate_digits(spells, self.spec, self._end, admission_day)
        return pattern_index(digits, self.sizes_)

    def fit(
        self, spells: pd.DataFrame, end: Quarter | str | pd.Timestamp | None = None
    ) -> RiskModel:
        """Fit every diagnosis group on the ``spec.fit_months`` months ending ``spec.fit_lag_months``
        before ``end`` (the reference month of the year index).

        ``end`` defaults to the last month present; spells outside the window are ignored.
        """
        enc = encode_spells(spells, self.outcome, self.spec.period_date)
        if len(enc.died) == 0:
            raise SurveillanceError("spells: no rows to fit the risk models on")
        self._end = resolve_end_month(end, enc.period_month.max())
        keep = self.fit_mask(enc.period_month, self._end)
        if not keep.any():
            first, last = fit_window(self.spec, self._end)
            raise SurveillanceError(
                f"spells: no spells in the fit window {month_label(first)} to {month_label(last)}"
            )
        whole = bool(keep.all())
        sub = spells if whole else spells.loc[keep]
        digits = covariate_digits(sub, self.spec, self._end, enc.admission_day[keep])
        pattern = pattern_index(digits, self.sizes_)
        del digits
        self.__dict__.pop("_fit_encoding", None)
        fitted = self._fit_arrays(enc.group[keep], enc.groups, pattern, enc.died[keep])
        if self.palliative_at_trust_rate:  # only such a model keeps the rates
            self.set_palliative_counts(palliative_counts(enc, keep))
        if whole:  # what encode(spells) would compute: reuse it once (see encode)
            self._fit_encoding = (weakref.ref(spells), len(spells), enc, pattern)
        return fitted

    def fit_mask(self, period_month: np.ndarray, end_month: int) -> np.ndarray:
        """Spells of the fit window for reference month ``end_month`` (:func:`fit_window`)."""
        first, last = fit_window(self.spec, end_month)
        return (period_month >= first) & (period_month <= last)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_fit_encoding", None)  # never pickle 45 million encoded spells with the model
        return state

    def _fit_arrays(
        self, group: np.ndarray, groups: np.ndarray, pattern: np.ndarray, died: np.ndarray
    ) -> RiskModel:
        # one BLAS thread: the pattern matrices are small and BLAS thread pools spin badly on a
        # shared 2-core machine
        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit_arrays_inner(group, groups, pattern, died)

    def _fit_arrays_inner(
        self, group: np.ndarray, groups: np.ndarray, pattern: np.ndarray, died: np.ndarray
    ) -> RiskModel:
        n_pat = int(np.prod(self.sizes_))
        key = group.astype(np.int64) * n_pat + pattern
        n_all = np.bincount(key, minlength=len(groups) * n_pat)
        d_all = np.bincount(key, weights=died, minlength=len(groups) * n_pat)
        del key
        return self._fit_counts(groups, n_all, d_all)

    def fit_counts(
        self,
        groups: np.ndarray,
        n_all: np.ndarray,
        d_all: np.ndarray,
        end: Quarter | str | pd.Timestamp,
    ) -> RiskModel:
        """Fit from spells already aggregated by diagnosis group and covariate pattern.

        ``n_all`` (spells) and ``d_all`` (deaths) have length ``len(groups) * prod(sizes_)`` and
        are indexed by ``group * prod(sizes_) + pattern`` (:func:`pattern_index` of
        :func:`covariate_digits` with the fit window ending at ``end``), ``groups`` sorted. The
        counts can be summed over partitions of the spells (months, trusts, files, Dask
        partitions): the model is the one :meth:`fit` gives on all the spells at once.
        """
        if end is None:
            raise ValueError("fit_counts needs the end of the fit window (e.g. '2013Q3')")
        self._end = resolve_end_month(end, 0)
        n_pat = int(np.prod(self.sizes_))
        n_all, d_all = np.asarray(n_all), np.asarray(d_all, dtype=float)
        if n_all.shape != (len(groups) * n_pat,) or d_all.shape != n_all.shape:
            raise ValueError(f"n_all and d_all must have length len(groups) * {n_pat}")
        if n_all.sum() == 0:
            raise SurveillanceError("spells: no rows to fit the risk models on")
        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit_counts(np.asarray(groups), n_all, d_all)

    def _fit_counts(self, groups: np.ndarray, n_all: np.ndarray, d_all: np.ndarray) -> RiskModel:
        n_pat = int(np.prod(self.sizes_))
        # deaths / spells (d_all sums whole numbers exactly, so this is died.sum() / len(died))
        self.national_rate_ = float(d_all.sum() / n_all.sum())
        self.models_: dict[str, GroupModel] = {}
        rows = []
        for g, name in enumerate(groups):
            sl = slice(g * n_pat, (g + 1) * n_pat)
            present = np.flatnonzero(n_all[sl])
            n_g, d_g = n_all[sl][present].astype(float), d_all[sl][present]
            gm = self._fit_group(str(name), present, d_g, n_g)
            self.models_[gm.diagnosis_group] = gm
            p = self._eta_patterns(gm, present)
            p = expit(p) if gm.coef[0] > -np.inf else np.zeros_like(p)
            rows.append(
                {
                    "diagnosis_group": gm.diagnosis_group,
                    "level": gm.level,
                    "n_terms": len(gm.coef),
                    "spells": gm.spells,
                    "deaths": gm.deaths,
                    "crude_rate": gm.deaths / gm.spells if gm.spells else float("nan"),
                    "c_statistic": c_statistic(p, d_g, n_g),
                    "oe_ratio": float(d_g.sum() / (n_g @ p)) if n_g @ p > 0 else float("nan"),
                    "calibration_slope": calibration_slope(p, d_g, n_g)
                    if gm.covariates
                    else float("nan"),
                    "iterations": gm.iterations,
                    "converged": gm.converged,
                }
            )
        self.groups_ = pd.DataFrame(rows)
        self.end_month_ = month_label(self._end)
        self._build_table()
        return self

    def _fit_group(
        self, name: str, present: np.ndarray, d: np.ndarray, n: np.ndarray
    ) -> GroupModel:
        spells, deaths = int(n.sum()), int(round(d.sum()))
        for lvl in self.spec.levels:
            if spells >= lvl.min_spells and deaths >= lvl.min_deaths:
                break
        if spells == 0:
            # present in the data but not in the fit window (a phase I fit: seen only in the
            # monitored months): the national crude rate, as for a group never seen
            rate = self.national_rate_
            eta = float(np.log(rate / (1.0 - rate))) if 0.0 < rate < 1.0 else -np.inf
            return GroupModel(
                name, "national", [], np.array([eta]), np.array([np.nan]), 0, 0, 0, True
            )
        if deaths == 0 or deaths == spells:
            # no deaths (or no survivors): p = 0 (1) as SHMI, or with ``crude_prior`` pseudo
            # deaths and survivors (0.5 each: Jeffreys) a small rate a chart can be judged against
            a = self.spec.crude_prior
            if a > 0:
                eta = float(np.log((deaths + a) / (spells - deaths + a)))
            else:
                eta = -np.inf if deaths == 0 else np.inf
            return GroupModel(
                name, lvl.name, [], np.array([eta]), np.array([np.nan]), spells, deaths, 0, True
            )
        covs = list(lvl.covariates)
        digits = pattern_digits(present, self.sizes_)
        X = self._design(digits, covs)
        fit = fit_logistic_patterns(
            X, d, n, ridge=self.spec.ridge, max_iter=self.spec.max_iter, tol=self.spec.tol
        )
        return GroupModel(
            name,
            lvl.name,
            covs,
            fit.coef,
            fit.std_error,
            spells,
            deaths,
            fit.iterations,
            fit.converged,
        )

    def _eta_patterns(self, gm: GroupModel, patterns: np.ndarray) -> np.ndarray:
        return self._eta_digits(gm, pattern_digits(patterns, self.sizes_))

    def _eta_digits(self, gm: GroupModel, digits: np.ndarray) -> np.ndarray:
        """Linear predictor by coefficient look-up per covariate (no design matrix)."""
        eta = np.full(len(digits), gm.coef[0])
        pos = 1
        for name in gm.covariates:
            j = COVARIATE_NAMES.index(name)
            levels = self._level_matrix(name)
            k = levels.shape[1]
            eta += (levels @ gm.coef[pos : pos + k])[digits[:, j]]
            pos += k
        return eta

    def _build_table(self) -> None:
        """p for every (group, pattern): prediction is then one gather per spell."""
        n_pat = int(np.prod(self.sizes_))
        digits = pattern_digits(np.arange(n_pat, dtype=np.int64), self.sizes_)
        self.group_names_ = np.array(sorted(self.models_), dtype=object).astype(str)
        table = np.empty((len(self.group_names_) + 1, n_pat))
        for g, name in enumerate(self.group_names_):
            table[g] = expit(self._eta_digits(self.models_[name], digits))
        table[-1] = self.national_rate_  # unseen diagnosis groups: national crude rate
        self._table = table

    # ------------------------------------------------------------------ predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "_table"):
            raise SurveillanceError("RiskModel is not fitted: call fit(spells) or RiskModel.load")

    def group_index(self, groups: np.ndarray) -> np.ndarray:
        """Row of the prediction table for each diagnosis group (unseen -> national rate row)."""
        self._check_fitted()
        idx = pd.Index(self.group_names_).get_indexer(np.asarray(groups).astype(str))
        return np.where(idx < 0, len(self.group_names_), idx)

    def predict_patterns(self, group_rows: np.ndarray, pattern: np.ndarray) -> np.ndarray:
        return self._table[group_rows, pattern]

    def predict(self, spells: pd.DataFrame) -> np.ndarray:
        """Predicted probability of the outcome for each spell (input order)."""
        self._check_fitted()
        enc, pattern = self.encode(spells)
        return self.predict_patterns(self.group_index(enc.groups)[enc.group], pattern)

    def predict_encoded(self, enc: EncodedSpells, pattern: np.ndarray) -> np.ndarray:
        return self.predict_patterns(self.group_index(enc.groups)[enc.group], pattern)

    @property
    def palliative_at_trust_rate(self) -> bool:
        """Whether the charts take palliative care at the trust's phase I coding rate
        (``covariates.palliative.charts: trust_rate``)."""
        pall = self.spec.covariates.palliative
        return pall is not None and pall.charts == "trust_rate"

    def set_palliative_counts(self, counts: pd.DataFrame) -> None:
        """Phase I palliative-coding rates (``palliative_rates_``) from per-chunk counts
        (:func:`surveillance.mortality.palliative.palliative_counts`), for a model whose charts
        use them (:attr:`palliative_at_trust_rate`)."""
        self.palliative_rates_ = palliative_rates(counts)

    def chart_prediction(self, enc: EncodedSpells, pattern: np.ndarray) -> np.ndarray:
        """The alert charts' risks before the baseline shift: the prediction, or with
        :attr:`palliative_at_trust_rate` the prediction at the trust's phase I palliative-coding
        rate (:mod:`surveillance.mortality.palliative`)."""
        if not self.palliative_at_trust_rate:
            return self.predict_encoded(enc, pattern)
        rates = getattr(self, "palliative_rates_", None)
        if rates is None:
            raise SurveillanceError(
                "the alert model takes palliative care at the trust's phase I rate but has no "
                "rates: fit it through fit_from_partials or fit_alert_model, or load it from "
                "alert_model.json"
            )
        j = COVARIATE_NAMES.index("palliative")
        stride = int(np.prod(self.sizes_[j + 1 :]))
        digit = (pattern // stride) % int(self.sizes_[j])
        not_coded = pattern - digit * stride
        rows = self.group_index(enc.groups)[enc.group]
        return marginal_risk(
            self.predict_patterns(rows, not_coded + stride),
            self.predict_patterns(rows, not_coded),
            rates.rates(enc),
        )

    def chart_risks(self, enc: EncodedSpells, pattern: np.ndarray) -> np.ndarray:
        """The alert charts' in-control risks: :meth:`chart_prediction` moved to the model's
        baseline (``baseline_``, a :class:`~surveillance.mortality.baseline.TypicalTrustBaseline`
        set by the quarterly run; none: as it is)."""
        p = self.chart_prediction(enc, pattern)
        baseline = getattr(self, "baseline_", None)
        if baseline is None:
            return p
        return baseline.adjust(p, baseline.shift_for(enc.groups)[enc.group])

    def coefficients(self) -> pd.DataFrame:
        """Long table: diagnosis_group, level, term, estimate, std_error, odds_ratio."""
        self._check_fitted()
        rows = []
        for name in self.group_names_:
            gm = self.models_[name]
            for term, b, se in zip(self._terms(gm.covariates), gm.coef, gm.std_error, strict=True):
                rows.append((name, gm.level, term, float(b), float(se)))
        out = pd.DataFrame(
            rows, columns=["diagnosis_group", "level", "term", "estimate", "std_error"]
        )
        out["odds_ratio"] = np.exp(out["estimate"])
        return out

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        self._check_fitted()
        baseline = getattr(self, "baseline_", None)
        extra = {} if baseline is None else {"baseline": baseline.to_dict()}
        rates = getattr(self, "palliative_rates_", None)
        if rates is not None:
            extra["palliative_rates"] = rates.to_dict()
        return extra | {
            "spec": self.spec.model_dump(),
            "end_month": self.end_month_,
            "national_rate": self.national_rate_,
            "groups": self.groups_.to_dict(orient="list"),
            "models": {
                name: {
                    "level": gm.level,
                    "covariates": gm.covariates,
                    "coef": [float(v) for v in gm.coef],
                    "std_error": [float(v) for v in gm.std_error],
                    "spells": gm.spells,
                    "deaths": gm.deaths,
                    "iterations": gm.iterations,
                    "converged": gm.converged,
                }
                for name, gm in self.models_.items()
            },
        }

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), sort_keys=True, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: Path | str) -> RiskModel:
        body = json.loads(Path(path).read_text())
        model = cls(RiskSpec.model_validate(body["spec"]))
        model._end = month_number(body["end_month"])
        model.end_month_ = body["end_month"]
        model.national_rate_ = float(body["national_rate"])
        model.groups_ = pd.DataFrame(body["groups"])
        model.models_ = {
            name: GroupModel(
                name,
                m["level"],
                m["covariates"],
                np.array(m["coef"], float),
                np.array(m["std_error"], float),
                m["spells"],
                m["deaths"],
                m["iterations"],
                m["converged"],
            )
            for name, m in body["models"].items()
        }
        model._build_table()
        if "baseline" in body:
            from surveillance.mortality.baseline import TypicalTrustBaseline

            model.baseline_ = TypicalTrustBaseline.from_dict(body["baseline"])
        if "palliative_rates" in body:
            model.palliative_rates_ = PalliativeRates.from_dict(body["palliative_rates"])
        return model
