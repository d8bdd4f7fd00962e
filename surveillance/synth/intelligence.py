"""Soft intelligence: whistleblowing, complaints, QSG concerns, coroners' reports, Healthwatch."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from surveillance.periods import Quarter
from surveillance.synth.config import DOMAINS
from surveillance.synth.io import format_bool
from surveillance.synth.world import STREAM_INTELLIGENCE, Nation, month_ordinal, rng_for

INTELLIGENCE_COLUMNS = [
    "trust_code",
    "received_date",
    "source",
    "category",
    "severity",
    "validated",
]
SEVERITIES = ("death", "serious_injury", "near_miss", "other")
# source -> (latent domains it reflects, categories, severity shares in SEVERITIES order)
SOURCES = {
    "whistleblowing": (
        ("well_led", "safe"),
        ("staffing levels", "bullying", "patient safety", "governance", "infection control"),
        (0.05, 0.15, 0.25, 0.55),
    ),
    "complaint": (
        ("caring", "responsive"),
        ("dignity and respect", "clinical care", "communication", "discharge", "waiting"),
        (0.06, 0.14, 0.10, 0.70),
    ),
    "qsg_concern": (
        ("safe", "effective", "well_led"),
        ("mortality", "staffing levels", "governance", "patient safety", "finance"),
        (0.10, 0.20, 0.20, 0.50),
    ),
    "coroner_report": (
        ("safe", "effective"),
        ("clinical care", "missed diagnosis", "medication", "falls", "sepsis"),
        (0.97, 0.03, 0.0, 0.0),
    ),
    "healthwatch": (
        ("caring", "responsive"),
        ("dignity and respect", "nutrition", "communication", "cleanliness", "access"),
        (0.02, 0.08, 0.15, 0.75),
    ),
}


def generate_intelligence(nation: Nation, quarter: Quarter) -> pd.DataFrame:
    """Intelligence items received in the 12 months to ``quarter``'s end.

    Rates scale with the square root of trust size and rise with worse latent quality in the
    domains each source reflects; items about worse trusts are more often validated.
    """
    rates = nation.config.intelligence
    t = nation.trusts
    size = np.sqrt(t["annual_spells"].to_numpy(float) / 60_000.0)
    codes = t["trust_code"].to_numpy()
    rows = []
    for month in quarter.lookback_months(12):
        period = pd.Period(month, freq="M")
        rng = rng_for(nation.seed, STREAM_INTELLIGENCE, month_ordinal(period))
        q = Quarter(period.year, (period.month - 1) // 3 + 1)
        bad = -nation.latent_quality(q)
        for source in sorted(SOURCES):
            domains, categories, severity = SOURCES[source]
            b = bad[:, [DOMAINS.index(d) for d in domains]].mean(axis=1)
            counts = rng.poisson(rates[source] * size * np.exp(0.6 * b))
            trust = np.repeat(np.arange(len(t)), counts)
            k = trust.size
            if k == 0:
                continue
            day = rng.integers(0, period.days_in_month, k)
            cat = rng.integers(0, len(categories), k)
            sev = rng.choice(len(SEVERITIES), size=k, p=np.asarray(severity) / sum(severity))
            validated = rng.random(k) < expit(-0.6 + 0.9 * b[trust])
            for i in range(k):
                rows.append(
                    (
                        codes[trust[i]],
                        (period.start_time + pd.Timedelta(days=int(day[i]))).strftime("%Y-%m-%d"),
                        source,
                        categories[cat[i]],
                        SEVERITIES[sev[i]],
                        bool(validated[i]),
                    )
                )
    frame = pd.DataFrame(rows, columns=INTELLIGENCE_COLUMNS)
    frame["validated"] = format_bool(frame["validated"])
    return frame.sort_values(
        ["trust_code", "received_date", "source", "category", "severity", "validated"],
        ignore_index=True,
        kind="stable",
    )
