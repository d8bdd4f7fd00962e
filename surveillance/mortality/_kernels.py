"""numba kernels for the mortality programme (arrays in, arrays out).

``stable_counting_sort``: the permutation that sorts small non-negative integer keys stably
(counting sort, Cormen et al., Introduction to Algorithms, section 8.2); two passes (day, then
chart) give the chart-then-time order of 15 million spells in O(n) instead of a comparison sort.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _counting_sort(keys, n_keys, perm_in, perm_out):  # pragma: no cover - compiled
    counts = np.zeros(n_keys + 1, dtype=np.int64)
    for i in range(perm_in.shape[0]):
        counts[keys[perm_in[i]] + 1] += 1
    for k in range(n_keys):
        counts[k + 1] += counts[k]
    for i in range(perm_in.shape[0]):
        j = perm_in[i]
        k = keys[j]
        perm_out[counts[k]] = j
        counts[k] += 1


def stable_counting_sort(
    keys: np.ndarray, n_keys: int, perm: np.ndarray | None = None
) -> np.ndarray:
    """Stable permutation sorting ``keys`` (ints in [0, n_keys)), applied after ``perm`` if given."""
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    if keys.size and (keys.min() < 0 or keys.max() >= n_keys):
        raise ValueError(f"keys must lie in [0, {n_keys})")
    perm_in = np.arange(keys.shape[0], dtype=np.int64) if perm is None else perm.astype(np.int64)
    out = np.empty_like(perm_in)
    _counting_sort(keys, int(n_keys), perm_in, out)
    return out
