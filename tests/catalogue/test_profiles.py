"""surveillance/synth/indicator_profiles.yaml matches the catalogue and is realistic."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from surveillance.catalogue import load_catalogue

PROFILES = (
    Path(__file__).resolve().parents[2] / "surveillance" / "synth" / "indicator_profiles.yaml"
)
MEDIAN_SPELLS_10K = 6.0  # a median trust admits about 60,000 spells a year
ENGLAND_SPELLS_10K = 1550.0  # about 15.5 million a year
PERIOD = {"quarterly": 0.25, "annual": 1.0, "rolling_12m": 1.0, "monthly": 1 / 12}


@pytest.fixture(scope="module")
def profiles():
    return yaml.safe_load(PROFILES.read_text())


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def test_one_profile_per_indicator_read_from_file(profiles, catalogue):
    read = catalogue[catalogue["derived_from"] == ""]
    assert set(profiles) == set(read.index)
    for ident, prof in profiles.items():
        row = catalogue.loc[ident]
        expected_kind = row["series_type"] if row["type"] == "cusum_z" else row["type"]
        assert prof["kind"] == expected_kind, ident
        loadings = prof["loadings"]
        assert row["domain"] in loadings, ident
        assert set(loadings) <= {"safe", "effective", "caring", "responsive", "well_led"}
        assert sum(v * v for v in loadings.values()) <= 1.0, ident


def _phi_at_median(prof: dict, cadence: str) -> float:
    """Implied dispersion 1 + tau^2 / s^2 at a median trust (independent of the generator)."""
    size = MEDIAN_SPELLS_10K * PERIOD[cadence]
    kind, tau = prof["kind"], prof["tau"]
    if kind == "proportion":
        s2 = 1 / (4 * prof["denominator_per_10k"] * size)
    elif kind == "ratio":
        s2 = 1 / (prof["denominator_per_10k"] * size)
    elif kind == "rate":
        s2 = 1 / (prof["national"] / prof["per"] * prof["denominator_per_10k"] * size)
    elif kind == "count":  # Poisson-lognormal: var/mean = 1 + mu (exp(tau^2) - 1)
        return 1 + prof["national"] * size * (math.exp(tau**2) - 1)
    elif kind == "score":
        s2 = prof["se"] ** 2
    else:
        raise AssertionError(kind)
    return 1 + tau**2 / s2


def test_overdispersion_well_above_one(profiles, catalogue):
    for ident, prof in profiles.items():
        if prof["kind"] in ("external_band", "rule"):
            continue
        phi = _phi_at_median(prof, catalogue.loc[ident, "cadence"])
        assert 1.2 < phi < 500, (ident, phi)


def test_field_ranges(profiles, catalogue):
    for ident, prof in profiles.items():
        kind = prof["kind"]
        if kind == "proportion":
            assert 0 < prof["national"] < 1, ident
        if kind == "ratio":
            assert prof["national"] == 1.0
        if kind in ("proportion", "ratio", "rate", "count"):
            assert prof["denominator_per_10k"] > 0 and prof["tau"] > 0, ident
        if kind == "score":
            assert prof["se"] > 0 and prof["tau"] > 0 and prof["scale"], ident
        if kind == "external_band":
            bands = prof["bands"]
            assert set(bands) == set(catalogue.loc[ident, "band_map"]), ident
            assert sum(bands.values()) == pytest.approx(1.0)
            # bands are listed worst first: the first maps to a flag, the last does not
            band_map = catalogue.loc[ident, "band_map"]
            assert band_map[next(iter(bands))] != "no_evidence", ident
            assert band_map[list(bands)[-1]] == "no_evidence", ident
        if kind == "rule":
            assert prof["national"] > 0, ident


def test_realistic_national_levels(profiles):
    assert profiles["readm_proportion_30d"]["national"] == pytest.approx(0.125, abs=0.01)
    assert profiles["wait_ae_4h"]["national"] == pytest.approx(0.05, abs=0.01)  # 95% within 4 hours
    never = profiles["never_events"]["national"] * ENGLAND_SPELLS_10K
    assert 250 <= never <= 350  # about 300 a year in England
    mrsa = profiles["hcai_mrsa"]["national"] * ENGLAND_SPELLS_10K
    assert 200 <= mrsa <= 600  # trust-apportioned MRSA bacteraemia, a few hundred a year
    cdiff = profiles["hcai_cdiff_rate"]
    assert cdiff["per"] == 100000 and 10 <= cdiff["national"] <= 25
    assert 3.0 < profiles["ss_engagement"]["national"] < 4.5  # 1-5 scale
