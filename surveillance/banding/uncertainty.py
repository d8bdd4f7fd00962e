"""Band uncertainty: probability of each band per trust by parametric bootstrap.

Each applicable trust x indicator is turned into a *draw specification* on the adjusted-z scale:
a centre, a standard deviation and the two flag thresholds. Each draw re-samples every z-score,
re-flags it, re-scores every trust (points, S, M, P = S/M) and re-bands it with the cut-points;
``p_band_k`` is the share of draws that put the trust in band k.

Draw specification by indicator type
------------------------------------
* z-scored types (proportion, ratio, rate, score; and cusum_z's combined z is *not* used): the
  sampling error of Y is s, so in z_adjusted units (z_adjusted = (Y - target)/sqrt(s^2 + tau2))
  its standard deviation is ``z_sd = s / sqrt(s^2 + tau2)`` (1/sqrt(phi) for the multiplicative
  adjustment, 1 for none). ``bootstrap`` (default): z* ~ N(z_adjusted, z_sd^2), the parametric
  bootstrap of the observed data. ``posterior_predictive``: the trust's true effect is first drawn
  from its normal-normal posterior given the between-trust variance tau2 (shrinkage factor
  B = tau2 / (s^2 + tau2) = 1 - z_sd^2) and a new quarter of data drawn from it:
  z* ~ N(B z_adjusted, z_sd^2 (1 + B)).
* count: p-values become normal deviates (z = Phi^-1(1 - p)), thresholds Phi^-1(1 - p_risk) and
  Phi^-1(1 - p_elevated), sd 1 (the continuous analogue of re-drawing the count).
* external_band, rule, cusum_z and pre-computed flags (mortality alerts): deterministic (sd 0).

References
----------
Spiegelhalter et al. Statistical methods for healthcare regulation: rating, screening and
surveillance. JRSS A 2012;175:1 (section 4: uncertainty in ratings by simulation).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
from scipy import stats

from surveillance.banding.config import DEFAULT_POINTS, N_BANDS, Points
from surveillance.banding.scoring import P_BAND_COLUMNS

Z_TYPES = ("proportion", "ratio", "rate", "score")
DEFAULT_RISK_THRESHOLD = 1.96
DEFAULT_ELEVATED_THRESHOLD = 3.0
DEFAULT_P_RISK = 0.025
DEFAULT_P_ELEVATED = 0.001
_DETERMINISTIC_CENTRE = {"no_evidence": 0.0, "risk": 1.5, "elevated_risk": 2.5}


@dataclass(frozen=True)
class DrawSpec:
    """Flat arrays, one entry per applicable trust x indicator, trusts indexed 0..n_trusts-1."""

    trust_codes: np.ndarray
    trust_index: np.ndarray
    centre: np.ndarray
    sd: np.ndarray
    threshold_risk: np.ndarray
    threshold_elevated: np.ndarray


def _col(flags: pd.DataFrame, name: str, default: float) -> np.ndarray:
    if name in flags.columns:
        return pd.to_numeric(flags[name], errors="coerce").fillna(default).to_numpy(float)
    return np.full(len(flags), default)


def draw_spec(
    flags: pd.DataFrame,
    trust_codes: Sequence[str],
    excluded: Iterable[str] = (),
    method: str = "bootstrap",
) -> DrawSpec:
    """Turn a flags frame into draw specifications (see module docstring)."""
    codes = np.asarray(sorted(trust_codes), dtype=object)
    use = flags[
        (flags["flag"] != "not_applicable")
        & ~flags["indicator_id"].isin(set(excluded))
        & flags["trust_code"].isin(set(codes))
    ].reset_index(drop=True)
    kind = use["type"].astype(str).to_numpy() if "type" in use else np.full(len(use), "rule")
    method_col = use["method"].astype(str).to_numpy() if "method" in use else np.full(len(use), "")
    flag = use["flag"].to_numpy()
    z_adj = _col(use, "z_adjusted", np.nan)
    z_sd = _col(use, "z_sd", 1.0).clip(0.0, 1e6)
    thr_r = _col(use, "threshold_risk", DEFAULT_RISK_THRESHOLD)
    thr_e = _col(use, "threshold_elevated", DEFAULT_ELEVATED_THRESHOLD)

    centre = np.array([_DETERMINISTIC_CENTRE[f] for f in flag], dtype=float)
    sd = np.zeros(len(use))
    det_r = np.full(len(use), 1.0)
    det_e = np.full(len(use), 2.0)

    is_z = np.isin(kind, Z_TYPES) & np.isfinite(z_adj) & (method_col != "precomputed")
    if method == "posterior_predictive":
        shrink = 1.0 - np.minimum(z_sd**2, 1.0)
        centre_z = shrink * z_adj
        sd_z = z_sd * np.sqrt(1.0 + shrink)
    elif method == "bootstrap":
        centre_z, sd_z = z_adj, z_sd
    else:
        raise ValueError(f"method must be 'bootstrap' or 'posterior_predictive', got {method!r}")
    centre = np.where(is_z, centre_z, centre)
    sd = np.where(is_z, sd_z, sd)
    det_r = np.where(is_z, thr_r, det_r)
    det_e = np.where(is_z, thr_e, det_e)

    p_value = _col(use, "p_value", np.nan)
    is_count = (kind == "count") & np.isfinite(p_value) & (method_col != "precomputed")
    p_r = _col(use, "p_risk", DEFAULT_P_RISK)
    p_e = _col(use, "p_elevated", DEFAULT_P_ELEVATED)
    # p = 0 would be an infinite deviate: cap at the deviate of 1e-300
    centre = np.where(is_count, stats.norm.isf(np.clip(p_value, 1e-300, 1.0)), centre)
    sd = np.where(is_count, 1.0, sd)
    det_r = np.where(is_count, stats.norm.isf(p_r), det_r)
    det_e = np.where(is_count, stats.norm.isf(p_e), det_e)

    position = {c: i for i, c in enumerate(codes)}
    trust_index = np.array([position[c] for c in use["trust_code"]], dtype=np.int64)
    return DrawSpec(codes, trust_index, centre, sd, det_r, det_e)


@numba.njit(cache=True)
def _band_counts_kernel(
    trust_index: np.ndarray,
    centre: np.ndarray,
    sd: np.ndarray,
    thr_risk: np.ndarray,
    thr_elevated: np.ndarray,
    points: np.ndarray,
    cut_points: np.ndarray,
    n_trusts: int,
    n_draws: int,
    seed: int,
) -> np.ndarray:
    """Counts (n_trusts x 6) of draws in each band.

    Per draw: z*_j = centre_j + sd_j e_j (e_j ~ N(0, 1)); points_j = points[2] if z* > thr_e,
    points[1] if z* > thr_r, else points[0]; S_t = sum_j points_j; M_t = points[2] x n_t;
    band = first k with S_t / M_t >= cut_points[k-1], else 6 (CQC 2013 scoring).
    """
    np.random.seed(seed)  # noqa: NPY002 (numba supports the legacy API only)
    n = trust_index.shape[0]
    counts = np.zeros((n_trusts, 6), dtype=np.int64)
    applicable = np.zeros(n_trusts, dtype=np.float64)
    for j in range(n):
        applicable[trust_index[j]] += 1.0
    score = np.zeros(n_trusts, dtype=np.float64)
    n_cuts = cut_points.shape[0]
    for _ in range(n_draws):
        score[:] = 0.0
        for j in range(n):
            z = centre[j] + sd[j] * np.random.standard_normal()  # noqa: NPY002
            if z > thr_elevated[j]:
                score[trust_index[j]] += points[2]
            elif z > thr_risk[j]:
                score[trust_index[j]] += points[1]
            else:
                score[trust_index[j]] += points[0]
        for t in range(n_trusts):
            if applicable[t] == 0.0:
                continue
            p = score[t] / (points[2] * applicable[t])
            band = n_cuts + 1
            for k in range(n_cuts):
                if p >= cut_points[k]:
                    band = k + 1
                    break
            counts[t, band - 1] += 1
    return counts


def band_probabilities(
    flags: pd.DataFrame,
    trust_codes: Sequence[str],
    cut_points: Sequence[float],
    points: Points = DEFAULT_POINTS,
    n_draws: int = 1000,
    seed: int = 0,
    excluded: Iterable[str] = (),
    method: str = "bootstrap",
) -> pd.DataFrame:
    """Probability of each band 1..6 per trust (rows sum to 1; NaN rows for trusts with no data).

    Parameters
    ----------
    flags : DataFrame
        flags.csv rows (with the assessment's extras ``z_sd``, ``threshold_risk``,
        ``threshold_elevated``, ``p_risk``, ``p_elevated`` when present; defaults otherwise).
    trust_codes : sequence of str
        Trusts to report (one row each, sorted).
    cut_points : five descending proportion-score cut-points.
    n_draws : int, at least 1000.
    seed : int, seeds numba's generator: same inputs and seed give identical probabilities.
    """
    if n_draws < 1:
        raise ValueError("n_draws must be >= 1")
    cuts = np.asarray(cut_points, dtype=float)
    if cuts.shape != (N_BANDS - 1,):
        raise ValueError(f"need {N_BANDS - 1} cut-points, got {cuts.shape}")
    spec = draw_spec(flags, trust_codes, excluded=excluded, method=method)
    pts = np.array([points.no_evidence, points.risk, points.elevated_risk], dtype=float)
    counts = _band_counts_kernel(
        spec.trust_index,
        spec.centre.astype(np.float64),
        spec.sd.astype(np.float64),
        spec.threshold_risk.astype(np.float64),
        spec.threshold_elevated.astype(np.float64),
        pts,
        cuts,
        len(spec.trust_codes),
        int(n_draws),
        int(seed),
    )
    probs = counts / float(n_draws)
    has_data = counts.sum(axis=1) > 0
    probs[~has_data] = np.nan
    out = pd.DataFrame(probs, index=pd.Index(spec.trust_codes, name="trust_code"))
    out.columns = P_BAND_COLUMNS
    return out
