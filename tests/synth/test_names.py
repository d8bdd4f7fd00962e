"""Synthetic trusts must not look like real ones (a failing synthetic trust is not a real trust)."""

from __future__ import annotations

import csv

import yaml

from surveillance.synth.config import HERE


def test_no_place_word_shared_with_a_real_trust(shared_dir):
    spec = yaml.safe_load((HERE / "names.yaml").read_text())
    with open(shared_dir / "data" / "nhs_trusts_ods_etr.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    real_words = {w for r in rows for w in r[1].upper().replace(",", " ").split()}
    real_codes = {r[0] for r in rows}
    for place in spec["places"] + spec["counties"]:
        for word in place.upper().split():
            assert word not in real_words, (place, word)
    # Synthetic codes use R + digit 2-9, a range no real trust code in the extract uses.
    assert not any(c[:1] == "R" and c[1:2] in "23456789" and len(c) == 3 for c in real_codes)


def test_names_in_bundle_use_only_fictional_places(nation_dir):
    import pandas as pd

    spec = yaml.safe_load((HERE / "names.yaml").read_text())
    t = pd.read_csv(nation_dir / "2013Q3" / "trusts.csv", dtype=str)
    vocab = set(" ".join(spec["places"] + spec["counties"]).split())
    generic = {
        "Hospitals",
        "University",
        "Teaching",
        "General",
        "Hospital",
        "Healthcare",
        "and",
        "District",
        "Royal",
        "Infirmary",
        "North",
        "South",
        "East",
        "West",
        "NHS",
        "Trust",
        "Foundation",
        "Heart",
        "Lung",
        "Centre",
        "Cardiothoracic",
        "Cancer",
        "Oncology",
        "The",
        "Orthopaedic",
        "Bone",
        "Joint",
        "Childrens",
        "Womens",
        "Maternity",
        "Eye",
        "Neurosciences",
        "Neurological",
    }
    for name in t["trust_name"]:
        assert set(name.split()) <= vocab | generic, name
