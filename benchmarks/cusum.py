"""Benchmark: CUSUM kernels (grouped RA-CUSUM at national scale) and normal-CUSUM ARL.

- grouped RA-CUSUM over 15 million spells in ~24,000 trust x group charts: target < 1 s and
  within 3x of one numpy pass over the same arrays (``p.sum() + y.sum()``);
- each kernel against a plain numpy / pure-Python baseline (speed-up ratio);
- normal-CUSUM ARL against R ``spc::xcusum.arl`` when ``Rscript`` with spc is installed.

Usage: ``python benchmarks/cusum.py [--skip-slow]`` (skip-slow: 1.5 million spells).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import print_table, timed, write_result  # noqa: E402

from surveillance.stats import _cusum_kernels as kernels  # noqa: E402
from surveillance.stats.arl import arl_normal_cusum  # noqa: E402
from surveillance.stats.cusum import (  # noqa: E402
    grouped_ra_cusum,
    grouped_ra_cusum_signals,
    normal_cusum,
    poisson_cusum,
    ra_cusum,
    vlad,
)


def national_charts(n_spells: int, n_charts: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    weights = np.exp(rng.uniform(np.log(10), np.log(5000), n_charts))
    sizes = np.floor(weights / weights.sum() * n_spells).astype(np.int64)
    sizes[0] += n_spells - sizes.sum()
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    p = rng.beta(0.6, 12.0, n_spells)
    y = (rng.uniform(size=n_spells) < p).astype(np.int8)
    h = rng.uniform(3.0, 8.0, n_charts)
    return offsets, p, y, h


def py_ra(p, y, h):
    x, out = 0.0, []
    for pi, yi in zip(p.tolist(), y.tolist(), strict=True):
        w = (np.log(2.0) if yi else 0.0) - np.log1p(pi)
        x = max(0.0, x + w)
        if x >= h:
            x = h / 2
        out.append(x)
    return out


def py_normal(z, k=0.5, h=5.48):
    c, out = 0.0, []
    for zi in z.tolist():
        c = max(0.0, c + zi - k)
        if c > h:
            c = 0.0
        out.append(c)
    return out


def r_spc_arl(rows):
    if shutil.which("Rscript") is None:
        return None, "Rscript not installed"
    code = "library(spc);" + ";".join(f"cat(xcusum.arl({k},{h},{mu}),'\\n')" for k, h, mu in rows)
    try:
        res = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        return None, str(err)
    if res.returncode:
        return None, "R package spc not installed"
    return [float(v) for v in res.stdout.split()], ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-slow", action="store_true")
    args = parser.parse_args()
    n_spells = 1_500_000 if args.skip_slow else 15_000_000
    n_charts = 24_000
    offsets, p, y, h = national_charts(n_spells, n_charts)
    grouped_ra_cusum(offsets[:3] * 0 + np.array([0, 5, 10]), p[:10], y[:10], h[:2])  # compile

    t_grouped, path = timed(lambda: grouped_ra_cusum(offsets, p, y, h), repeat=3)
    stat = np.empty_like(p)
    sig = np.empty(p.shape[0], dtype=np.int8)
    t_kernel, _ = timed(
        lambda: kernels.grouped_ra_cusum_path(offsets, p, y, np.log(2.0), h, 0.5, False, stat, sig),
        repeat=3,
    )
    t_signals, _ = timed(lambda: grouped_ra_cusum_signals(offsets, p, y, h), repeat=3)
    t_sum, _ = timed(lambda: (p.sum(), y.sum()), repeat=3)
    signals = int(path.signal.sum())

    # kernels against plain baselines on 200,000 values
    rng = np.random.default_rng(1)
    n = 200_000
    pp, yy = p[:n], y[:n]
    z = rng.normal(0, 1, n)
    rows = []
    t_nb, _ = timed(lambda: ra_cusum(pp, yy, 2.0, 4.0), repeat=3)
    t_py, _ = timed(lambda: py_ra(pp, yy, 4.0))
    rows.append(
        {
            "kernel": "ra_cusum",
            "n": n,
            "numba_s": t_nb,
            "baseline": "pure Python",
            "baseline_s": t_py,
            "speedup": t_py / t_nb,
        }
    )
    t_nb, _ = timed(lambda: normal_cusum(z), repeat=3)
    t_py, _ = timed(lambda: py_normal(z))
    rows.append(
        {
            "kernel": "normal_cusum",
            "n": n,
            "numba_s": t_nb,
            "baseline": "pure Python",
            "baseline_s": t_py,
            "speedup": t_py / t_nb,
        }
    )
    counts = rng.poisson(3.0, n).astype(float)
    t_nb, _ = timed(lambda: poisson_cusum(counts, 3.0, 4.5, 8.0), repeat=3)
    t_py, _ = timed(lambda: py_normal(counts, k=(1.5 / np.log(1.5)), h=8.0))
    rows.append(
        {
            "kernel": "poisson_cusum",
            "n": n,
            "numba_s": t_nb,
            "baseline": "pure Python",
            "baseline_s": t_py,
            "speedup": t_py / t_nb,
        }
    )
    t_nb, _ = timed(lambda: vlad(pp, yy), repeat=3)
    t_np, _ = timed(lambda: np.cumsum(pp - yy), repeat=3)
    rows.append(
        {
            "kernel": "vlad",
            "n": n,
            "numba_s": t_nb,
            "baseline": "numpy.cumsum",
            "baseline_s": t_np,
            "speedup": t_np / t_nb,
        }
    )
    small = 2000
    t_nb, _ = timed(
        lambda: grouped_ra_cusum(
            offsets[: small + 1], p[: offsets[small]], y[: offsets[small]], h[:small]
        ),
        repeat=3,
    )
    t_loop, _ = timed(
        lambda: [
            ra_cusum(p[offsets[c] : offsets[c + 1]], y[offsets[c] : offsets[c + 1]], 2.0, h[c])
            for c in range(small)
        ]
    )
    rows.append(
        {
            "kernel": "grouped_ra_cusum",
            "n": int(offsets[small]),
            "numba_s": t_nb,
            "baseline": "Python loop of ra_cusum per chart",
            "baseline_s": t_loop,
            "speedup": t_loop / t_nb,
        }
    )
    print_table(rows, "kernels vs baselines")

    arl_rows = [(0.5, 4.0, 0.0), (0.5, 5.0, 0.5), (0.25, 8.0, 0.0)]
    t_arl, ours = timed(lambda: [arl_normal_cusum(k, hh, mu) for k, hh, mu in arl_rows], repeat=3)
    r_vals, r_note = r_spc_arl(arl_rows)
    arl_payload = {"rows": arl_rows, "ours": ours, "seconds_for_3": t_arl}
    if r_vals is None:
        arl_payload["r_spc"] = f"skipped: {r_note}"
    else:
        arl_payload["r_spc"] = r_vals
        arl_payload["ratio_ours_over_r"] = [a / b for a, b in zip(ours, r_vals, strict=True)]

    summary = (
        f"grouped RA-CUSUM {n_spells / 1e6:.1f}M spells / {n_charts} charts: {t_grouped:.3f} s "
        f"(kernel alone {t_kernel:.3f} s; numpy.sum pass {t_sum:.3f} s; ratio {t_grouped / t_sum:.1f}x, "
        f"kernel {t_kernel / t_sum:.1f}x; signals-only {t_signals:.3f} s = {t_signals / t_sum:.1f}x; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores); R spc: {arl_payload['r_spc'] if r_vals is None else 'compared'}"
    )
    print(summary)
    write_result(
        "cusum",
        {
            "summary": summary,
            "n_spells": n_spells,
            "n_charts": n_charts,
            "grouped_ra_cusum_s": t_grouped,
            "grouped_kernel_only_s": t_kernel,
            "numpy_sum_s": t_sum,
            "grouped_signals_only_s": t_signals,
            "signals_only_ratio_to_numpy_sum": t_signals / t_sum,
            "load_average": os.getloadavg(),
            "ratio_to_numpy_sum": t_grouped / t_sum,
            "kernel_ratio_to_numpy_sum": t_kernel / t_sum,
            "signals": signals,
            "kernels": rows,
            "normal_arl": arl_payload,
            "skip_slow": args.skip_slow,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
