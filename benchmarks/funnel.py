"""Benchmark: funnel z-scores + overdispersion + limits for 161 trusts x 150 indicators.

Target (issue 3): under 50 ms in total. Three ways over the same seeded, realistic data
(50 proportions, 50 standardised ratios (CQC), 25 rates, 25 survey scores; ~3% of trust x
indicator cells missing):

* ``batched``: :func:`surveillance.stats.assess_arrays` once per indicator type on 2-D arrays
  (indicators x trusts) -- what the indicator assessment uses;
* ``per_indicator``: the same function called once per indicator on 1-D arrays;
* ``baseline``: plain pure Python, unit by unit (math module, sorted-list quantile), the way a
  direct transcription of FunnelPlotR's steps would run.

The three must agree (max |difference| in z_adjusted is reported). Usage:
``python benchmarks/funnel.py [--skip-slow] [--repeat N]`` (no national-scale part to skip).
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from _common import print_table, timed, write_result

from surveillance.stats import assess_arrays

N_TRUSTS = 161
TYPES = (("PR", 50), ("SR", 50), ("RC", 25), ("score", 25))
LEVELS = (0.95, 0.998)


def make_data(seed: int = 20131001) -> dict[str, dict[str, np.ndarray]]:
    """Seeded indicators x trusts arrays per type (NaN = trust without data)."""
    rng = np.random.default_rng(seed)
    size_t = rng.lognormal(0.0, 0.5, N_TRUSTS)  # trust size
    out: dict[str, dict[str, np.ndarray]] = {}
    for kind, k in TYPES:
        missing = rng.random((k, N_TRUSTS)) < 0.03
        if kind == "PR":
            n = np.round(rng.uniform(200, 3000, (k, 1)) * size_t).astype(float)
            p = rng.uniform(0.02, 0.4, (k, 1))
            logit = np.log(p / (1 - p)) + rng.normal(0, 0.15, (k, N_TRUSTS))
            r = rng.binomial(n.astype(np.int64), 1 / (1 + np.exp(-logit))).astype(float)
            num, den = r, n
        elif kind == "SR":
            e = rng.uniform(20, 400, (k, 1)) * size_t
            num = rng.poisson(e * rng.lognormal(0, 0.1, (k, N_TRUSTS))).astype(float)
            den = e
        elif kind == "RC":
            d = rng.uniform(5e3, 8e4, (k, 1)) * size_t
            rate = rng.uniform(1e-4, 2e-3, (k, 1))
            num = rng.poisson(d * rate * rng.lognormal(0, 0.2, (k, N_TRUSTS))).astype(float)
            den = d
        else:
            num = rng.normal(75, 4, (k, N_TRUSTS))  # survey score
            den = rng.uniform(0.8, 2.5, (k, N_TRUSTS))  # its standard error
        num = np.where(missing, np.nan, np.broadcast_to(num, (k, N_TRUSTS)))
        den = np.where(missing, np.nan, np.broadcast_to(den, (k, N_TRUSTS)))
        out[kind] = {"num": num, "den": den}
    return out


def _call(kind: str, num: np.ndarray, den: np.ndarray):
    if kind == "score":
        return assess_arrays(value=num, se=den, data_type="score", levels=LEVELS)
    return assess_arrays(num, den, data_type=kind, sr_method="CQC", levels=LEVELS)


def run_batched(data) -> dict[str, np.ndarray]:
    return {kind: _call(kind, d["num"], d["den"]).z_adjusted for kind, d in data.items()}


def run_per_indicator(data) -> dict[str, np.ndarray]:
    out = {}
    for kind, d in data.items():
        out[kind] = np.vstack(
            [_call(kind, d["num"][i], d["den"][i]).z_adjusted for i in range(d["num"].shape[0])]
        )
    return out


def _quantile7(sorted_x: list[float], p: float) -> float:
    h = (len(sorted_x) - 1) * p
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_x) - 1)
    return sorted_x[lo] + (h - lo) * (sorted_x[hi] - sorted_x[lo])


def baseline_one(kind: str, num: list[float], den: list[float]) -> list[float]:
    """One indicator, unit by unit in plain Python: transform, winsorise, phi, tau2, z, limits."""
    units = [
        (a, b)
        for a, b in zip(num, den, strict=True)
        if not (math.isnan(a) or math.isnan(b)) and b > 0
    ]
    if kind == "PR":
        target = math.asin(math.sqrt(sum(a for a, _ in units) / sum(b for _, b in units)))
    elif kind == "SR":
        target = 1.0
    elif kind == "RC":
        target = math.log(sum(a for a, _ in units) / sum(b for _, b in units))
    else:
        target = sum(a for a, _ in units) / len(units)
    ys, ss = [], []
    for a, b in units:
        if kind == "PR":
            ys.append(math.asin(math.sqrt(a / b)))
            ss.append(1 / (2 * math.sqrt(b)))
        elif kind == "SR":
            ys.append(math.sqrt(a / b))
            ss.append(1 / (2 * math.sqrt(b)))
        elif kind == "RC":
            ys.append(math.log((a + 0.5) / (b + 0.5)))
            ss.append(math.sqrt(a / (a + 0.5) ** 2 + b / (b + 0.5) ** 2))
        else:
            ys.append(a)
            ss.append(b)
    zs = [(y - target) / s for y, s in zip(ys, ss, strict=True)]
    srt = sorted(zs)
    lz, uz = _quantile7(srt, 0.1), _quantile7(srt, 0.9)
    i = len(zs)
    phi = sum(min(max(z, lz), uz) ** 2 for z in zs) / i
    w = [1 / s**2 for s in ss]
    sw = sum(w)
    tau2 = (
        0.0
        if i * phi < i - 1
        else max(0.0, (i * phi - (i - 1)) / (sw - sum(x * x for x in w) / sw))
    )
    zadj, limits = [], []
    for y, s in zip(ys, ss, strict=True):
        spread = math.sqrt(s * s + tau2)
        zadj.append((y - target) / spread)
        for zq in (1.959963984540054, 3.090232306167813):
            limits.append((target - zq * spread, target + zq * spread))
    out, it = [], iter(zadj)
    for a, b in zip(num, den, strict=True):
        out.append(next(it) if not (math.isnan(a) or math.isnan(b)) and b > 0 else float("nan"))
    return out


def run_baseline(data) -> dict[str, np.ndarray]:
    out = {}
    for kind, d in data.items():
        num, den = d["num"].tolist(), d["den"].tolist()
        out[kind] = np.array([baseline_one(kind, num[i], den[i]) for i in range(len(num))])
    return out


def _max_diff(a, b) -> float:
    return max(float(np.nanmax(np.abs(a[k] - b[k]))) for k in a)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-slow", action="store_true", help="(no slow part; accepted)")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    data = make_data()
    run_batched(data)  # warm-up: imports, scipy dispatch
    t_batch, z_batch = timed(lambda: run_batched(data), repeat=args.repeat)
    t_per, z_per = timed(lambda: run_per_indicator(data), repeat=max(3, args.repeat // 4))
    t_base, z_base = timed(lambda: run_baseline(data), repeat=3)
    rows = [
        {
            "method": "batched (assess_arrays, 2-D)",
            "ms": t_batch * 1e3,
            "vs_baseline": t_base / t_batch,
        },
        {
            "method": "per indicator (assess_arrays, 1-D)",
            "ms": t_per * 1e3,
            "vs_baseline": t_base / t_per,
        },
        {"method": "baseline (pure Python per unit)", "ms": t_base * 1e3, "vs_baseline": 1.0},
    ]
    print_table(rows, title=f"funnel + overdispersion, {N_TRUSTS} trusts x 150 indicators")
    diff = max(_max_diff(z_batch, z_per), _max_diff(z_batch, z_base))
    print(f"max |z_adjusted difference| between methods: {diff:.3g}")
    target_ms = 50.0
    summary = (
        f"161x150 funnel+OD: batched {t_batch * 1e3:.1f} ms (target < {target_ms:.0f} ms, "
        f"{'met' if t_batch * 1e3 < target_ms else 'MISSED'}), per-indicator {t_per * 1e3:.1f} ms, "
        f"pure-Python baseline {t_base * 1e3:.0f} ms ({t_base / t_batch:.0f}x slower than batched)"
    )
    print(summary)
    write_result(
        "funnel",
        {
            "summary": summary,
            "trusts": N_TRUSTS,
            "indicators": 150,
            "batched_ms": t_batch * 1e3,
            "per_indicator_ms": t_per * 1e3,
            "baseline_ms": t_base * 1e3,
            "speedup_batched_vs_baseline": t_base / t_batch,
            "speedup_per_indicator_vs_baseline": t_base / t_per,
            "target_ms": target_ms,
            "target_met": bool(t_batch * 1e3 < target_ms),
            "max_abs_z_adjusted_difference": diff,
            "repeat": args.repeat,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
