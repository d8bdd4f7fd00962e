"""The CQC-2013 replica banding model (Intelligent Monitoring, October 2013).

Points 0/1/2 per applicable indicator, proportion score P = S / M, six bands by fixed cut-points on
P (``models/banding/cqc2013.yaml``), then the overrides (special measures -> band 1, recently
inspected -> ``recently_inspected``, too few applicable indicators -> ``not_banded``).

References
----------
Care Quality Commission. Intelligent Monitoring: NHS acute hospitals, statistical methodology (2014).
Griffiths A, Beaussier AL, Demeritt D, Rothstein H. Intelligent Monitoring? Assessing the ability of
the Care Quality Commission's statistical surveillance tool to predict quality and prioritise NHS
hospital inspections. BMJ Qual Saf 2017;26:120.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from surveillance.banding.config import CQC2013Config, load_cqc2013_config
from surveillance.banding.scoring import (
    P_BAND_COLUMNS,
    assemble_bands,
    band_from_proportion,
    check_flags,
    override_labels,
    score_table,
    trust_frame,
)
from surveillance.banding.uncertainty import band_probabilities
from surveillance.periods import Quarter


class CQC2013Model:
    """Estimator-like replica of the 2013 banding.

    Parameters
    ----------
    config : CQC2013Config or path to a YAML file, default ``models/banding/cqc2013.yaml``.
    uncertainty : bool
        Compute ``p_band_1..6`` by parametric bootstrap (``config.uncertainty``).
    """

    name = "banding-cqc2013"

    def __init__(self, config: CQC2013Config | str | Path | None = None, uncertainty: bool = True):
        if config is None or isinstance(config, str | Path):
            config = load_cqc2013_config(config)
        self.config = config
        self.uncertainty = uncertainty

    def fit(self, *args, **kwargs) -> CQC2013Model:
        """Nothing to learn: the cut-points are fixed data. Returns self (estimator protocol)."""
        return self

    def score(
        self, flags: pd.DataFrame, trusts: pd.DataFrame, excluded: Iterable[str] = ()
    ) -> pd.DataFrame:
        """Per-trust S, M, P and counts (index trust_code)."""
        check_flags(flags)
        codes = trust_frame(trusts)["trust_code"].tolist()
        return score_table(flags, codes, self.config.points, excluded)

    def predict_bands(
        self,
        flags: pd.DataFrame,
        trusts: pd.DataFrame,
        quarter: Quarter | str,
        excluded: Iterable[str] = (),
    ) -> pd.DataFrame:
        """bands.csv frame (contract columns in order) for one quarter.

        ``previous_band`` is empty and ``movement`` is ``new`` here; use
        :func:`surveillance.banding.explain.add_movement` with last quarter's bands.
        """
        excluded = list(excluded)
        cfg = self.config
        table = self.score(flags, trusts, excluded)
        cuts = np.asarray(cfg.cut_points)
        band_num = band_from_proportion(table["proportion_score"].to_numpy(), cuts)
        band = pd.Series(band_num.astype(str), index=table.index)
        reason = pd.Series(
            [
                _score_reason(p, b, cuts)
                for p, b in zip(table["proportion_score"], band_num, strict=True)
            ],
            index=table.index,
            dtype=object,
        )
        label, override_reason = override_labels(
            trusts, table["applicable"], quarter, cfg.overrides
        )
        has_override = label != ""
        band[has_override] = label[has_override]
        reason[has_override] = override_reason[has_override]

        probs = None
        if self.uncertainty:
            banded = band.index[band.isin([str(b) for b in range(1, 7)]) & ~has_override]
            probs = band_probabilities(
                flags,
                list(banded),
                cuts,
                cfg.points,
                n_draws=cfg.uncertainty.n_draws,
                seed=cfg.uncertainty.seed,
                excluded=excluded,
                method=cfg.uncertainty.method,
            ).reindex(table.index)
            probs = _override_probabilities(probs, band, has_override)
        return assemble_bands(trusts, table, band, reason, probs)


def _score_reason(p: float, band: int, cuts: np.ndarray) -> str:
    if band == 0:
        return "no applicable indicators"
    if band == 1:
        return f"proportion score {p:.4f} >= cut-point {cuts[0]:.4f} for band 1"
    if band == len(cuts) + 1:
        return f"proportion score {p:.4f} < cut-point {cuts[-1]:.4f} for band {band - 1}"
    return f"proportion score {p:.4f} in [{cuts[band - 1]:.4f}, {cuts[band - 2]:.4f}): band {band}"


def _override_probabilities(
    probs: pd.DataFrame, band: pd.Series, has_override: pd.Series
) -> pd.DataFrame:
    """Override trusts get their override deterministically: a numeric override band has
    probability 1; ``recently_inspected`` / ``not_banded`` have no band probabilities (NaN)."""
    probs = probs.copy()
    for code in band.index[has_override]:
        probs.loc[code, P_BAND_COLUMNS] = np.nan
        if band[code].isdigit():
            probs.loc[code, P_BAND_COLUMNS] = 0.0
            probs.loc[code, f"p_band_{band[code]}"] = 1.0
    return probs
