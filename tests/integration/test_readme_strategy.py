"""The strategy in the README works as written and fits in a few dozen lines."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from quantdesk.backtest import run_backtest
from quantdesk.data.samples import load_sample
from quantdesk.model import Instrument
from quantdesk.strategies import get_strategy

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_strategy_runs_and_trades() -> None:
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert code is not None
    source = code.group(1)
    assert len(source.strip().splitlines()) <= 40
    exec(compile(source, "README.md", "exec"), {})
    goog = load_sample("GOOG")
    result = run_backtest(
        [get_strategy("breakout")("GOOG")],
        {"GOOG": goog},
        {"GOOG": Instrument("GOOG", tick_size=Decimal("0.0001"))},
        cash=Decimal(100_000),
        default_qty=Decimal(10),
    )
    assert result.stats.trades > 5
    assert any(o.tag == "STOP" for o in result.orders)
