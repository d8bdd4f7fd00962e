"""Reading spells.parquet frugally, and the programme on the synthetic nation's own spells."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from surveillance.contracts import MORTALITY_COLUMNS
from surveillance.mortality.encode import read_spells


def test_read_spells_categoricals_dates_and_window(spells, tmp_path):
    s = spells.iloc[:5000].copy()
    table = pa.table(
        {
            "spell_id": pa.array(s["spell_id"].astype(str)),
            "trust_code": pa.array(s["trust_code"].astype(str)),
            "admission_date": pa.array(s["admission_date"].dt.date, pa.date32()),
            "discharge_date": pa.array(s["discharge_date"].dt.date, pa.date32()),
            "diagnosis_group": pa.array(s["diagnosis_group"].astype(str)),
            "age": pa.array(s["age"]),
            "sex": pa.array(s["sex"].astype(str)),
            "admission_method": pa.array(s["admission_method"].astype(str)),
            "comorbidity": pa.array(s["comorbidity"]),
            "deprivation_quintile": pa.array(s["deprivation_quintile"].astype("Int8")),
            "palliative_care": pa.array(s["palliative_care"]),
            "died_in_hospital": pa.array(s["died_in_hospital"]),
            "died_30d": pa.array(s["died_30d"]),
        }
    )
    path = tmp_path / "spells.parquet"
    pq.write_table(table, path)
    got = read_spells(path, start="2013-01-01", end="2013-03-31")
    assert isinstance(got["trust_code"].dtype, pd.CategoricalDtype)
    assert pd.api.types.is_datetime64_any_dtype(got["discharge_date"])
    w = s["discharge_date"].between("2013-01-01", "2013-03-31")
    assert len(got) == int(w.sum())
    np.testing.assert_array_equal(got["died_30d"].to_numpy(), s.loc[w, "died_30d"].to_numpy())


@pytest.mark.slow
def test_programme_on_synthetic_nation(tmp_path):
    from surveillance.mortality import RiskModel, run_mortality
    from surveillance.synth import synthesise

    synthesise(tmp_path, seed=7, scale="test", quarter="2013Q3", quarters=1)
    spells = read_spells(tmp_path / "2013Q3" / "spells.parquet")
    model = RiskModel().fit(spells, end="2013Q3")
    assert model.groups_["diagnosis_group"].nunique() > 100
    res = run_mortality(spells, "2013Q3", model)
    assert list(res.mortality.columns[:10]) == MORTALITY_COLUMNS
    all_rows = res.mortality[res.mortality["diagnosis_group"] == "ALL"]
    window = spells[spells["discharge_date"] >= "2012-10-01"]
    assert all_rows["observed"].sum() == window["died_30d"].sum()
    # calibration in the large over the fit window, and O/E near 1 nationally in the last year
    assert res.p.sum() == pytest.approx(spells["died_30d"].sum(), rel=1e-8)
    assert all_rows["observed"].sum() / all_rows["expected"].sum() == pytest.approx(1, abs=0.05)
