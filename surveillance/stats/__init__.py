"""surveillance.stats"""

# --- cross-sectional core: transforms, overdispersion, limits, funnels, counts ---
from surveillance.stats.counts import CountTest, count_test
from surveillance.stats.funnel import Assessment, assess_arrays, funnel_limits, funnel_table
from surveillance.stats.limits import (
    betabinomial_limits,
    byar_interval,
    exact_binomial_limits,
    exact_poisson_interval,
    exact_poisson_limits,
    negbin_limits,
    normal_limits,
    phe_proportion_limits,
    phe_ratio_interval,
    phe_ratio_limits,
    phe_ratio_significance,
    poisson_chi2_limits,
    wilson_interval,
    z_for_level,
)
from surveillance.stats.overdispersion import (
    Adjustment,
    adjust,
    phi_chi2_test,
    phi_estimate,
    tau2_dersimonian_laird,
    tau2_reml,
    truncate_shmi,
    winsorise,
    z_adjusted_additive,
)
from surveillance.stats.transforms import (
    Transformed,
    back_transform,
    orient,
    transform_proportion,
    transform_rate,
    transform_ratio,
    transform_score,
)

__all__ = [
    "Adjustment",
    "Assessment",
    "CountTest",
    "Transformed",
    "adjust",
    "assess_arrays",
    "back_transform",
    "betabinomial_limits",
    "byar_interval",
    "count_test",
    "exact_binomial_limits",
    "exact_poisson_interval",
    "exact_poisson_limits",
    "funnel_limits",
    "funnel_table",
    "negbin_limits",
    "normal_limits",
    "orient",
    "phe_proportion_limits",
    "phe_ratio_interval",
    "phe_ratio_limits",
    "phe_ratio_significance",
    "phi_chi2_test",
    "phi_estimate",
    "poisson_chi2_limits",
    "tau2_dersimonian_laird",
    "tau2_reml",
    "transform_proportion",
    "transform_rate",
    "transform_ratio",
    "transform_score",
    "truncate_shmi",
    "wilson_interval",
    "winsorise",
    "z_adjusted_additive",
    "z_for_level",
]
# --- end cross-sectional core ---

# --- CUSUM family, ARL and thresholds (cusum.py, arl.py, thresholds.py) ---
from surveillance.stats.arl import (  # noqa: E402
    FalseAlarm,
    RunLengths,
    arl_normal_cusum,
    arl_poisson_cusum,
    arl_ra_cusum,
    false_alarm_probability,
    simulate_normal_run_length,
    simulate_run_length,
)
from surveillance.stats.cusum import (  # noqa: E402
    CusumPath,
    GroupedSignals,
    grouped_normal_cusum,
    grouped_ra_cusum,
    grouped_ra_cusum_signals,
    normal_cusum,
    poisson_cusum,
    ra_cusum,
    ra_weights,
    vlad,
)
from surveillance.stats.thresholds import (  # noqa: E402
    Calibration,
    ThresholdSurface,
    calibrate_threshold,
    case_mix_features,
    cusum_limit_exact,
)

__all__ += [
    "Calibration",
    "CusumPath",
    "FalseAlarm",
    "GroupedSignals",
    "RunLengths",
    "ThresholdSurface",
    "arl_normal_cusum",
    "arl_poisson_cusum",
    "arl_ra_cusum",
    "calibrate_threshold",
    "case_mix_features",
    "cusum_limit_exact",
    "false_alarm_probability",
    "grouped_normal_cusum",
    "grouped_ra_cusum",
    "grouped_ra_cusum_signals",
    "normal_cusum",
    "poisson_cusum",
    "ra_cusum",
    "ra_weights",
    "simulate_normal_run_length",
    "simulate_run_length",
    "vlad",
]
# --- end CUSUM family ---
