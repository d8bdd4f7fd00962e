"""A learned banding model: risk of an Inadequate / Requires improvement rating at inspection.

The 2013 bands predicted inspection ratings poorly (Griffiths et al. 2017). The usual suspects are
equal weights, double counting of correlated indicators and throwing away magnitude. This model:

* keeps magnitude: it uses the oriented adjusted z-scores (positive = worse), clipped to
  [-clip, clip], rather than 0/1/2 points;
* aggregates by domain (safe, effective, caring, responsive, well-led): per domain the mean and the
  maximum adjusted z, the share of indicators with z above ``z_threshold`` and the share flagged,
  so fifty correlated mortality ratios count as one domain signal, not fifty;
* adds mortality alerts / CUSUM signals, validated soft-intelligence rules and, where available,
  the previous inspection rating;
* fits a regularised logistic regression (standardised features, L2 penalty ``C``) wrapped in
  ``CalibratedClassifierCV`` (Platt sigmoid by default) so the probabilities are calibrated
  (check with :func:`evaluate`: Brier score and a reliability table);
* bands by risk rank with given band sizes (the replica's) so the two models compare on equal terms.

References
----------
Griffiths A et al. BMJ Qual Saf 2017;26:120. Spiegelhalter DJ et al. JRSS A 2012;175:1.
Platt J. Probabilistic outputs for support vector machines, 1999. Niculescu-Mizil A, Caruana R.
Predicting good probabilities with supervised learning, ICML 2005.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from surveillance.banding.config import LearnedConfig, load_learned_config
from surveillance.banding.scoring import (
    P_BAND_COLUMNS,
    assemble_bands,
    bands_by_rank,
    check_flags,
    override_labels,
    rescale_sizes,
    score_table,
    trust_frame,
)
from surveillance.banding.uncertainty import draw_spec
from surveillance.errors import SurveillanceError
from surveillance.periods import Quarter

RATING_ORDER = {"Outstanding": 0.0, "Good": 1.0, "Requires improvement": 2.0, "Inadequate": 3.0}
FLAGGED = ("risk", "elevated_risk")
ALERT_TYPES = ("cusum_z",)


@dataclass(frozen=True)
class _Layout:
    """Applicable rows sorted by (trust, domain) group, for vectorised aggregation."""

    trust_codes: np.ndarray
    domains: tuple[str, ...]
    rows: pd.DataFrame
    group: np.ndarray  # group id per row = trust_idx * D + domain_idx
    starts: np.ndarray  # first row of each present group
    present: np.ndarray  # group ids present
    has_z: np.ndarray


def _layout(
    flags: pd.DataFrame, trust_codes: Sequence[str], domains: Sequence[str], excluded: Iterable[str]
) -> _Layout:
    codes = np.asarray(sorted(trust_codes), dtype=object)
    pos = {c: i for i, c in enumerate(codes)}
    dpos = {d: i for i, d in enumerate(domains)}
    use = flags[
        (flags["flag"] != "not_applicable")
        & ~flags["indicator_id"].isin(set(excluded))
        & flags["trust_code"].isin(pos)
        & flags["domain"].isin(dpos)
    ].copy()
    use["_t"] = use["trust_code"].map(pos).astype(np.int64)
    use["_d"] = use["domain"].map(dpos).astype(np.int64)
    use = use.sort_values(["_t", "_d", "indicator_id"], kind="mergesort").reset_index(drop=True)
    group = (use["_t"] * len(domains) + use["_d"]).to_numpy(np.int64)
    if len(group):
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    else:
        starts = np.zeros(0, dtype=np.int64)
    z = pd.to_numeric(use.get("z_adjusted", pd.Series(np.nan, index=use.index)), errors="coerce")
    has_z = np.isfinite(z.to_numpy(float))
    return _Layout(codes, tuple(domains), use, group, starts, group[starts], has_z)


def _aggregate(
    lay: _Layout, z: np.ndarray, flagged: np.ndarray, clip: float, z_threshold: float
) -> np.ndarray:
    """Domain aggregates for k draws at once: z, flagged (k x rows) -> (k, trusts, domains, 4)."""
    k = z.shape[0]
    n_t, n_d = len(lay.trust_codes), len(lay.domains)
    out = np.zeros((k, n_t * n_d, 4))
    if lay.starts.size == 0:
        return out.reshape(k, n_t, n_d, 4)
    zc = np.clip(np.where(lay.has_z, z, 0.0), -clip, clip)
    n_z = np.add.reduceat(lay.has_z.astype(float), lay.starts)
    n_all = np.diff(np.r_[lay.starts, len(lay.group)]).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.add.reduceat(zc, lay.starts, axis=1) / n_z
        mx = np.maximum.reduceat(np.where(lay.has_z, zc, -np.inf), lay.starts, axis=1)
        over = np.add.reduceat((zc > z_threshold) & lay.has_z, lay.starts, axis=1) / n_z
        share = np.add.reduceat(flagged.astype(float), lay.starts, axis=1) / n_all
    stacked = np.stack([mean, mx, over, share], axis=-1)
    stacked[~np.isfinite(stacked)] = 0.0  # a domain with no z-scored indicator is neutral
    out[:, lay.present, :] = stacked
    return out.reshape(k, n_t, n_d, 4)


def _history(trusts: pd.DataFrame, codes: np.ndarray) -> pd.DataFrame:
    t = trusts.set_index("trust_code").reindex(codes)
    rating = (
        t["last_rating"] if "last_rating" in t.columns else pd.Series(np.nan, index=t.index)
    ).astype("string")
    unknown = rating.notna() & (rating.str.strip() != "") & ~rating.isin(list(RATING_ORDER))
    if unknown.any():
        raise SurveillanceError(
            f"trusts column 'last_rating': unknown rating(s) {rating[unknown].unique()[:5].tolist()}"
            f" (expected one of {list(RATING_ORDER)} or empty)"
        )
    score = rating.map(RATING_ORDER).astype(float)
    return pd.DataFrame(
        {
            "prev_rating": score.fillna(1.5).to_numpy(),
            "prev_rating_missing": score.isna().to_numpy(),
        },
        index=codes,
    ).astype(float)


class LearnedBandingModel:
    """Estimator-like learned banding model (see module docstring).

    Parameters
    ----------
    config : LearnedConfig or path to YAML, default ``models/banding/learned.yaml``.
    """

    name = "banding-learned"

    def __init__(self, config: LearnedConfig | str | Path | None = None):
        if config is None or isinstance(config, str | Path):
            config = load_learned_config(config)
        self.config = config
        self.estimator_ = None
        self.feature_names_: list[str] | None = None

    # -- features -----------------------------------------------------------------------------
    def _feature_names(self) -> list[str]:
        names = [
            f"{d}_{a}"
            for d in self.config.features.domains
            for a in ("mean_z", "max_z", "share_over", "share_flagged")
        ]
        names += ["alerts", "rule_flags"]
        if self.config.features.use_inspection_history:
            names += ["prev_rating", "prev_rating_missing"]
        return names

    def features(
        self, flags: pd.DataFrame, trusts: pd.DataFrame, excluded: Iterable[str] = ()
    ) -> pd.DataFrame:
        """One row per trust (index trust_code, sorted), columns :attr:`feature_names_`."""
        check_flags(flags)
        codes = trust_frame(trusts)["trust_code"].to_numpy()
        lay = _layout(flags, codes, self.config.features.domains, excluded)
        z = pd.to_numeric(lay.rows.get("z_adjusted"), errors="coerce").to_numpy(float)[None, :]
        flagged = lay.rows["flag"].isin(FLAGGED).to_numpy()[None, :]
        return self._features_from(lay, z, flagged, trusts)[0]

    def _features_from(
        self, lay: _Layout, z: np.ndarray, flagged: np.ndarray, trusts: pd.DataFrame
    ) -> list[pd.DataFrame]:
        f = self.config.features
        agg = _aggregate(lay, z, flagged, f.clip, f.z_threshold)
        k, n_t = agg.shape[0], agg.shape[1]
        fixed = self._fixed_features(lay, trusts)
        frames = []
        for i in range(k):
            body = agg[i].reshape(n_t, -1)
            df = pd.DataFrame(
                body, index=lay.trust_codes, columns=self._feature_names()[: body.shape[1]]
            )
            frames.append(pd.concat([df, fixed], axis=1))
        for df in frames:
            df.index.name = "trust_code"
        return frames

    def _fixed_features(self, lay: _Layout, trusts: pd.DataFrame) -> pd.DataFrame:
        rows = lay.rows
        elevated = rows["flag"] == "elevated_risk"
        typ = rows["type"].astype(str) if "type" in rows else pd.Series("", index=rows.index)
        meth = rows["method"].astype(str) if "method" in rows else pd.Series("", index=rows.index)
        is_alert = typ.isin(ALERT_TYPES) | (meth == "precomputed")
        count = lambda mask: (  # noqa: E731
            rows.loc[mask, "trust_code"].value_counts().reindex(lay.trust_codes, fill_value=0)
        )
        fixed = pd.DataFrame(
            {
                "alerts": count(elevated & is_alert).to_numpy(float),
                "rule_flags": count(elevated & (typ == "rule")).to_numpy(float),
            },
            index=lay.trust_codes,
        )
        if self.config.features.use_inspection_history:
            fixed = pd.concat([fixed, _history(trusts, lay.trust_codes)], axis=1)
        return fixed

    # -- estimator ------------------------------------------------------------------------------
    def _new_estimator(self):
        c = self.config.classifier
        base = make_pipeline(
            StandardScaler(), LogisticRegression(C=c.C, max_iter=2000, random_state=c.seed)
        )
        if c.calibration == "none":
            return base
        return CalibratedClassifierCV(base, method=c.calibration, cv=c.cv)

    def fit(self, X: pd.DataFrame, y: Sequence[int] | np.ndarray) -> LearnedBandingModel:
        """Fit on features (from :meth:`features`) and targets (1 = Inadequate / RI)."""
        y = np.asarray(y, dtype=int)
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
        if len(np.unique(y)) < 2:
            raise ValueError("training targets need both classes (failing and not failing)")
        self.feature_names_ = list(X.columns)
        self.estimator_ = self._new_estimator().fit(X.to_numpy(float), y)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of an Inadequate / Requires improvement rating."""
        if self.estimator_ is None:
            raise SurveillanceError("LearnedBandingModel is not fitted: call fit() first")
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            raise SurveillanceError(f"features: missing column(s) {missing}")
        return self.estimator_.predict_proba(X[self.feature_names_].to_numpy(float))[:, 1]

    def predict_risk(
        self, flags: pd.DataFrame, trusts: pd.DataFrame, excluded: Iterable[str] = ()
    ) -> pd.Series:
        X = self.features(flags, trusts, excluded)
        return pd.Series(self.predict_proba(X), index=X.index, name="risk")

    def predict_bands(
        self,
        flags: pd.DataFrame,
        trusts: pd.DataFrame,
        quarter: Quarter | str,
        excluded: Iterable[str] = (),
        band_sizes: Sequence[int] | None = None,
        n_draws: int = 0,
        seed: int = 0,
    ) -> pd.DataFrame:
        """bands.csv frame: overrides as the replica, the rest banded by risk rank.

        ``band_sizes`` (six counts) are the sizes of bands 1..6 over *all* numerically banded
        trusts (e.g. the replica's counts this quarter); trusts with a numeric override (special
        measures) take their band's places first. Default: ``band_sizes_reference`` rescaled.
        ``n_draws`` > 0 adds band probabilities by parametric bootstrap of the z-scores
        (features recomputed per draw, ranks with the same sizes).
        """
        excluded = list(excluded)
        X = self.features(flags, trusts, excluded)
        risk = pd.Series(self.predict_proba(X), index=X.index)
        table = score_table(flags, list(X.index), excluded=excluded)
        label, override_reason = override_labels(
            trusts, table["applicable"], quarter, self.config.overrides
        )
        rankable = label == ""
        sizes = self._rank_sizes(label, rankable, band_sizes)
        band = label.copy().astype(object)
        ranked = bands_by_rank(risk[rankable], sizes)
        band[rankable] = ranked.astype(str)
        reason = override_reason.copy()
        order = risk[rankable].rank(ascending=False, method="first").astype(int)
        reason[rankable] = [
            f"risk of Inadequate/RI {risk[c]:.3f} (rank {order[c]} of {int(rankable.sum())})"
            for c in risk.index[rankable]
        ]
        table = table.assign(risk=risk)
        probs = None
        if n_draws > 0:
            probs = self._band_probabilities(
                flags, trusts, excluded, rankable, sizes, band, n_draws, seed
            )
        out = assemble_bands(trusts, table, band, reason, probs)
        out["risk"] = risk.reindex(out["trust_code"]).to_numpy()
        return out

    def _rank_sizes(
        self, label: pd.Series, rankable: pd.Series, band_sizes: Sequence[int] | None
    ) -> np.ndarray:
        n_rank = int(rankable.sum())
        numeric_override = label[label.str.isdigit()].astype(int)
        if band_sizes is None:
            total = n_rank + len(numeric_override)
            sizes = rescale_sizes(self.config.band_sizes_reference, total)
        else:
            sizes = np.asarray(band_sizes, dtype=np.int64).copy()
            if sizes.shape != (6,):
                raise ValueError(f"band_sizes needs six counts, got {band_sizes}")
        for b in numeric_override:
            sizes[b - 1] -= 1
        sizes = np.clip(sizes, 0, None)
        if sizes.sum() != n_rank:
            sizes = rescale_sizes(sizes if sizes.sum() > 0 else np.ones(6), n_rank)
        return sizes

    def _band_probabilities(
        self, flags, trusts, excluded, rankable, sizes, band, n_draws: int, seed: int
    ) -> pd.DataFrame:
        """Parametric bootstrap: redraw every z (as the replica's uncertainty), recompute the
        features, predict, rank with the same sizes; vectorised over draws."""
        codes = trust_frame(trusts)["trust_code"].to_numpy()
        lay = _layout(flags, codes, self.config.features.domains, excluded)
        spec = draw_spec(lay.rows, codes, excluded=())
        z_obs = pd.to_numeric(lay.rows.get("z_adjusted"), errors="coerce").to_numpy(float)
        f = self.config.features
        fixed = self._fixed_features(lay, trusts).to_numpy(float)
        rank_idx = np.flatnonzero(rankable.reindex(codes).to_numpy(dtype=bool))
        band_of_rank = np.repeat(np.arange(6), np.asarray(sizes, dtype=np.int64))
        counts = np.zeros((len(rank_idx), 6), dtype=np.int64)
        rng = np.random.default_rng(seed)
        cols = [self.feature_names_.index(c) for c in self._feature_names()]
        done = 0
        while done < n_draws:
            k = min(100, n_draws - done)
            noise = spec.sd[None, :] * rng.standard_normal((k, len(spec.sd)))
            flagged = (spec.centre[None, :] + noise) > spec.threshold_risk[None, :]
            # draws move each row's own z_adjusted (count rows: their mid-p deviate)
            z_feat = np.where(lay.has_z[None, :], z_obs[None, :] + noise, np.nan)
            agg = _aggregate(lay, z_feat, flagged, f.clip, f.z_threshold)
            body = agg.reshape(k, len(codes), -1)
            feats = np.concatenate([body, np.broadcast_to(fixed, (k, *fixed.shape))], axis=2)
            feats = feats[:, rank_idx, :].reshape(k * len(rank_idx), -1)
            ordered = np.empty_like(feats)
            ordered[:, cols] = feats
            risk = self.estimator_.predict_proba(ordered)[:, 1].reshape(k, len(rank_idx))
            order = np.argsort(-risk, axis=1, kind="stable")  # ties: code order
            bands_draw = np.empty_like(order)
            np.put_along_axis(bands_draw, order, band_of_rank[None, :], axis=1)
            for b in range(6):
                counts[:, b] += (bands_draw == b).sum(axis=0)
            done += k
        probs = pd.DataFrame(np.nan, index=codes, columns=P_BAND_COLUMNS)
        probs.iloc[rank_idx, :] = counts / float(n_draws)
        for c in codes:
            if not rankable[c] and str(band[c]).isdigit():
                probs.loc[c] = 0.0
                probs.loc[c, f"p_band_{band[c]}"] = 1.0
        return probs


def evaluate(
    risk: np.ndarray, y: np.ndarray, n_bins: int = 5
) -> dict[str, float | list[dict[str, float]]]:
    """AUC, Brier score and a reliability table (mean predicted vs observed by risk quantile)."""
    risk = np.asarray(risk, float)
    y = np.asarray(y, int)
    out: dict = {"n": int(len(y)), "prevalence": float(y.mean()) if len(y) else float("nan")}
    out["auc"] = float(roc_auc_score(y, risk)) if len(np.unique(y)) == 2 else float("nan")
    out["brier"] = float(brier_score_loss(y, risk)) if len(y) else float("nan")
    edges = np.unique(np.quantile(risk, np.linspace(0, 1, n_bins + 1))) if len(y) else []
    bins = np.clip(np.searchsorted(edges, risk, side="right") - 1, 0, max(len(edges) - 2, 0))
    out["reliability"] = [
        {
            "bin": int(b),
            "mean_predicted": float(risk[bins == b].mean()),
            "observed": float(y[bins == b].mean()),
            "n": int((bins == b).sum()),
        }
        for b in np.unique(bins)
    ]
    return out


def failing_target(
    ratings: pd.Series, failing: Sequence[str] = ("Inadequate", "Requires improvement")
) -> np.ndarray:
    """1 where the rating is in ``failing`` (Inadequate or Requires improvement), else 0."""
    return ratings.astype("string").isin(list(failing)).fillna(False).to_numpy(int)


def training_table(
    model: LearnedBandingModel,
    flags: pd.DataFrame,
    trusts: pd.DataFrame,
    inspections: pd.DataFrame,
    before: pd.Timestamp | str | None = None,
    after: pd.Timestamp | str | None = None,
    excluded: Iterable[str] = (),
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Features, targets and the inspection rows for training / validation.

    One row per trust with an inspection in (``after``, ``before``]: the target is that trust's
    latest such inspection; the history feature is the rating of the inspection before it (never
    the target itself, so there is no leakage). Features from ``flags`` are the quarter's
    indicator magnitudes.
    """
    need = {"trust_code", "inspection_date", "overall_rating"}
    if missing := need - set(inspections.columns):
        raise SurveillanceError(f"inspections: missing column(s) {sorted(missing)}")
    ins = inspections.assign(inspection_date=pd.to_datetime(inspections["inspection_date"]))
    ins = ins.sort_values(["trust_code", "inspection_date"], kind="mergesort")
    window = pd.Series(True, index=ins.index)
    if before is not None:
        window &= ins["inspection_date"] <= pd.Timestamp(before)
    if after is not None:
        window &= ins["inspection_date"] > pd.Timestamp(after)
    targets = ins[window].groupby("trust_code").tail(1)
    prev_rating = {}
    for code, grp in ins.groupby("trust_code"):
        if code not in set(targets["trust_code"]):
            continue
        t_date = targets.loc[targets["trust_code"] == code, "inspection_date"].iloc[0]
        earlier = grp[grp["inspection_date"] < t_date]
        prev_rating[code] = earlier["overall_rating"].iloc[-1] if len(earlier) else pd.NA
    hist_trusts = trusts.assign(last_rating=trusts["trust_code"].map(prev_rating))
    X = model.features(flags, hist_trusts, excluded)
    targets = targets.set_index("trust_code").reindex(X.index).dropna(subset=["overall_rating"])
    X = X.loc[targets.index]
    y = failing_target(targets["overall_rating"], model.config.failing_ratings)
    return X, y, targets.reset_index()


def time_split_validation(
    config: LearnedConfig | None,
    nations: Sequence[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Iterable[str]]],
    split: pd.Timestamp | str,
) -> dict[str, float]:
    """Fit on inspections on or before ``split`` and validate on the later ones (time split).

    ``nations`` is a sequence of (flags, trusts, inspections, excluded) tuples (one or several
    bundles). Training targets are each trust's latest inspection up to ``split``; validation
    targets its latest inspection after ``split`` (history feature: the rating before it, which
    may be the training target: known by then). Returns :func:`evaluate`'s AUC and Brier on the
    later inspections plus their number and prevalence.
    """
    model = LearnedBandingModel(config)
    Xs, ys, Xv, yv = [], [], [], []
    for flags, trusts, inspections, excluded in nations:
        X, y, _ = training_table(model, flags, trusts, inspections, before=split, excluded=excluded)
        Xs.append(X)
        ys.append(y)
        X, y, _ = training_table(model, flags, trusts, inspections, after=split, excluded=excluded)
        Xv.append(X)
        yv.append(y)
    model.fit(pd.concat(Xs), np.concatenate(ys))
    y_val = np.concatenate(yv)
    res = evaluate(model.predict_proba(pd.concat(Xv)), y_val)
    return {k: res[k] for k in ("n", "prevalence", "auc", "brier")}
