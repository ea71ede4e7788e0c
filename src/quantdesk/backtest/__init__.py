"""Backtests: the runner over historical data, round-trip trades, statistics and the HTML report."""

from quantdesk.backtest.runner import BacktestResult, OpenPosition, run_backtest

__all__ = ["BacktestResult", "OpenPosition", "run_backtest"]
