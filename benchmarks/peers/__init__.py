"""Other backtesting engines run on the engine benchmark's SMA cross, and the result each returns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PeerResult:
    """One peer engine's run of the SMA cross benchmark.

    `seconds` is the wall time (time.perf_counter) of the engine's own run call only;
    `prepare_seconds` is the time spent turning the arrays into the engine's input
    objects, reported apart because it is not the engine's speed. `trades` counts closed
    round trips and `net_pnl` is their summed P&L in price units (quantity 1, no fees);
    a position still open at the end counts in neither.
    """

    name: str
    bars: int
    seconds: float
    trades: int
    net_pnl: float
    version: str
    prepare_seconds: float = 0.0
