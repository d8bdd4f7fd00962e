"""The packaged indicator catalogue and its loader (DESIGN.md section 5)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from surveillance.catalogue import COLUMNS, DOMAINS, TYPES, load_catalogue, parse_catalogue
from surveillance.catalogue.loader import DEFAULT_PATH, read_catalogue_document
from surveillance.errors import ConfigError


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


@pytest.fixture(scope="module")
def pristine():
    return read_catalogue_document(DEFAULT_PATH)


@pytest.fixture()
def document(pristine):
    return copy.deepcopy(pristine)


def test_catalogue_size_and_coverage(catalogue):
    assert len(catalogue) >= 150
    assert catalogue.index.is_unique and catalogue.index.is_monotonic_increasing
    assert set(catalogue["domain"]) == set(DOMAINS)
    assert set(catalogue["type"]) == set(TYPES)
    assert set(catalogue["tier"]) == {1, 2}
    assert set(catalogue["derived_from"]) == {"", "spells", "staffing", "intelligence"}
    # every type is also present among the indicators read from indicators.csv
    read = catalogue[catalogue["derived_from"] == ""]
    assert set(read["type"]) == set(TYPES)
    # every domain has tier-1 indicators
    assert set(catalogue.loc[catalogue["tier"] == 1, "domain"]) == set(DOMAINS)


def test_columns_follow_interfaces(catalogue):
    assert list(catalogue.columns) == COLUMNS
    assert catalogue.index.name == "indicator_id"
    interfaces = (
        "name, domain, tier, type, polarity, source, cadence, level, derived_from, sr_method, trim, "
        "overdispersion, risk_threshold, elevated_threshold, p_risk, p_elevated, min_denominator, "
        "min_coverage, applies_to_specialist, band_map, means, does_not_mean"
    ).split(", ")
    assert COLUMNS[: len(interfaces)] == interfaces


def test_families_of_intelligent_monitoring(catalogue):
    ids = set(catalogue.index)
    for required in (
        "mort_ratio_all",
        "mort_ratio_ami",
        "mort_alert",
        "staff_fill_rn_day",
        "staff_fill_rn_night",
        "staff_fill_cs_day",
        "staff_fill_cs_night",
        "staff_wards_under90",
        "wait_ae_4h",
        "never_events",
        "hcai_mrsa",
        "hcai_cdiff_rate",
        "intel_whistleblowing",
        "intel_qsg_concern",
        "intel_complaints_rate",
        "intel_complaints_harm",
        "mort_ratio_weekend",
        "mort_ratio_low_risk",
        "mort_ratio_maternal",
        "mort_ratio_neonatal",
    ):
        assert required in ids, required
    groups = [i for i in ids if i.startswith("mort_ratio_")]
    assert len(groups) >= 20 + 5
    # mortality ratios and alerts come from spells; fill rates from staffing
    mort = catalogue.loc[groups]
    assert (mort["derived_from"] == "spells").all()
    assert catalogue.loc["mort_alert", "derived_from"] == "spells"
    fills = catalogue[catalogue.index.str.startswith("staff_")]
    assert len(fills) == 5 and (fills["derived_from"] == "staffing").all()
    assert (
        catalogue[catalogue.index.str.startswith("intel_")]["derived_from"] == "intelligence"
    ).all()


def test_defaults_filled_by_type(catalogue):
    ratios = catalogue[catalogue["type"] == "ratio"]
    assert ratios["sr_method"].isin(["SHMI", "CQC"]).all()
    assert catalogue.loc["mort_ratio_all", "sr_method"] == "SHMI"
    assert catalogue.loc["mort_ratio_all", "trim"] == "truncate"
    assert catalogue.loc["mort_ratio_ami", "sr_method"] == "CQC"
    z = catalogue[catalogue["type"].isin(["proportion", "ratio", "rate", "score"])]
    assert (z["risk_threshold"] == 1.96).all() and (z["elevated_threshold"] == 3.0).all()
    assert z["overdispersion"].eq("additive").all()
    counts = catalogue[catalogue["type"] == "count"]
    assert (counts["p_risk"] == 0.025).all() and (counts["p_elevated"] == 0.001).all()
    cusum = catalogue[catalogue["type"] == "cusum_z"]
    assert (cusum["cusum_k"] == 0.5).all() and (cusum["cusum_h"] == 5.48).all()
    assert cusum["series_type"].notna().all() and (cusum["cadence"] == "monthly").all()
    bands = catalogue[catalogue["type"] == "external_band"]
    assert bands["band_map"].map(lambda m: isinstance(m, dict) and len(m) >= 2).all()
    others = catalogue[catalogue["type"] != "external_band"]
    assert others["band_map"].isna().all()
    assert catalogue["min_coverage"].between(0, 1).all()


def test_every_indicator_explains_itself(catalogue):
    for ident, row in catalogue.iterrows():
        assert row["means"].startswith("A flag means"), ident
        assert row["does_not_mean"].strip().endswith("."), ident
        assert row["means"] != row["does_not_mean"], ident
    assert catalogue["name"].is_unique


def test_specialist_trusts_have_fewer_indicators(catalogue):
    n_specialist = int(catalogue["applies_to_specialist"].sum())
    assert 0.5 * len(catalogue) < n_specialist < len(catalogue)
    assert not catalogue.loc["wait_ae_4h", "applies_to_specialist"]


def _first(document, kind):
    return next(e for e in document["indicators"] if e["type"] == kind)


def test_duplicate_id_refused(document):
    document["indicators"].append(copy.deepcopy(document["indicators"][3]))
    ident = document["indicators"][3]["indicator_id"]
    with pytest.raises(
        ConfigError, match=rf"indicator '{ident}': field 'indicator_id': duplicate id"
    ):
        parse_catalogue(document)


@pytest.mark.parametrize(
    "field", ["name", "domain", "polarity", "means", "does_not_mean", "source"]
)
def test_missing_field_refused(document, field):
    entry = document["indicators"][5]
    del entry[field]
    with pytest.raises(
        ConfigError,
        match=rf"indicator '{entry['indicator_id']}': field '{field}': required field is missing",
    ):
        parse_catalogue(document)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("domain", "efficient"),
        ("type", "percentage"),
        ("polarity", "up"),
        ("cadence", "weekly"),
        ("derived_from", "hes"),
        ("tier", 3),
    ],
)
def test_bad_enum_refused(document, field, value):
    entry = document["indicators"][7]
    entry[field] = value
    with pytest.raises(ConfigError, match=rf"indicator '{entry['indicator_id']}': field '{field}'"):
        parse_catalogue(document)


def test_unknown_field_and_type_rules_refused(document):
    entry = _first(document, "proportion")
    entry["colour"] = "red"
    band = _first(document, "external_band")
    del band["band_map"]
    cusum = _first(document, "cusum_z")
    del cusum["series_type"]
    with pytest.raises(ConfigError) as info:
        parse_catalogue(document)
    message = str(info.value)
    assert f"indicator '{entry['indicator_id']}': field 'colour': unknown field" in message
    assert f"indicator '{band['indicator_id']}'" in message and "band_map is required" in message
    assert (
        f"indicator '{cusum['indicator_id']}'" in message and "series_type is required" in message
    )


def test_bad_band_flag_and_id_refused(document):
    band = _first(document, "external_band")
    label = next(iter(band["band_map"]))
    band["band_map"][label] = "very_bad"
    document["indicators"][0]["indicator_id"] = "Mortality"
    with pytest.raises(ConfigError) as info:
        parse_catalogue(document)
    assert f"field 'band_map.{label}'" in str(info.value)
    assert "indicator 'Mortality': field 'indicator_id'" in str(info.value)


def test_load_from_path(tmp_path: Path, document):
    document["indicators"] = document["indicators"][:3]
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(document))
    frame = load_catalogue(path)
    assert len(frame) == 3
    path.write_text("indicators: [")
    with pytest.raises(ConfigError, match="cannot read catalogue"):
        load_catalogue(path)
