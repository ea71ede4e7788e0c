"""Bundled samples read from bokeh-sampledata and gym-anytrading, and the sample: spelling."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from quantdesk.data import load_sample, resolve_data, sample_names
from quantdesk.errors import UserError

FIXTURES = Path(__file__).parents[2] / "fixtures" / "data"


def test_sample_names_lists_the_stocks_and_the_forex_series() -> None:
    assert sample_names() == ["AAPL", "EURUSD_1H", "FB", "GOOG", "IBM", "MSFT"]


def test_goog_is_daily_unadjusted_from_2004_labelled_at_midnight_utc() -> None:
    goog = load_sample("GOOG")

    assert goog.symbol == "GOOG"
    assert len(goog) == 2148
    assert goog.ts[0] == pd.Timestamp("2004-08-19", tz="UTC").value
    assert goog.ts[-1] == pd.Timestamp("2013-03-01", tz="UTC").value
    # Unadjusted: the IPO-day open, not the split-adjusted ~50.
    assert goog.open[0] == 100.01
    assert goog.close[0] == 100.335
    # Up to four decimals appear in the source (e.g. a 2005-07-20 high of 312.6088).
    assert goog.price_decimals == 4
    assert goog.source == "sample:GOOG"
    assert goog.skipped == 0


def test_eurusd_1h_is_hourly_from_day_first_text() -> None:
    eurusd = load_sample("EURUSD_1H")

    assert len(eurusd) == 6225
    assert eurusd.ts[0] == pd.Timestamp("2017-01-01 22:00", tz="UTC").value
    assert eurusd.ts[1] - eurusd.ts[0] == 3_600_000_000_000
    assert eurusd.open[0] == 1.05236
    assert eurusd.price_decimals == 5


def test_sample_names_are_case_insensitive() -> None:
    assert load_sample("fb").symbol == "FB"


def test_unknown_sample_lists_the_known_ones() -> None:
    with pytest.raises(UserError, match="unknown sample 'TSLA'; known samples: AAPL, EURUSD_1H"):
        load_sample("TSLA")


def test_resolve_data_dispatches_sample_specs_and_paths() -> None:
    from_sample = resolve_data("sample:ibm")
    from_file = resolve_data(str(FIXTURES / "multi_symbol.csv"))

    assert list(from_sample) == ["IBM"]
    assert len(from_sample["IBM"]) == 3270
    assert list(from_file) == ["AAPL", "IBM"]


def test_resolve_data_passes_options_to_the_loader() -> None:
    loaded = resolve_data(str(FIXTURES / "ny_naive_1min.csv"), tz="America/New_York")

    assert loaded["NY_NAIVE_1MIN"].ts[0] == pd.Timestamp("2024-03-08 14:30", tz="UTC").value


def test_unknown_sample_spec_is_a_user_error() -> None:
    with pytest.raises(UserError, match="known samples"):
        resolve_data("sample:NOPE")


def test_loading_the_forex_sample_does_not_import_gymnasium() -> None:
    code = (
        "import sys; from quantdesk.data import load_sample; load_sample('EURUSD_1H'); "
        "print(sorted(m for m in ('gymnasium', 'gym_anytrading', 'bokeh') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == "[]"
