"""BarSeries: one symbol's OHLCV bars held as columns of numpy arrays."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from quantdesk.errors import DataError
from quantdesk.model import Bar

if TYPE_CHECKING:
    # pandas (~110 MB with pyarrow) is imported only by the functions that take or give frames.
    import pandas as pd

MAX_PRICE_DECIMALS = 8
PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = (*PRICE_COLUMNS, "volume")

NAT_NS = np.iinfo(np.int64).min  # how numpy stores NaT in datetime64[ns]

# tuple.__new__(Bar, fields) is what Bar(...) does underneath, minus a Python-level call
# per bar: about twice as fast on the replay hot path. Fields must come in Bar's order.
new_bar = tuple.__new__

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def decimals_each(values: npt.ArrayLike) -> IntArray:
    """Per value, the fewest decimal places (at most 8) that write it exactly; NaN -> 0.

    Works on the float value, not its repr, so binary noise such as
    0.1 + 0.2 == 0.30000000000000004 still counts as 1 decimal.
    """
    x = np.abs(np.asarray(values, dtype=np.float64).ravel())
    result = np.full(x.size, MAX_PRICE_DECIMALS, dtype=np.int64)
    result[~np.isfinite(x)] = 0
    pending = np.flatnonzero(np.isfinite(x))
    for decimals in range(MAX_PRICE_DECIMALS):
        if pending.size == 0:
            break
        scaled = x[pending] * 10.0**decimals
        # Tolerance scales with magnitude: a parsed "1.05236" times 1e5 is off by ~1e-11.
        on_grid = np.abs(scaled - np.rint(scaled)) <= np.maximum(scaled * 1e-12, 1e-9)
        result[pending[on_grid]] = decimals
        pending = pending[~on_grid]
    return result


def infer_price_decimals(values: npt.ArrayLike) -> int:
    """The most decimal places (at most 8) any finite value in `values` needs; 0 if none."""
    each = decimals_each(values)
    return int(each.max()) if each.size else 0


def _frozen_array(values: Any, dtype: type[np.generic]) -> Any:
    array = np.asarray(values, dtype=dtype)
    if array.ndim != 1:
        raise ValueError(f"BarSeries columns must be one-dimensional, got shape {array.shape}")
    if array.flags.writeable or not array.flags.c_contiguous:
        # A private, locked copy: the caller's writable array can no longer change our bars.
        array = np.array(array, dtype=dtype, order="C")
        array.flags.writeable = False
    return array


# eq=False: numpy arrays make field-wise == ambiguous, so identity is the only sound equality.
@dataclass(frozen=True, slots=True, eq=False)
class BarSeries:
    """One symbol's bars in columnar form, time-ordered, immutable.

    `ts` holds int64 UTC nanoseconds, strictly increasing; prices and volume are
    float64. `price_decimals` is the most decimal places the source shows for a
    price (capped at 8), the basis for inferring a tick size; `skipped` counts
    rows the loader dropped under the "skip" policy. The arrays are read-only.
    """

    symbol: str
    ts: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    source: str
    price_decimals: int
    skipped: int = 0

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "ts", _frozen_array(self.ts, np.int64))
        for name in BAR_COLUMNS:
            set_field(self, name, _frozen_array(getattr(self, name), np.float64))
        n = len(self.ts)
        for name in BAR_COLUMNS:
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"BarSeries {self.symbol}: column {name} has {len(getattr(self, name))} "
                    f"values, ts has {n}"
                )
        if n > 1:
            steps = np.diff(self.ts)
            if (steps <= 0).any():
                i = int(np.flatnonzero(steps <= 0)[0]) + 1
                raise DataError(
                    f"{self.source}: timestamps of {self.symbol} are not strictly increasing "
                    f"at bar {i} ({utc_isoformat(int(self.ts[i - 1]))} then {utc_isoformat(int(self.ts[i]))})"
                )
        if not 0 <= self.price_decimals <= MAX_PRICE_DECIMALS:
            raise ValueError(f"price_decimals must be in 0..8, got {self.price_decimals}")

    def __len__(self) -> int:
        return len(self.ts)

    def __repr__(self) -> str:
        span = (
            f"{utc_isoformat(int(self.ts[0]))}..{utc_isoformat(int(self.ts[-1]))}" if len(self) else "empty"
        )
        return f"BarSeries({self.symbol!r}, {len(self)} bars, {span}, source={self.source!r})"

    def iter_bars(self) -> Iterator[Bar]:
        """Yield one `Bar` per row, with ts_event = ts_init = the bar's timestamp."""
        columns = [getattr(self, name).tolist() for name in BAR_COLUMNS]
        times = self.ts.tolist()
        yield from map(new_bar, repeat(Bar), zip(repeat(self.symbol), times, *columns, times, strict=False))

    def to_frame(self) -> pd.DataFrame:
        """The bars as a DataFrame: UTC DatetimeIndex named "ts", lowercase OHLCV columns."""
        import pandas as pd

        index = pd.DatetimeIndex(pd.to_datetime(self.ts, unit="ns", utc=True), name="ts")
        return pd.DataFrame({name: np.array(getattr(self, name)) for name in BAR_COLUMNS}, index=index)

    def slice(self, start_ns: int | None = None, end_ns: int | None = None) -> BarSeries:
        """The bars with start_ns <= ts < end_ns (either bound may be None: open-ended)."""
        lo = 0 if start_ns is None else int(np.searchsorted(self.ts, start_ns, side="left"))
        hi = len(self) if end_ns is None else int(np.searchsorted(self.ts, end_ns, side="left"))
        hi = max(lo, hi)
        return BarSeries(
            symbol=self.symbol,
            ts=self.ts[lo:hi],
            open=self.open[lo:hi],
            high=self.high[lo:hi],
            low=self.low[lo:hi],
            close=self.close[lo:hi],
            volume=self.volume[lo:hi],
            source=self.source,
            price_decimals=self.price_decimals,
            skipped=self.skipped,
        )

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        symbol: str,
        source: str = "<frame>",
        price_decimals: int | None = None,
    ) -> BarSeries:
        """Build from a DataFrame with a DatetimeIndex (or a "ts" column) and OHLC(V) columns.

        Column names are matched case-insensitively; a missing volume column gives
        volume 0. Naive timestamps are taken as UTC. `price_decimals=None` infers
        the decimals from the float prices. The frame must already be clean
        (validate it with `validate_bars` first if unsure).
        """
        import pandas as pd

        lower = {str(column).lower(): column for column in df.columns}
        if "ts" in lower:
            ts = timestamps_to_ns(df[lower["ts"]])
        elif isinstance(df.index, pd.DatetimeIndex):
            ts = timestamps_to_ns(df.index)
        else:
            raise DataError(f"{source}: no DatetimeIndex and no 'ts' column")
        arrays: dict[str, FloatArray] = {}
        for name in BAR_COLUMNS:
            if name in lower:
                arrays[name] = df[lower[name]].to_numpy(dtype=np.float64)
            elif name == "volume":
                arrays[name] = np.zeros(len(df), dtype=np.float64)
            else:
                raise DataError(f"{source}: no '{name}' column (columns: {list(df.columns)})")
        if price_decimals is None:
            price_decimals = infer_price_decimals(np.concatenate([arrays[name] for name in PRICE_COLUMNS]))
        return cls(
            symbol=symbol,
            ts=ts,
            open=arrays["open"],
            high=arrays["high"],
            low=arrays["low"],
            close=arrays["close"],
            volume=arrays["volume"],
            source=source,
            price_decimals=price_decimals,
        )


def timestamps_to_ns(values: pd.Series | pd.Index | npt.NDArray[Any]) -> IntArray:
    """int64 UTC nanoseconds from datetime-like values; naive ones are taken as UTC, NaT -> NAT_NS."""
    import pandas as pd

    index = pd.DatetimeIndex(values)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.as_unit("ns").to_numpy().view(np.int64)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_isoformat(ts_ns: int) -> str:
    """ISO 8601 of UTC nanoseconds, as `pd.Timestamp(ts_ns, unit="ns", tz="UTC").isoformat()` writes it.

    Whole seconds have no fraction, whole microseconds six digits, anything finer nine:
    0 -> "1970-01-01T00:00:00+00:00", 1 -> "1970-01-01T00:00:00.000000001+00:00".
    """
    seconds, nanos = divmod(ts_ns, 10**9)
    wall = (_EPOCH + timedelta(seconds=seconds)).replace(tzinfo=None).isoformat()
    if nanos == 0:
        fraction = ""
    elif nanos % 1000 == 0:
        fraction = f".{nanos // 1000:06d}"
    else:
        fraction = f".{nanos:09d}"
    return f"{wall}{fraction}+00:00"
