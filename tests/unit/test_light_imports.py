"""A backtest on synthetic bars without a calendar must not import pandas or exchange_calendars."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import date

import numpy as np
import pytest

from quantdesk.data import synthetic


def _run(code: str) -> dict[str, object]:
    """Run `code` in a fresh interpreter (this one has pandas loaded) and read its JSON line."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_synthetic_backtest_without_calendar_imports_neither_pandas_nor_exchange_calendars() -> None:
    result = _run(
        """
        import json, sys
        from decimal import Decimal

        import quantdesk.backtest
        import quantdesk.data
        from quantdesk.backtest import run_backtest
        from quantdesk.data.synthetic import synthetic_intraday
        from quantdesk.model import Instrument
        from quantdesk.strategies import get_strategy

        series = synthetic_intraday("SYN", bars=3_000, seed=7)
        strategy = get_strategy("sma_cross")("SYN", fast=10, slow=20)
        result = run_backtest(
            [strategy], {"SYN": series}, {"SYN": Instrument("SYN")}, cash=Decimal(100_000)
        )
        print(json.dumps({
            "loaded": [m for m in ("pandas", "exchange_calendars", "pyarrow") if m in sys.modules],
            "trades": len(result.trades),
            "start": result.stats.start,
            "repr": repr(series),
        }))
        """
    )
    assert result["loaded"] == []
    # The run really happened: the strategy traded and the stats carry the first bar's time.
    assert isinstance(result["trades"], int) and result["trades"] > 0
    assert result["start"] == "2024-01-02T14:30:00+00:00"
    assert "2024-01-02T14:30:00+00:00.." in str(result["repr"])


def test_lazy_data_names_still_resolve_and_load_pandas_on_use() -> None:
    result = _run(
        """
        import json, sys
        import quantdesk.data as data

        before = "pandas" in sys.modules
        names = sorted(n for n in data.__all__ if callable(getattr(data, n)))
        print(json.dumps({"before": before, "after": "pandas" in sys.modules, "names": names,
                          "listed": sorted(set(data.__all__) - set(dir(data)))}))
        """
    )
    assert result["before"] is False
    assert result["after"] is True  # load_bars and friends came in on first access
    assert result["listed"] == []
    names = result["names"]
    assert isinstance(names, list) and {"load_bars", "load_sample", "validate_bars"} <= set(names)


def test_unknown_data_name_is_an_attribute_error() -> None:
    import quantdesk.data as data

    with pytest.raises(AttributeError, match="no_such_loader"):
        _ = data.no_such_loader


@pytest.mark.parametrize(
    ("exchange", "first", "count"),
    [
        ("XNYS", date(2000, 1, 3), 12_000),  # the whole table: holidays, early closes, 9/11, Sandy
        ("XNYS", date(2024, 1, 2), 2_618),  # what the 1M-bar benchmark asks for
        ("XNSE", date(2000, 1, 3), 6_500),  # to the last XBOM year, then plain weekdays
        ("XNSE", date(2026, 11, 28), 40),
        ("XNSE", date(2027, 3, 6), 10),  # past the XBOM calendar: weekdays only
    ],
)
def test_session_table_gives_the_exchange_calendars_sessions(exchange: str, first: date, count: int) -> None:
    venue = synthetic._VENUES[exchange]
    opens, closes = synthetic._sessions(venue, first, count)
    expected_opens, expected_closes = synthetic._calendar_sessions(venue, first, count)
    assert len(opens) == count
    np.testing.assert_array_equal(opens, expected_opens)
    np.testing.assert_array_equal(closes, expected_closes)
