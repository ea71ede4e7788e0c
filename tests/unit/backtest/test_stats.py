"""Tests of backtest statistics, checked against backtesting.py on the same equity and trades."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import EURUSD, GOOG, SMA

from quantdesk.backtest.stats import EquityCurve, Stats, TradeRecord, compute_stats
from quantdesk.errors import DataError

# backtesting.py itself still calls a pandas accessor that pandas 3 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:DatetimeIndex.dayofweek is deprecated")

NS_PER_DAY = 86_400 * 10**9
T0 = pd.Timestamp("2024-01-01", tz="UTC").value


class SmaCross(Strategy):  # type: ignore[misc]
    fast = 10
    slow = 20

    def init(self) -> None:
        self.fast_ma = self.I(SMA, self.data.Close, self.fast)
        self.slow_ma = self.I(SMA, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.fast_ma, self.slow_ma):
            self.position.close()
            self.buy()
        elif crossover(self.slow_ma, self.fast_ma):
            self.position.close()
            self.sell()


def _crypto_hourly() -> pd.DataFrame:
    """Hourly bars every day of the week, so weekends are present (365-day year)."""
    rng = np.random.default_rng(7)
    index = pd.date_range("2021-03-01", periods=24 * 90, freq="h")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.006, len(index))))
    open_ = np.r_[close[0], close[:-1]]
    spread = np.abs(rng.normal(0, 0.002, len(index))) * close
    return pd.DataFrame(
        {
            "Open": open_,
            "High": np.maximum(open_, close) + spread,
            "Low": np.minimum(open_, close) - spread,
            "Close": close,
            "Volume": 1.0,
        },
        index=index,
    )


@dataclass(frozen=True)
class Run:
    reference: pd.Series
    ours: Stats
    trades: tuple[TradeRecord, ...]


@cache
def _run(name: str) -> Run:
    data = {"goog_daily": GOOG, "eurusd_hourly": EURUSD, "crypto_hourly_247": _crypto_hourly()}
    reference = Backtest(data[name], SmaCross, cash=10_000, commission=0.002, finalize_trades=True).run()
    curve_df = reference["_equity_curve"]
    trades_df = reference["_trades"]
    curve = EquityCurve(curve_df.index.as_unit("ns").asi8, curve_df["Equity"].to_numpy(dtype=np.float64))
    exposure = np.zeros(len(curve), dtype=bool)
    for entry_bar, exit_bar in zip(trades_df["EntryBar"], trades_df["ExitBar"], strict=True):
        exposure[entry_bar : exit_bar + 1] = True
    trades = tuple(
        TradeRecord(
            symbol=name,
            side="LONG" if row.Size > 0 else "SHORT",
            qty=Decimal(abs(int(row.Size))),
            entry_time=pd.Timestamp(row.EntryTime).as_unit("ns").value,
            exit_time=pd.Timestamp(row.ExitTime).as_unit("ns").value,
            entry_price=Decimal(repr(row.EntryPrice)),
            exit_price=Decimal(repr(row.ExitPrice)),
            pnl=Decimal(repr(row.PnL)),
            fees=Decimal(repr(row.Commission)),
            strategy="sma_cross",
        )
        for row in trades_df.itertuples()
    )
    ours = compute_stats(curve, trades, starting_cash=Decimal(10_000), exposure=exposure)
    return Run(reference, ours, trades)


RUNS = ["goog_daily", "eurusd_hourly", "crypto_hourly_247"]


@pytest.mark.parametrize(
    ("name", "year"), [("goog_daily", 252), ("eurusd_hourly", 252), ("crypto_hourly_247", 365)]
)
def test_equity_figures_match_backtesting_py(name: str, year: int) -> None:
    run = _run(name)
    ref, ours = run.reference, run.ours
    assert ours.periods_per_year == year
    pairs = {
        "total_return_pct": "Return [%]",
        "annual_return_pct": "Return (Ann.) [%]",
        "annual_volatility_pct": "Volatility (Ann.) [%]",
        "cagr_pct": "CAGR [%]",
        "sharpe": "Sharpe Ratio",
        "sortino": "Sortino Ratio",
        "calmar": "Calmar Ratio",
        "max_drawdown_pct": "Max. Drawdown [%]",
        "exposure_pct": "Exposure Time [%]",
    }
    for ours_name, ref_name in pairs.items():
        assert getattr(ours, ours_name) == pytest.approx(ref[ref_name], rel=1e-6), ours_name
    ref_dd_days = ref["Max. Drawdown Duration"].total_seconds() / 86_400
    assert ours.max_drawdown_duration_days == pytest.approx(ref_dd_days, rel=1e-9)
    assert float(ours.final_equity) == pytest.approx(ref["Equity Final [$]"], rel=1e-12)


@pytest.mark.parametrize("name", RUNS)
def test_trade_counts_and_win_rate_match_backtesting_py(name: str) -> None:
    run = _run(name)
    assert run.ours.trades == run.reference["# Trades"] > 10
    assert run.ours.win_rate_pct == pytest.approx(run.reference["Win Rate [%]"], rel=1e-9)


@pytest.mark.parametrize("name", RUNS)
def test_trade_returns_match_backtesting_py_once_its_commission_is_added_back(name: str) -> None:
    # backtesting.py's trade return subtracts commission / (size * entry); ours is before fees.
    run = _run(name)
    df = run.reference["_trades"]
    gross = df["ReturnPct"] + df["Commission"] / (df["Size"].abs() * df["EntryPrice"])
    growth = np.log1p(gross.to_numpy())
    assert run.ours.best_trade_pct == pytest.approx(gross.max() * 100, rel=1e-6)
    assert run.ours.worst_trade_pct == pytest.approx(gross.min() * 100, rel=1e-6)
    assert run.ours.expectancy_pct == pytest.approx(gross.mean() * 100, rel=1e-6)
    assert run.ours.avg_trade_pct == pytest.approx(math.expm1(growth.mean()) * 100, rel=1e-6)
    # Durations: backtesting.py rounds its mean up to the bar resolution.
    mean_held = df["Duration"].mean()
    assert run.ours.avg_trade_duration_days == pytest.approx(mean_held.total_seconds() / 86_400, rel=1e-6)
    ref_max = run.reference["Max. Trade Duration"].total_seconds() / 86_400
    assert run.ours.max_trade_duration_days == pytest.approx(ref_max, rel=1e-9)


@pytest.mark.parametrize("name", RUNS)
def test_profit_factor_is_money_won_over_money_lost(name: str) -> None:
    # backtesting.py divides summed trade *returns*; ours divides money, so only this holds.
    run = _run(name)
    pnl = run.reference["_trades"]["PnL"]
    expected = pnl[pnl > 0].sum() / -pnl[pnl < 0].sum()
    assert run.ours.profit_factor == pytest.approx(expected, rel=1e-9)


def test_realized_pnl_is_exact_sum_of_trade_pnl() -> None:
    run = _run("goog_daily")
    assert run.ours.realized_pnl == sum((t.pnl for t in run.trades), Decimal(0))
    assert run.ours.total_fees == sum((t.fees for t in run.trades), Decimal(0))


def _trade(pnl: str, side: str = "LONG", entry: str = "100", exit_: str = "102") -> TradeRecord:
    return TradeRecord(
        symbol="ES",
        side=side,
        qty=Decimal(1),
        entry_time=T0,
        exit_time=T0 + 3_600 * 10**9,
        entry_price=Decimal(entry),
        exit_price=Decimal(exit_),
        pnl=Decimal(pnl),
        fees=Decimal("1.25"),
        strategy="s",
    )


def _curve(values: list[float], step_ns: int = NS_PER_DAY) -> EquityCurve:
    ts = T0 + np.arange(len(values), dtype=np.int64) * step_ns
    return EquityCurve(ts, np.asarray(values, dtype=np.float64))


def _stats(curve: EquityCurve, trades: list[TradeRecord], **kwargs: object) -> Stats:
    kwargs.setdefault("starting_cash", Decimal("100000.00"))
    kwargs.setdefault("exposure", np.zeros(len(curve), dtype=bool))
    return compute_stats(curve, trades, **kwargs)  # type: ignore[arg-type]


def test_return_pct_is_price_move_signed_by_side() -> None:
    assert _trade("2").return_pct == pytest.approx(0.02)
    assert _trade("-2", side="SHORT").return_pct == pytest.approx(-0.02)
    assert _trade("5", side="SHORT", entry="100", exit_="95").return_pct == pytest.approx(0.05)


def test_cagr_of_ten_percent_in_one_year() -> None:
    curve = EquityCurve(
        np.array([T0, T0 + int(365.25 * NS_PER_DAY)], dtype=np.int64),
        np.array([100_000.0, 110_000.0]),
    )
    stats = _stats(curve, [], final_equity=Decimal("110000.00"))
    assert stats.total_return_pct == pytest.approx(10.0)
    assert stats.cagr_pct == pytest.approx(10.0)
    assert stats.net_pnl == Decimal("10000.00")


def test_profit_factor_money_ratio_and_avg_pnl_keep_cents() -> None:
    trades = [_trade("30.10"), _trade("20.00"), _trade("-10.05")]
    stats = _stats(_curve([100_000.0, 100_040.05]), trades)
    assert stats.profit_factor == pytest.approx(50.10 / 10.05)
    assert stats.win_rate_pct == pytest.approx(200 / 3)
    assert stats.realized_pnl == Decimal("40.05")
    assert stats.avg_trade_pnl == Decimal("13.35")


def test_profit_factor_without_losses_is_infinite_and_null_in_json() -> None:
    stats = _stats(_curve([100_000.0, 100_010.0]), [_trade("10")])
    assert stats.profit_factor == math.inf
    assert stats.to_dict()["profit_factor"] is None
    assert any("profit factor is infinite" in note for note in stats.notes)


def test_open_position_makes_net_pnl_differ_from_realized() -> None:
    stats = _stats(
        _curve([100_000.0, 100_010.0, 100_250.0]),
        [_trade("10.00")],
        final_equity=Decimal("100250.40"),
    )
    assert stats.net_pnl == Decimal("250.40")
    assert stats.realized_pnl == Decimal("10.00")
    assert any("240.40" in note for note in stats.notes)


def test_to_dict_is_strict_json_with_exact_decimals_and_six_digit_floats() -> None:
    stats = _stats(_curve([100_000.0, 99_000.0, 101_234.5678]), [_trade("-1.50")])
    out = stats.to_dict()
    json.dumps(out, allow_nan=False)
    assert out["starting_equity"] == "100000.00"
    assert out["realized_pnl"] == "-1.50"
    assert out["total_return_pct"] == 1.23457
    assert out["bars"] == 3
    assert isinstance(out["notes"], list)


def test_max_drawdown_counts_a_loss_on_the_first_bar_against_starting_cash() -> None:
    stats = _stats(_curve([90_000.0, 95_000.0, 100_000.0, 101_000.0]), [])
    assert stats.max_drawdown_pct == pytest.approx(-10.0)
    # Below the starting cash from the first bar until the third bar regains it.
    assert stats.max_drawdown_duration_days == pytest.approx(2.0)


def test_drawdown_duration_runs_to_the_last_bar_when_never_regained() -> None:
    stats = _stats(_curve([100_000.0, 105_000.0, 104_000.0, 101_000.0, 104_999.0]), [])
    assert stats.max_drawdown_pct == pytest.approx((101_000 / 105_000 - 1) * 100)
    assert stats.max_drawdown_duration_days == pytest.approx(3.0)


def test_exposure_is_share_of_bars_in_position() -> None:
    exposure = np.array([False, True, True, False])
    stats = _stats(_curve([1e5, 1e5, 1e5, 1e5]), [], exposure=exposure)
    assert stats.exposure_pct == pytest.approx(50.0)


def test_no_trades_leaves_trade_figures_undefined() -> None:
    stats = _stats(_curve([100_000.0, 100_500.0, 100_200.0]), [])
    assert stats.trades == 0
    assert math.isnan(stats.win_rate_pct)
    assert stats.avg_trade_pnl is None
    assert stats.to_dict()["win_rate_pct"] is None


def test_single_day_of_intraday_bars_has_undefined_volatility() -> None:
    stats = _stats(_curve([1e5, 1.01e5, 1.02e5], step_ns=60 * 10**9), [])
    assert math.isnan(stats.annual_volatility_pct)
    assert math.isnan(stats.sharpe)
    assert any("volatility, Sharpe and Sortino are undefined" in note for note in stats.notes)


def test_periods_per_year_overrides_the_inferred_calendar() -> None:
    run = _run("goog_daily")
    df = run.reference["_equity_curve"]
    curve = EquityCurve(df.index.as_unit("ns").asi8, df["Equity"].to_numpy(dtype=np.float64))
    exposure = np.zeros(len(curve), dtype=bool)
    crypto = compute_stats(curve, [], starting_cash=Decimal(10_000), exposure=exposure, periods_per_year=365)
    assert crypto.periods_per_year == 365
    assert crypto.annual_return_pct > run.ours.annual_return_pct > 0


def test_empty_curve_is_a_data_error() -> None:
    with pytest.raises(DataError, match="equity curve is empty"):
        _stats(_curve([]), [])


def test_exposure_must_have_one_flag_per_bar() -> None:
    with pytest.raises(ValueError, match="exposure has shape"):
        _stats(_curve([1e5, 1e5]), [], exposure=np.zeros(3, dtype=bool))


def test_trade_record_refuses_unknown_side() -> None:
    with pytest.raises(ValueError, match="LONG or SHORT"):
        _trade("1", side="BUY")


def test_million_bar_curve_is_summarised_quickly() -> None:
    import time

    n = 1_000_000
    rng = np.random.default_rng(3)
    curve = _curve((1e5 * np.exp(np.cumsum(rng.normal(0, 1e-4, n)))).tolist(), 60 * 10**9)
    started = time.perf_counter()
    stats = _stats(curve, [], starting_cash=Decimal(100_000))
    assert time.perf_counter() - started < 2.0
    assert stats.bars == n
    assert stats.periods_per_year == 365  # minute bars round the clock include weekends
