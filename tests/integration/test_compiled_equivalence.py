"""The compiled build and the pure sources are one program: the same runs log the same events."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import quantdesk.engine.engine

SRC = Path(quantdesk.__file__).resolve().parent.parent

# Four runs through the paths the compiled modules own: plain fills, fees, slippage and
# partial fills, shorts, stops and targets (vwap), limit entries at the close, the calendar.
SCRIPT = """
import json
from decimal import Decimal
import quantdesk.engine.engine
from quantdesk.backtest import run_backtest
from quantdesk.clock.calendar import MarketCalendar
from quantdesk.data.synthetic import synthetic_intraday
from quantdesk.model import Instrument
from quantdesk.strategies import get_strategy
from quantdesk.venues.sim import FillAt, SimVenueConfig
from quantdesk.venues.sim.fees import NseEquityIntradayFees, UsEquityFees

series = synthetic_intraday("SYN", days=20, seed=11)
thin = SimVenueConfig(slippage_ticks=1, max_volume_share=0.01)
calendar = MarketCalendar("XNYS", start="2023-12-01", end="2024-03-31")
runs = {
    "sma": ("sma_cross", {"allow_short": True}, SimVenueConfig(), UsEquityFees()),
    "vwap": ("vwap_mean_reversion", {}, thin, NseEquityIntradayFees()),
    "orb": ("opening_range_breakout", {}, SimVenueConfig(fill_at=FillAt.CLOSE, latency_ms=5), UsEquityFees()),
    "momentum": ("momentum", {"threshold": 0.3, "allow_short": True}, SimVenueConfig(), None),
}
out = {"engine_module": quantdesk.engine.engine.__file__}
for key, (name, params, venue, fees) in runs.items():
    result = run_backtest(
        [get_strategy(name)("SYN", **params)], {"SYN": series}, {"SYN": Instrument("SYN")},
        cash=Decimal(1_000_000), default_qty=Decimal(10), venue_config=venue, fee_model=fees,
        calendar=calendar,
    )
    pnl = str(result.stats.realized_pnl)
    out[key] = [result.event_log_sha256, len(result.trades), pnl, len(result.orders)]
print(json.dumps(out))
"""


def _run(pythonpath: Path, cwd: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2_000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.skipif(
    not str(quantdesk.engine.engine.__file__).endswith(".so"),
    reason="a pure build: nothing compiled to compare",
)
def test_the_compiled_build_and_the_pure_sources_log_the_same_events(tmp_path: Path) -> None:
    pure = tmp_path / "pure" / "src"
    shutil.copytree(SRC, pure, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    compiled_run = _run(SRC, tmp_path)
    pure_run = _run(pure, tmp_path)
    assert str(compiled_run.pop("engine_module")).endswith(".so")
    assert str(pure_run.pop("engine_module")).endswith(".py")
    assert all(trades for _, trades, _, _ in compiled_run.values())  # type: ignore[misc]
    assert compiled_run == pure_run
