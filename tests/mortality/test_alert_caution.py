"""The minimum-expected rule for alerts (monitor.alert_caution, monitoring.yaml)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from surveillance.errors import ConfigError
from surveillance.mortality.monitor import alert_caution, load_cusum_settings


def test_caution_below_the_minimum_expected_only():
    observed = np.array([2, 45, 3])
    expected = np.array([0.009, 27.2, 1.0])
    out = alert_caution(observed, expected, 1.0)
    assert out[1] == "" and out[2] == ""  # 1.0 expected is not below the minimum
    assert out[0] == (
        "few expected deaths: 0.009 expected against the minimum 1 for an alert; "
        "a signal on very few patients, treat with care"
    )
    # the text shown in the reports never holds the (possibly small) observed count
    assert "2" not in out[0].replace("0.009", "")
    assert (alert_caution(observed, expected, 0.0) == "").all()  # 0 switches the rule off


def test_minimum_is_configured_in_monitoring_yaml(tmp_path: Path):
    assert load_cusum_settings().alert_min_expected == 1.0
    text = (Path(__file__).resolve().parents[2] / "models" / "risk" / "monitoring.yaml").read_text()
    (tmp_path / "m.yaml").write_text(
        text.replace("alert_min_expected: 1.0", "alert_min_expected: 2.5")
    )
    assert load_cusum_settings(tmp_path / "m.yaml").alert_min_expected == 2.5
    (tmp_path / "bad.yaml").write_text(
        text.replace("alert_min_expected: 1.0", "alert_min_expected: -1")
    )
    with pytest.raises(ConfigError, match="alert_min_expected"):
        load_cusum_settings(tmp_path / "bad.yaml")
