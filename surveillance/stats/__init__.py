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
    "z_for_level",
]
# --- end cross-sectional core ---
