"""Scoring and banding models: the CQC-2013 replica, the learned model, band uncertainty,
explanation and movement (DESIGN.md section 6, METHODS.md section 6)."""

from surveillance.banding.config import (
    BandingSelection,
    CQC2013Config,
    LearnedConfig,
    load_banding_config,
    load_cqc2013_config,
    load_learned_config,
)
from surveillance.banding.cqc2013 import CQC2013Model
from surveillance.banding.explain import add_movement, contributions, mark_persistence
from surveillance.banding.learned import (
    LearnedBandingModel,
    evaluate,
    time_split_validation,
    training_table,
)
from surveillance.banding.scoring import (
    BANDS_COLUMNS,
    bands_by_rank,
    calibrate_cut_points,
    score_table,
)
from surveillance.banding.uncertainty import band_probabilities

__all__ = [
    "BANDS_COLUMNS",
    "BandingSelection",
    "CQC2013Config",
    "CQC2013Model",
    "LearnedBandingModel",
    "LearnedConfig",
    "add_movement",
    "band_probabilities",
    "bands_by_rank",
    "calibrate_cut_points",
    "contributions",
    "evaluate",
    "load_banding_config",
    "load_cqc2013_config",
    "load_learned_config",
    "mark_persistence",
    "score_table",
    "time_split_validation",
    "training_table",
]
