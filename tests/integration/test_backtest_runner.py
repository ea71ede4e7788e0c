"""Backtests end to end on bundled and synthetic data: determinism, outputs, fill models, every built-in."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from quantdesk.backtest import run_backtest
from quantdesk.backtest.job import BacktestJob, run_job
from quantdesk.clock.calendar import MarketCalendar
from quantdesk.data.synthetic import synthetic_intraday
from quantdesk.errors import UserError
from quantdesk.model import Instrument
from quantdesk.strategies import get_strategy
from quantdesk.venues.sim import FillAt, SimVenueConfig


def _intraday_run(name: str, **params: object):  # type: ignore[no-untyped-def]
    series = synthetic_intraday("SYN", days=20, seed=11)
    calendar = MarketCalendar("XNYS", start="2023-12-01", end="2024-03-31")
    return run_backtest(
        [get_strategy(name)("SYN", **params)],
        {"SYN": series},
        {"SYN": Instrument("SYN")},
        cash=Decimal(1_000_000),
        default_qty=Decimal(10),
        calendar=calendar,
    )


@pytest.mark.parametrize(
    "name",
    ["sma_cross", "vwap_mean_reversion", "vwap_micro_mean_reversion", "opening_range_breakout", "momentum"],
)
def test_every_builtin_trades_on_synthetic_intraday_data(name: str) -> None:
    # momentum's default 2% threshold is for daily bars; 20 minutes rarely move that much.
    result = _intraday_run(name, **({"threshold": 0.3} if name == "momentum" else {}))
    assert result.stats.trades > 0
    assert result.signals >= result.stats.trades
    assert result.stats.net_pnl == result.stats.final_equity - result.stats.starting_equity
    # No order outlives the run.
    assert all(o.is_terminal for o in result.orders)


@pytest.mark.parametrize("name", ["vwap_mean_reversion", "vwap_micro_mean_reversion"])
def test_vwap_strategies_never_emit_a_stop_on_the_wrong_side(name: str) -> None:
    result = _intraday_run(name, stop_k=2.2)  # a band close to k: stretches past it are common
    assert result.stats.trades > 0
    assert not [reason for reason in result.blocked if reason.startswith("MALFORMED")]


@pytest.mark.parametrize("name", ["vwap_mean_reversion", "opening_range_breakout"])
def test_intraday_strategies_are_flat_at_each_session_end(name: str) -> None:
    result = _intraday_run(name)
    calendar = MarketCalendar("XNYS", start="2023-12-01", end="2024-03-31")
    for trade in result.trades:
        assert calendar.session_of(trade.entry_time) == calendar.session_of(trade.exit_time)


def test_same_backtest_twice_gives_the_same_event_log_hash() -> None:
    first, second = _intraday_run("vwap_mean_reversion"), _intraday_run("vwap_mean_reversion")
    assert first.event_log_sha256 == second.event_log_sha256
    assert first.event_count == second.event_count > 0
    different = _intraday_run("vwap_mean_reversion", k=2.5)
    assert different.event_log_sha256 != first.event_log_sha256


def test_fill_at_close_fills_market_orders_on_the_signal_bar() -> None:
    series = synthetic_intraday("SYN", days=5, seed=3)
    instruments = {"SYN": Instrument("SYN")}

    def run(fill_at: FillAt):  # type: ignore[no-untyped-def]
        return run_backtest(
            [get_strategy("sma_cross")("SYN")],
            {"SYN": series},
            instruments,
            cash=Decimal(10**6),
            venue_config=SimVenueConfig(fill_at=fill_at),
        )

    at_open, at_close = run(FillAt.NEXT_OPEN), run(FillAt.CLOSE)
    closes = dict(zip(series.ts.tolist(), series.close.tolist(), strict=True))
    assert all(float(t.entry_price) == closes[t.entry_time] for t in at_close.trades)
    assert at_open.trades[0].entry_time > at_close.trades[0].entry_time


def test_equity_curve_ends_at_the_exact_final_equity() -> None:
    result = _intraday_run("momentum", threshold=0.3)
    assert result.trades
    assert result.equity.equity[-1] == pytest.approx(float(result.stats.final_equity), abs=1e-6)
    assert len(result.equity.ts) == len(result.exposure) == result.bars


def test_multi_symbol_runs_merge_bars_in_time_order() -> None:
    a = synthetic_intraday("AAA", days=3, seed=1)
    b = synthetic_intraday("BBB", days=3, seed=2, start_price=50.0)
    strategies = [get_strategy("sma_cross")(s) for s in ("AAA", "BBB")]
    result = run_backtest(
        strategies,
        {"AAA": a, "BBB": b},
        {"AAA": Instrument("AAA"), "BBB": Instrument("BBB")},
        cash=Decimal(10**6),
    )
    assert {t.symbol for t in result.trades} == {"AAA", "BBB"}
    assert result.bars == len(a) + len(b)
    assert len(result.equity.ts) == len(a)  # both trade the same minutes


def test_job_writes_json_and_report(tmp_path) -> None:  # type: ignore[no-untyped-def]
    job = BacktestJob(
        strategy="sma_cross",
        data="sample:GOOG",
        qty=Decimal(10),
        json_path=str(tmp_path / "out.json"),
        report_path=str(tmp_path / "out.html"),
    )
    output = run_job(job)
    summary = json.loads((tmp_path / "out.json").read_text())
    assert {"net_pnl", "trades", "stats", "event_log_sha256"} <= set(summary)
    assert set(summary["trades"][0]) >= {
        "entry_time",
        "exit_time",
        "side",
        "qty",
        "entry_price",
        "exit_price",
        "pnl",
    }
    assert Decimal(summary["net_pnl"]) == output.result.net_pnl
    assert summary["instruments"]["GOOG"]["source"].startswith("inferred from data")
    html = (tmp_path / "out.html").read_text()
    assert "inferred from data" in html and output.result.event_log_sha256 in html


def test_job_rejects_a_symbol_missing_from_the_data() -> None:
    with pytest.raises(UserError, match="no symbol ZZZ"):
        run_job(BacktestJob(strategy="sma_cross", data="sample:GOOG", symbols=("ZZZ",)))


def test_a_backtest_makes_no_reference_cycles_per_trade() -> None:
    """A run pauses the cyclic collector, which is safe only while the per-event work makes no
    reference cycles: reference counting then frees everything at once. (Compiled, a nested
    function in the sizer made one per sized plan.)"""
    import gc

    series = synthetic_intraday("SYN", bars=20_000, seed=7)
    strategy = get_strategy("sma_cross")("SYN", fast=10, slow=20)
    gc.collect()
    result = run_backtest(
        [strategy], {"SYN": series}, {"SYN": Instrument("SYN")}, cash=Decimal(10**9), default_qty=Decimal(1)
    )
    assert gc.isenabled()
    assert len(result.trades) > 400
    # Collected now, with the result still held: only what the run dropped in cycles.
    assert gc.collect() < 50
