import pandas as pd
import pytest

from surveillance.periods import Quarter


def test_quarter_bounds_and_lookback():
    q = Quarter.parse("2013Q3")
    assert q.start == pd.Timestamp("2013-07-01")
    assert q.end == pd.Timestamp("2013-09-30")
    assert q.months() == ["2013-07", "2013-08", "2013-09"]
    assert q.lookback_start(12) == pd.Timestamp("2012-10-01")
    assert q.lookback_start(36) == pd.Timestamp("2010-10-01")
    assert q.lookback_months(12)[0] == "2012-10" and q.lookback_months(12)[-1] == "2013-09"
    assert str(q.previous()) == "2013Q2" and str(Quarter.parse("2013Q1").previous()) == "2012Q4"
    assert Quarter.parse("2013Q4").end == pd.Timestamp("2013-12-31")


@pytest.mark.parametrize("bad", ["2013Q5", "13Q1", "2013-Q1", "../2013Q1", ""])
def test_quarter_rejects_malformed(bad):
    with pytest.raises(ValueError):
        Quarter.parse(bad)
