"""Palliative-care adjustment of the alert charts at the trust's phase I coding rate.

HSMR-style models adjust for palliative-care coding (Z51.5; Dr Foster / Imperial, Bottle & Aylin
2008), and the alert model does too. But the code is often given at or after death, so it is
partly an outcome: with the spell's own code in the chart's risk, every excess death of a
deterioration that is coded palliative raises its own expected death to the palliative level, and
a trust that codes more deaths palliative in the monitored months lowers its chart without any
change in care (the "constant risk fallacy" of coding that varies between hospitals and over time:
Mohammed et al., BMJ 2009;338:b780; Bottle, Jarman & Aylin, Health Serv Res 2011;46:1741).

With ``palliative.charts: trust_rate`` the model is fitted on the spells' own codes as before, but
a chart spell's in-control risk uses the palliative code the trust gave such patients BEFORE the
window, not the code the spell itself got:

    p*_i = pi_tg p_i(palliative) + (1 - pi_tg) p_i(not palliative),

    pi_tg = pi_g r_t,   pi_g = K_g / N_g,   r_t = (K_t + a) / (sum_g N_tg pi_g + a),

where N and K count the phase I spells (the alert model's fit window) and those coded palliative,
``pi_g`` is the national share of group g, ``r_t`` the trust's coding ratio indirectly
standardised over its groups (shrunk to 1 by ``a`` = :data:`PRIOR_CODED` pseudo-coded spells, so a
small trust keeps about the national rate), capped at 1. A trust that codes generously in phase I
keeps that credit (as HSMR gives it), but its monitored months can neither raise their expected
deaths with the deaths themselves nor lower them by recoding; recoding is caught separately by the
coding tests (``surveillance.mortality.quality``). On three harder synthetic nations (outcome-
dependent coding habits, ``benchmarks/detection.py``) this cut the in-control false alarms of the
typical-trust charts by about a third at the same detection.

The counts are integers summed over chunks, so in-memory, streamed and Dask runs agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from surveillance.mortality.encode import EncodedSpells

#: pseudo-coded spells that shrink a trust's coding ratio towards 1 (the national rate)
PRIOR_CODED = 10.0

#: columns of the per-chunk phase I counts (:func:`palliative_counts`)
COUNT_COLUMNS = {"trust_code": object, "diagnosis_group": object, "n": "int64", "k": "int64"}


@dataclass
class PalliativeRates:
    """Phase I palliative-coding rates: ``pi_g`` per diagnosis group and ``r_t`` per trust."""

    groups: np.ndarray  # diagnosis-group codes (sorted)
    group_rate: np.ndarray  # pi_g
    trusts: np.ndarray  # trust codes (sorted)
    trust_ratio: np.ndarray  # r_t
    national_rate: float  # K / N over every phase I spell (a group the fit did not see)

    def rates(self, enc: EncodedSpells) -> np.ndarray:
        """``pi_tg`` of each encoded spell (ratio 1 for a trust without phase I spells)."""
        g = pd.Index(self.groups).get_indexer(enc.groups.astype(str))
        t = pd.Index(self.trusts).get_indexer(enc.trusts.astype(str))
        by_group = np.where(g >= 0, self.group_rate[np.maximum(g, 0)], self.national_rate)
        by_trust = np.where(t >= 0, self.trust_ratio[np.maximum(t, 0)], 1.0)
        return np.minimum(by_group[enc.group] * by_trust[enc.trust], 1.0)

    def to_dict(self) -> dict:
        return {
            "groups": [str(g) for g in self.groups],
            "group_rate": [float(v) for v in self.group_rate],
            "trusts": [str(t) for t in self.trusts],
            "trust_ratio": [float(v) for v in self.trust_ratio],
            "national_rate": float(self.national_rate),
        }

    @classmethod
    def from_dict(cls, body: dict) -> PalliativeRates:
        return cls(
            np.array(body["groups"], dtype=str),
            np.array(body["group_rate"], dtype=float),
            np.array(body["trusts"], dtype=str),
            np.array(body["trust_ratio"], dtype=float),
            float(body["national_rate"]),
        )


def palliative_counts(enc: EncodedSpells, keep: np.ndarray) -> pd.DataFrame:
    """Spells ``n`` and spells coded palliative ``k`` per trust x group among ``keep`` (the
    phase I spells of one chunk): counts that add over chunks."""
    size_g = len(enc.groups)
    size = len(enc.trusts) * size_g
    key = enc.trust.astype(np.int64) * size_g + enc.group
    keep = np.asarray(keep, dtype=bool)
    n = np.bincount(key[keep], minlength=size)
    k = np.bincount(key[keep & enc.palliative], minlength=size)
    cells = np.flatnonzero(n)
    return pd.DataFrame(
        {
            "trust_code": enc.trusts[cells // size_g].astype(str),
            "diagnosis_group": enc.groups[cells % size_g].astype(str),
            "n": n[cells].astype(np.int64),
            "k": k[cells].astype(np.int64),
        }
    ).astype(COUNT_COLUMNS)


def palliative_rates(counts: pd.DataFrame, prior: float = PRIOR_CODED) -> PalliativeRates:
    """:class:`PalliativeRates` from phase I counts (rows of :func:`palliative_counts`, any
    number per trust x group: they are summed).

    Parameters
    ----------
    counts : columns trust_code, diagnosis_group, n (spells), k (coded palliative).
    prior : pseudo-coded spells shrinking each trust's ratio to 1 (module docstring).

    Returns
    -------
    PalliativeRates
    """
    cells = counts.groupby(["trust_code", "diagnosis_group"], sort=True)[["n", "k"]].sum()
    wide_n = cells["n"].unstack(fill_value=0).sort_index().sort_index(axis=1)
    wide_k = cells["k"].unstack(fill_value=0).reindex_like(wide_n).fillna(0)
    n_tg, k_tg = wide_n.to_numpy(float), wide_k.to_numpy(float)
    total = n_tg.sum()
    national = float(k_tg.sum() / total) if total > 0 else 0.0
    n_g = n_tg.sum(axis=0)
    group_rate = np.where(n_g > 0, k_tg.sum(axis=0) / np.maximum(n_g, 1.0), national)
    expected_coded = n_tg @ group_rate
    ratio = (k_tg.sum(axis=1) + prior) / (expected_coded + prior)
    return PalliativeRates(
        wide_n.columns.to_numpy(dtype=str),
        group_rate,
        wide_n.index.to_numpy(dtype=str),
        ratio,
        national,
    )


def marginal_risk(p_palliative: np.ndarray, p_not: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """``rate p(palliative) + (1 - rate) p(not palliative)``: the risk at the coding rate."""
    return rate * p_palliative + (1.0 - rate) * p_not
