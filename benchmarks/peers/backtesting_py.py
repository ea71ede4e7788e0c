"""The SMA cross benchmark run on backtesting.py (AGPL-3.0: used here to benchmark, never shipped)."""

from __future__ import annotations

import time
import warnings
from importlib import metadata
from typing import Any
from unittest import mock

import numpy as np
import numpy.typing as npt
import pandas as pd

from . import PeerResult

FAST = 10
SLOW = 20
# Large enough that a 1-unit order is never refused for want of cash, whatever the price.
CASH = 1e12


def available() -> bool:
    """Whether backtesting.py imports in this environment."""
    try:
        import backtesting  # noqa: F401
    except ImportError:
        return False
    return True


def _sma(values: npt.NDArray[np.float64], period: int) -> npt.NDArray[np.float64]:
    return pd.Series(values).rolling(period).mean().to_numpy()


def _strategy_class() -> type[Any]:
    from backtesting import Strategy

    class SmaCross(Strategy):  # type: ignore[misc]
        """Long 1 unit on a strict cross above, flat on a strict cross below."""

        def init(self) -> None:
            self.fast = self.I(_sma, self.data.Close, FAST)
            self.slow = self.I(_sma, self.data.Close, SLOW)

        def next(self) -> None:
            fast_prev, slow_prev = self.fast[-2], self.slow[-2]
            fast_now, slow_now = self.fast[-1], self.slow[-1]
            if fast_prev < slow_prev and fast_now > slow_now:
                if not self.position:
                    self.buy(size=1)
            elif fast_prev > slow_prev and fast_now < slow_now and self.position:
                self.position.close()

    return SmaCross


def run(
    ts: npt.NDArray[np.int64],
    open_: npt.NDArray[np.float64],
    high: npt.NDArray[np.float64],
    low: npt.NDArray[np.float64],
    close: npt.NDArray[np.float64],
    volume: npt.NDArray[np.float64],
) -> PeerResult:
    """Run the benchmark on backtesting.py; `seconds` times `Backtest.run()` alone.

    `Backtest.run()` includes backtesting.py's indicator computation (`init`), the bar
    loop with its broker, and its statistics at the end (it has no switch to skip them).
    Building the DataFrame and the `Backtest` object is `prepare_seconds`.
    """
    import backtesting.backtesting as bt_module
    from backtesting import Backtest

    started = time.perf_counter()
    frame = pd.DataFrame(
        {"Open": open_, "High": high, "Low": low, "Close": close, "Volume": volume},
        index=pd.DatetimeIndex(pd.to_datetime(ts, unit="ns")),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backtest = Backtest(
            frame,
            _strategy_class(),
            cash=CASH,
            commission=0,
            trade_on_close=False,
            finalize_trades=False,
        )
        prepare_seconds = time.perf_counter() - started

        # The progress bar (tqdm, when installed) would write to stderr and cost time.
        with mock.patch.object(bt_module, "_tqdm", lambda seq, **_: seq):
            started = time.perf_counter()
            stats = backtest.run()
            seconds = time.perf_counter() - started

    trades = stats["_trades"]
    return PeerResult(
        name="backtesting.py",
        bars=len(close),
        seconds=seconds,
        trades=len(trades),
        net_pnl=float(trades["PnL"].sum()),
        version=metadata.version("backtesting"),
        prepare_seconds=prepare_seconds,
    )
