"""Performance statistics of a finished backtest: returns, risk ratios, drawdowns, trade figures."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from quantdesk.data.series import utc_isoformat as _iso
from quantdesk.errors import ConfigError, DataError
from quantdesk.portfolio.trades import TradeRecord

_NS_PER_DAY = 86_400 * 10**9
_DAYS_PER_YEAR = 365.25
_SIDES = ("LONG", "SHORT")
# Where to look for UTC-offset changes: every 6 hours finds each DST switch (zones change at
# most twice a year), then bisection pins it to the second.
_OFFSET_PROBE_S = 6 * 3600


@dataclass(frozen=True, slots=True, eq=False)
class EquityCurve:
    """Account equity marked at each bar close: `ts` UTC nanoseconds, `equity` in account currency.

    Floats are fine here: the curve feeds ratios and charts, never the books.
    """

    ts: npt.NDArray[np.int64]
    equity: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        if self.ts.ndim != 1 or self.equity.ndim != 1:
            raise ValueError("EquityCurve arrays must be one-dimensional")
        if len(self.ts) != len(self.equity):
            raise ValueError(f"EquityCurve.ts has {len(self.ts)} points but equity has {len(self.equity)}")
        if self.ts.dtype.kind not in "iu" or self.equity.dtype.kind != "f":
            raise ValueError("EquityCurve.ts must be integer nanoseconds and equity floats")
        if len(self.ts) > 1 and bool(np.any(np.diff(self.ts) < 0)):
            raise ValueError("EquityCurve.ts must not go backwards")

    def __len__(self) -> int:
        return len(self.ts)

    def drawdown_pct(self, starting_equity: float | None = None) -> npt.NDArray[np.float64]:
        """Drawdown at each point in percent (0 at a new high, -25.0 for a quarter below the peak).

        With `starting_equity` the peak starts there, so a loss on the very first bar counts.
        """
        peak = np.maximum.accumulate(self.equity)
        if starting_equity is not None:
            peak = np.maximum(peak, starting_equity)
        with np.errstate(divide="ignore", invalid="ignore"):
            dd = (self.equity / peak - 1.0) * 100.0
        return np.asarray(np.nan_to_num(dd, nan=0.0, posinf=0.0, neginf=-100.0), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Stats:
    """Summary figures of one backtest; see `compute_stats` for every definition.

    Money fields are exact Decimals; ratios are floats, NaN when undefined, and
    `profit_factor`/`sortino` may be infinite. `to_dict()` gives a JSON-safe form.
    """

    start: str
    end: str
    duration_days: float
    bars: int
    starting_equity: Decimal
    final_equity: Decimal
    equity_peak: float
    net_pnl: Decimal
    realized_pnl: Decimal
    total_fees: Decimal
    total_return_pct: float
    annual_return_pct: float
    cagr_pct: float
    annual_volatility_pct: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown_pct: float
    max_drawdown_duration_days: float
    periods_per_year: float
    exposure_pct: float
    trades: int
    win_rate_pct: float
    best_trade_pct: float
    worst_trade_pct: float
    avg_trade_pct: float
    expectancy_pct: float
    avg_trade_pnl: Decimal | None
    profit_factor: float
    avg_trade_duration_days: float
    max_trade_duration_days: float
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe values: Decimals as plain digit strings, floats to 6 significant digits,
        NaN and infinities as None (the `notes` say why), notes as a list."""
        out: dict[str, Any] = {}
        for f in fields(self):
            out[f.name] = _json_value(getattr(self, f.name))
        return out


def _json_value(value: object) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.6g}")
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    raise TypeError(f"no JSON form for {type(value).__name__}")


def compute_stats(
    equity: EquityCurve,
    trades: Sequence[TradeRecord],
    *,
    starting_cash: Decimal,
    exposure: npt.NDArray[np.bool_],
    final_equity: Decimal | None = None,
    periods_per_year: float | None = None,
    tz: str = "UTC",
) -> Stats:
    """Summarise a backtest from its equity curve (one point per bar) and its closed trades.

    Conventions follow backtesting.py's `compute_stats` (v0.6) so figures are comparable;
    risk-free rate 0. With E the equity curve and C the starting cash:

    - total_return_pct = (final - C) / C * 100; net_pnl = final - C (exact Decimal, from
      `final_equity`, else from the curve's last float). realized_pnl = sum of trade pnl; the
      two differ while a position is still open at the end.
    - Period returns r: E resampled to calendar days in `tz` (last value of each day; weeks,
      months or years when the bars are that coarse), then simple returns between them. The
      first day's move from C is not a return, as in backtesting.py.
    - N = periods_per_year, or inferred: 252 for calendars without weekends, 365 when more than
      0.6 * 2/7 of the bars fall on Saturday or Sunday (52, 12 or 1 for weekly, monthly or
      yearly bars).
    - g = geometric mean of r (exp(mean(log(1 + r))) - 1; 0 if any 1 + r <= 0).
      annual_return_pct = ((1 + g)^N - 1) * 100.
    - annual_volatility_pct = sqrt((var(r, ddof=1) + (1 + g)^2)^N - (1 + g)^(2N)) * 100, the
      volatility of a compounded annual return.
    - sharpe = annual_return_pct / annual_volatility_pct.
    - sortino = ((1 + g)^N - 1) / (sqrt(mean(min(r, 0)^2)) * sqrt(N)).
    - max_drawdown_pct = min(E / running_peak - 1) * 100, a negative number; the running peak
      starts at C. max_drawdown_duration_days: longest time from a peak to the bar that
      regains it (or to the last bar if none does).
    - calmar = annual return / |max drawdown| (both as fractions).
    - cagr_pct = ((final / C)^(1 / years) - 1) * 100, years = (last ts - first ts) / 365.25 d.
    - exposure_pct = share of bars where `exposure` is True, * 100.
    - Trade figures use each trade's `return_pct` (price move signed by side, before fees):
      best/worst = max/min * 100; avg_trade_pct = geometric mean * 100 (backtesting.py's
      "Avg. Trade"); expectancy_pct = arithmetic mean * 100. backtesting.py subtracts
      commission from its trade returns, so these differ from its figures by the fees.
    - win_rate_pct = share of trades with pnl > 0. profit_factor = sum of positive pnl /
      |sum of negative pnl| in money (backtesting.py uses returns instead); infinite when
      there are no losing trades. avg_trade_pnl = realized_pnl / trades, rounded to the
      finest decimal place of the trades' pnl.

    Example: a curve 100_000 -> 110_000 over 365.25 days has total_return_pct 10.0 and
    cagr_pct 10.0.
    """
    n = len(equity)
    if n == 0:
        raise DataError("backtest produced no bars: the equity curve is empty")
    if starting_cash <= 0:
        raise ConfigError(f"starting_cash must be positive, got {starting_cash}")
    if exposure.shape != (n,):
        raise ValueError(f"exposure has shape {exposure.shape}, expected ({n},)")

    ts = equity.ts.astype(np.int64, copy=False)
    eq = equity.equity.astype(np.float64, copy=False)
    cash_f = float(starting_cash)
    final = final_equity if final_equity is not None else Decimal(repr(float(eq[-1])))
    notes: list[str] = []

    span_ns = int(ts[-1] - ts[0])
    years = span_ns / _NS_PER_DAY / _DAYS_PER_YEAR
    total_return = float((final - starting_cash) / starting_cash)
    cagr = math.nan
    if years:
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            cagr = float(np.float64(float(final) / cash_f) ** (1.0 / years) - 1.0)

    returns, inferred_n = _period_returns(ts, eq, tz)
    ann_n = float(periods_per_year) if periods_per_year is not None else inferred_n
    if len(returns) < 2:
        notes.append(f"{len(returns)} period return(s): volatility, Sharpe and Sortino are undefined")
    annual_return, volatility, sortino = _annualised(returns, ann_n)
    sharpe = annual_return / volatility if volatility else math.nan

    dd_pct = equity.drawdown_pct(cash_f)
    max_dd = float(-dd_pct.min()) / 100.0
    calmar = annual_return / max_dd if max_dd else math.nan

    net_pnl = final - starting_cash
    realized = sum((t.pnl for t in trades), Decimal(0))
    if net_pnl != realized:
        notes.append(
            f"net P&L differs from realized P&L by {format(net_pnl - realized, 'f')}: "
            "a position open at the end, or costs outside closed trades"
        )
    trade_figures = _trade_figures(trades, realized, notes)

    return Stats(
        start=_iso(int(ts[0])),
        end=_iso(int(ts[-1])),
        duration_days=span_ns / _NS_PER_DAY,
        bars=n,
        starting_equity=starting_cash,
        final_equity=final,
        equity_peak=float(max(eq.max(), cash_f)),
        net_pnl=net_pnl,
        realized_pnl=realized,
        total_fees=sum((t.fees for t in trades), Decimal(0)),
        total_return_pct=total_return * 100.0,
        annual_return_pct=annual_return * 100.0,
        cagr_pct=cagr * 100.0,
        annual_volatility_pct=volatility * 100.0,
        sharpe=sharpe,
        sortino=sortino,
        calmar=calmar,
        max_drawdown_pct=-max_dd * 100.0,
        max_drawdown_duration_days=_max_drawdown_duration_ns(ts, dd_pct) / _NS_PER_DAY,
        periods_per_year=ann_n,
        exposure_pct=float(np.mean(exposure)) * 100.0,
        notes=tuple(notes),
        **trade_figures,
    )


def _period_returns(
    ts: npt.NDArray[np.int64], eq: npt.NDArray[np.float64], tz: str
) -> tuple[npt.NDArray[np.float64], float]:
    """Simple returns between period closes, and the periods per year they imply."""
    local_days = _local_days(ts, tz)
    # backtesting.py reads the bar period off the median gap of the last 100 bars.
    freq_days = int(np.median(np.diff(ts[-100:])) // _NS_PER_DAY) if len(ts) > 1 else 0
    weekend_share = float(np.mean(_day_of_week(local_days) >= 5))
    have_weekends = weekend_share > 2 / 7 * 0.6
    per_year = {7: 52.0, 31: 12.0, 365: 1.0}.get(freq_days, 365.0 if have_weekends else 252.0)
    rule = {7: "W", 31: "ME", 365: "YE"}.get(freq_days, "D")
    closes = period_closes(local_days, eq, rule)
    with np.errstate(divide="ignore", invalid="ignore"):
        changes = closes[1:] / closes[:-1] - 1.0
    returns = np.asarray(changes[~np.isnan(changes)], dtype=np.float64)
    return returns, per_year


def period_closes(
    local_days: npt.NDArray[np.int64], values: npt.NDArray[np.float64], rule: str
) -> npt.NDArray[np.float64]:
    """Last non-NaN value of each period that has one, oldest first.

    The same as pandas' `Series(values, index).resample(rule).last().dropna()` for a sorted
    tz-aware index whose local calendar days (days since 1970-01-01) are `local_days`.
    `rule` is "D" (day), "W" (weeks ending Sunday), "ME" (month) or "YE" (year).
    """
    if rule == "D":
        keys = local_days
    elif rule == "W":
        keys = (local_days + 3) // 7  # 1970-01-01 is a Thursday: weeks run Monday to Sunday
    elif rule == "ME":
        keys = local_days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    elif rule == "YE":
        keys = local_days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64)
    else:
        raise ValueError(f"unknown period rule {rule!r}: use D, W, ME or YE")
    valid = ~np.isnan(values)
    keys, kept = keys[valid], values[valid]
    if len(kept) == 0:
        return np.empty(0, dtype=np.float64)
    last_of_period = np.append(np.flatnonzero(np.diff(keys) != 0), len(kept) - 1)
    return np.asarray(kept[last_of_period], dtype=np.float64)


def _day_of_week(days: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Monday 0 .. Sunday 6 of days counted from 1970-01-01 (a Thursday)."""
    return np.asarray((days + 3) % 7, dtype=np.int64)


def _local_days(ts: npt.NDArray[np.int64], tz: str) -> npt.NDArray[np.int64]:
    """The local calendar day in `tz` (days since 1970-01-01) of each sorted UTC ns timestamp."""
    zone = ZoneInfo(tz)
    transitions, offsets = _offset_changes(zone, int(ts[0]) // 10**9, int(ts[-1]) // 10**9 + 1)
    offset_ns = np.asarray(offsets, dtype=np.int64)[np.searchsorted(transitions, ts, side="right")]
    return np.asarray((ts + offset_ns) // _NS_PER_DAY, dtype=np.int64)


def _offset_changes(zone: ZoneInfo, first_s: int, last_s: int) -> tuple[npt.NDArray[np.int64], list[int]]:
    """UTC instants (ns) in (first_s, last_s] where `zone` changes its UTC offset, and the
    offsets (ns) in force from first_s and after each change."""

    def offset_s(at: int) -> int:
        delta = datetime.fromtimestamp(at, zone).utcoffset()
        return 0 if delta is None else delta // timedelta(seconds=1)

    changes: list[int] = []
    offsets = [offset_s(first_s)]
    lo = first_s
    while lo < last_s:
        hi = min(lo + _OFFSET_PROBE_S, last_s)
        if offset_s(hi) != offsets[-1]:
            left, right = lo, hi  # the change happens in (left, right]
            while right - left > 1:
                mid = (left + right) // 2
                if offset_s(mid) == offsets[-1]:
                    left = mid
                else:
                    right = mid
            changes.append(right * 10**9)
            offsets.append(offset_s(right))
        lo = hi
    return np.asarray(changes, dtype=np.int64), [o * 10**9 for o in offsets]


def _geometric_mean(returns: npt.NDArray[np.float64]) -> float:
    growth = returns + 1.0
    if len(growth) == 0:
        return math.nan
    if bool(np.any(growth <= 0)):
        return 0.0
    return float(np.exp(np.log(growth).mean()) - 1.0)


def _annualised(returns: npt.NDArray[np.float64], per_year: float) -> tuple[float, float, float]:
    """(annual return, annual volatility, Sortino), as fractions; NaN where undefined."""
    g = _geometric_mean(returns)
    annual_return = (1.0 + g) ** per_year - 1.0
    if len(returns) < 2:
        return annual_return, math.nan, math.nan
    var = float(np.var(returns, ddof=1))
    volatility = math.sqrt(max((var + (1.0 + g) ** 2) ** per_year - (1.0 + g) ** (2.0 * per_year), 0.0))
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2))) * math.sqrt(per_year)
    with np.errstate(divide="ignore", invalid="ignore"):
        sortino = float(np.float64(annual_return) / np.float64(downside))
    return annual_return, volatility, sortino


def _max_drawdown_duration_ns(ts: npt.NDArray[np.int64], dd_pct: npt.NDArray[np.float64]) -> int:
    """Longest stretch from a bar at the peak to the bar that regains it, or to the last bar."""
    at_peak = dd_pct >= 0.0
    positions = np.arange(len(ts))
    # For each bar, the latest bar at or before it that stood at the running peak; a curve
    # that opens below the starting cash counts from its first bar.
    last_peak = np.maximum.accumulate(np.where(at_peak, positions, 0))
    ends = np.flatnonzero(at_peak[1:] & ~at_peak[:-1]) + 1  # bars that regain the peak
    starts = last_peak[ends - 1]
    if not at_peak[-1]:
        ends = np.append(ends, len(ts) - 1)
        starts = np.append(starts, last_peak[-1])
    if len(ends) == 0:
        return 0
    return int(np.max(ts[ends] - ts[starts]))


def _trade_figures(trades: Sequence[TradeRecord], realized: Decimal, notes: list[str]) -> dict[str, Any]:
    count = len(trades)
    if count == 0:
        nan = math.nan
        return {
            "trades": 0,
            "win_rate_pct": nan,
            "best_trade_pct": nan,
            "worst_trade_pct": nan,
            "avg_trade_pct": nan,
            "expectancy_pct": nan,
            "avg_trade_pnl": None,
            "profit_factor": nan,
            "avg_trade_duration_days": nan,
            "max_trade_duration_days": nan,
        }
    returns = np.array([t.return_pct for t in trades], dtype=np.float64)
    durations = np.array([t.duration_ns for t in trades], dtype=np.float64)
    gross_profit = sum((t.pnl for t in trades if t.pnl > 0), Decimal(0))
    gross_loss = -sum((t.pnl for t in trades if t.pnl < 0), Decimal(0))
    if gross_loss:
        profit_factor = float(gross_profit / gross_loss)
    elif gross_profit:
        profit_factor = math.inf
        notes.append("profit factor is infinite: no losing trades (null in JSON)")
    else:
        profit_factor = math.nan
    places = min(_exponent(t.pnl) for t in trades)
    return {
        "trades": count,
        "win_rate_pct": sum(1 for t in trades if t.pnl > 0) / count * 100.0,
        "best_trade_pct": float(returns.max()) * 100.0,
        "worst_trade_pct": float(returns.min()) * 100.0,
        "avg_trade_pct": _geometric_mean(returns) * 100.0,
        "expectancy_pct": float(returns.mean()) * 100.0,
        "avg_trade_pnl": (realized / count).quantize(Decimal(1).scaleb(places)),
        "profit_factor": profit_factor,
        "avg_trade_duration_days": float(durations.mean()) / _NS_PER_DAY,
        "max_trade_duration_days": float(durations.max()) / _NS_PER_DAY,
    }


def _exponent(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    # Special values (NaN, inf) have a letter exponent; money never does, fall back to cents.
    return min(exponent, 0) if isinstance(exponent, int) else -2
