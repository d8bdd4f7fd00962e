"""Variance-stabilising transforms and z-scores for cross-sectional indicators.

One function per indicator type (METHODS.md section 1); each returns a :class:`Transformed` with
the transformed value ``Y``, its standard error ``s``, the ``target`` on the same scale and the
z-score ``z = (Y - target) / s``.

| type | Y | s | target |
|---|---|---|---|
| ratio, CQC | sqrt(O/E) | 1/(2 sqrt(E)) | 1 |
| ratio, SHMI | log(O/E) | 1/sqrt(E) | 0 |
| proportion r/n | asin(sqrt(r/n)) | 1/(2 sqrt(n)) | asin(sqrt(sum r / sum n)) |
| rate O/D | log((O+0.5)/(D+0.5)) | sqrt(O/(O+0.5)^2 + D/(D+0.5)^2) | log(sum O / sum D) |
| score v (se) | v | se | national mean of v, or a given target |

Edge cases (documented choices, never a crash and never a NaN flag):

* **Zero events on a log scale** (SHMI ratio with O = 0): log(0) = -inf. By default
  ``zero_correction=0.5`` replaces O = 0 by 0.5 *for the transform only*, so Y, z and z_adjusted are
  finite and strongly negative and the unit is still flagged as low when it is. Pass
  ``zero_correction=None`` to keep FunnelPlotR's behaviour (Y = z = -inf); -inf still compares
  correctly against every limit, so flags stay defined. The rate transform already adds 0.5.
* **Zero or missing denominator** (E = 0, n = 0, D missing, se <= 0): the unit carries no
  information, so Y, s and z are NaN. Downstream code treats NaN as "not assessable": such units
  are excluded from phi and tau2 and are never flagged.

All functions accept arrays of any shape; the target is computed over the last axis (one row per
indicator when 2-D), ignoring units that are not assessable.

References
----------
Spiegelhalter DJ. Funnel plots for comparing institutional performance. Stat Med 2005;24:1185.
Spiegelhalter DJ. Handling over-dispersion of performance indicators. QSHC 2005;14:347.
NHS Digital. SHMI methodology. Care Quality Commission. Intelligent Monitoring: statistical
methodology (2014).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Polarity = Literal["higher_is_worse", "lower_is_worse"]
Scale = Literal["sqrt", "log", "asin", "identity"]


@dataclass(frozen=True)
class Transformed:
    """Transformed values ``Y``, standard errors ``s``, ``target`` and z-scores on one scale.

    ``scale`` names the transform (``sqrt``, ``log``, ``asin``, ``identity``) so limits can be
    back-transformed with :func:`back_transform`. ``target`` is a float for 1-D input and an array
    of shape ``Y.shape[:-1] + (1,)`` for batched input.
    """

    Y: NDArray[np.float64]
    s: NDArray[np.float64]
    target: float | NDArray[np.float64]
    scale: Scale

    @property
    def z(self) -> NDArray[np.float64]:
        """z = (Y - target) / s (Spiegelhalter 2005, eq. 1)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.Y - self.target) / self.s


def _as_float(name: str, values: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if np.any(arr < 0):
        raise ValueError(f"{name}: values must be >= 0 (found {arr[arr < 0][:5].tolist()})")
    return arr


def _check_same_shape(a: NDArray, b: NDArray, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} differ in shape: {a.shape} vs {b.shape}")


def _pooled(numerator: NDArray, denominator: NDArray, valid: NDArray) -> NDArray:
    """sum(numerator) / sum(denominator) over the last axis, over valid units only."""
    num = np.where(valid, numerator, 0.0).sum(axis=-1, keepdims=True)
    den = np.where(valid, denominator, 0.0).sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def _target_out(target: NDArray, shape: tuple[int, ...]) -> float | NDArray:
    return float(target.reshape(-1)[0]) if len(shape) == 1 else target


def transform_ratio(
    observed: ArrayLike,
    expected: ArrayLike,
    method: Literal["SHMI", "CQC"] = "SHMI",
    zero_correction: float | None = 0.5,
) -> Transformed:
    """Standardised ratio O/E on the SHMI log scale or the CQC square-root scale.

    Parameters
    ----------
    observed, expected : array_like
        Observed and expected counts (E > 0 for an assessable unit).
    method : {"SHMI", "CQC"}
        ``SHMI``: Y = log(O/E), s = 1/sqrt(E), target 0.
        ``CQC``: Y = sqrt(O/E), s = 1/(2 sqrt(E)), target 1.
    zero_correction : float or None
        SHMI only: value used in place of O = 0 (default 0.5); None keeps Y = -inf.

    References
    ----------
    Spiegelhalter 2005 (Stat Med), section 3; NHS Digital SHMI methodology.
    """
    o = _as_float("observed", observed)
    e = _as_float("expected", expected)
    _check_same_shape(o, e, ("observed", "expected"))
    valid = (e > 0) & np.isfinite(e) & np.isfinite(o)
    e_safe = np.where(valid, e, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "SHMI":
            o_used = o if zero_correction is None else np.where(o == 0, zero_correction, o)
            Y = np.log(o_used / e_safe)
            s = 1.0 / np.sqrt(e_safe)
            target = np.zeros(o.shape[:-1] + (1,))
            scale: Scale = "log"
        elif method == "CQC":
            Y = np.sqrt(o / e_safe)
            s = 1.0 / (2.0 * np.sqrt(e_safe))
            target = np.ones(o.shape[:-1] + (1,))
            scale = "sqrt"
        else:
            raise ValueError(f"method must be 'SHMI' or 'CQC', got {method!r}")
    return Transformed(Y=Y, s=s, target=_target_out(target, o.shape), scale=scale)


def transform_proportion(
    numerator: ArrayLike, denominator: ArrayLike, target: float | None = None
) -> Transformed:
    """Proportion r/n on the arcsine square-root scale.

    Y = asin(sqrt(r/n)), s = 1/(2 sqrt(n)), target = asin(sqrt(p0)) with p0 the given target
    proportion or, by default, the pooled proportion sum r / sum n over assessable units.

    References
    ----------
    Spiegelhalter 2005 (Stat Med), section 3.1.
    """
    r = _as_float("numerator", numerator)
    n = _as_float("denominator", denominator)
    _check_same_shape(r, n, ("numerator", "denominator"))
    valid = (n > 0) & np.isfinite(n) & np.isfinite(r)
    too_big = valid & (r > n)
    if np.any(too_big):
        where = np.argwhere(too_big)[:10].tolist()
        raise ValueError(f"numerator must not exceed denominator for a proportion (at {where})")
    n_safe = np.where(valid, n, np.nan)
    p0 = _pooled(r, n, valid) if target is None else np.full(r.shape[:-1] + (1,), float(target))
    if np.any((p0 < 0) | (p0 > 1)):
        raise ValueError(f"target proportion must lie in [0, 1], got {p0.reshape(-1)[:5]}")
    Y = np.arcsin(np.sqrt(r / n_safe))
    s = 1.0 / (2.0 * np.sqrt(n_safe))
    return Transformed(Y=Y, s=s, target=_target_out(np.arcsin(np.sqrt(p0)), r.shape), scale="asin")


def transform_rate(
    events: ArrayLike, exposure: ArrayLike, target: float | None = None
) -> Transformed:
    """Ratio of counts O/D on the log scale with 0.5 added to both counts.

    Y = log((O + 0.5)/(D + 0.5)), s = sqrt(O/(O + 0.5)^2 + D/(D + 0.5)^2), target = log(r0) with
    r0 the given target rate or, by default, sum O / sum D over assessable units.

    References
    ----------
    Spiegelhalter 2005 (Stat Med), section 3.3; FunnelPlotR ``transformed_zscore`` ("RC").
    """
    o = _as_float("events", events)
    d = _as_float("exposure", exposure)
    _check_same_shape(o, d, ("events", "exposure"))
    valid = (d > 0) & np.isfinite(d) & np.isfinite(o)
    d_safe = np.where(valid, d, np.nan)
    r0 = _pooled(o, d, valid) if target is None else np.full(o.shape[:-1] + (1,), float(target))
    with np.errstate(divide="ignore", invalid="ignore"):
        Y = np.log((o + 0.5) / (d_safe + 0.5))
        s = np.sqrt(o / (o + 0.5) ** 2 + d_safe / (d_safe + 0.5) ** 2)
        t = np.log(r0)
    return Transformed(Y=Y, s=s, target=_target_out(t, o.shape), scale="log")


def transform_score(value: ArrayLike, se: ArrayLike, target: float | None = None) -> Transformed:
    """Score v with standard error se on its own scale: Y = v, s = se.

    The target defaults to the plain national mean of v over assessable units (se > 0).
    """
    v = np.asarray(value, dtype=np.float64)
    v = v.reshape(1) if v.ndim == 0 else v
    sd = np.asarray(se, dtype=np.float64)
    sd = sd.reshape(1) if sd.ndim == 0 else sd
    _check_same_shape(v, sd, ("value", "se"))
    valid = np.isfinite(v) & np.isfinite(sd) & (sd > 0)
    s = np.where(valid, sd, np.nan)
    Y = np.where(valid, v, np.nan)
    if target is None:
        count = valid.sum(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(valid, v, 0.0).sum(axis=-1, keepdims=True) / count
    else:
        t = np.full(v.shape[:-1] + (1,), float(target))
    return Transformed(Y=Y, s=s, target=_target_out(t, v.shape), scale="identity")


def back_transform(values: ArrayLike, scale: Scale) -> NDArray[np.float64]:
    """Map values on a transformed scale back to the original scale.

    ``sqrt`` -> square (values below 0 map to 0: the sqrt scale has no negative ratios),
    ``log`` -> exp, ``asin`` -> sin^2 clipped to [0, pi/2] first (proportions stay in [0, 1]),
    ``identity`` -> unchanged.
    """
    x = np.asarray(values, dtype=np.float64)
    if scale == "sqrt":
        return np.square(np.maximum(x, 0.0))
    if scale == "log":
        return np.exp(x)
    if scale == "asin":
        return np.square(np.sin(np.clip(x, 0.0, np.pi / 2)))
    if scale == "identity":
        return x
    raise ValueError(f"unknown scale {scale!r}")


def orient(z: ArrayLike, polarity: Polarity) -> NDArray[np.float64]:
    """Orient z-scores so that positive means worse.

    ``higher_is_worse`` keeps the sign, ``lower_is_worse`` flips it.
    """
    arr = np.asarray(z, dtype=np.float64)
    if polarity == "higher_is_worse":
        return arr
    if polarity == "lower_is_worse":
        return -arr
    raise ValueError(f"polarity must be 'higher_is_worse' or 'lower_is_worse', got {polarity!r}")
