"""Order-independent sums of probabilities: the same total whatever the order or split.

Floating-point addition is not associative, so a sum of expected deaths computed over Dask
partitions (or any split of the spells into chunks) would differ in its last bits from the same
sum in one pass, and the published tables would differ between runners. :func:`exact_bincount`
splits each weight into four parts that are whole multiples of 2**-20, 2**-40, 2**-60 and 2**-80;
every partial sum of such parts is exact in float64 while it stays below 2**53 units (2**33
spells), so per-bin sums of each part, and their sums over chunks, are exact, and the total
``((s1 + s2) + s3) + s4`` is one fixed rounding of the exact sum (error below 2**-80 per weight,
plus that one rounding). Weights must be finite and of magnitude at most 1 (risks).

Reference: the error-free splitting of Dekker (1971) and Rump, Ogita and Oishi, "Accurate
floating-point summation part I", SIAM J. Sci. Comput. 31 (2008) 189 (ExtractVector).
"""

from __future__ import annotations

import numpy as np

#: place values of the four parts (each a whole multiple of its unit)
UNITS = (2.0**-20, 2.0**-40, 2.0**-60, 2.0**-80)
#: bins summing more weights than this could lose exactness (2**53 units of 2**-20 each <= 1)
MAX_TERMS = 2**33


def split_parts(w: np.ndarray) -> list[np.ndarray]:
    """``w`` as four arrays whose elementwise sum is ``w`` rounded to a multiple of 2**-80."""
    w = np.asarray(w, dtype=float)
    if w.size and not (np.isfinite(w).all() and np.abs(w).max() <= 1.0):
        raise ValueError("exact sums need finite weights of magnitude <= 1")
    parts = []
    rest = w
    for unit in UNITS:
        part = np.round(rest / unit) * unit  # exact: scaling by a power of two, then rounding
        parts.append(part)
        rest = rest - part  # exact: |rest - part| <= unit / 2 is representable
    return parts


def combine_parts(sums: np.ndarray) -> np.ndarray:
    """The total from the four part sums stacked on the first axis (one fixed rounding order)."""
    return ((sums[0] + sums[1]) + sums[2]) + sums[3]


def exact_part_bincount(key: np.ndarray, w: np.ndarray, size: int) -> np.ndarray:
    """Per-bin exact sums of the four parts of ``w``, shape (4, size): add these over chunks."""
    if len(key) >= MAX_TERMS:
        raise ValueError(f"exact sums are limited to {MAX_TERMS} terms")
    return np.stack([np.bincount(key, weights=p, minlength=size) for p in split_parts(w)])


def exact_bincount(key: np.ndarray, w: np.ndarray, size: int) -> np.ndarray:
    """``np.bincount(key, w, size)`` computed exactly then rounded once: independent of the order
    of the terms and of any split of them into chunks (see the module docstring)."""
    return combine_parts(exact_part_bincount(key, w, size))
