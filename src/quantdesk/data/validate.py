"""Bar validation: the rules a bar must pass, and the fail/skip policy for rows that break them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from quantdesk.data.series import BAR_COLUMNS, NAT_NS, FloatArray, IntArray, timestamps_to_ns
from quantdesk.errors import ConfigError, DataError

Policy = Literal["fail", "skip"]

# Fixed order: a row that breaks several rules is reported (and counted) under the first.
REASONS = (
    "bad_timestamp",
    "missing_value",
    "non_positive_price",
    "high_below_low",
    "high_below_open_or_close",
    "low_above_open_or_close",
    "negative_volume",
    "duplicate_timestamp",
    "out_of_order",
)
FIRST_GAPS_LISTED = 5


@dataclass(frozen=True, slots=True)
class Gap:
    """A hole in the data longer than the allowed gap: `row` is the first bar after it."""

    row: int
    start_ns: int
    end_ns: int

    @property
    def duration(self) -> pd.Timedelta:
        return pd.Timedelta(self.end_ns - self.start_ns, unit="ns")


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """What validation did to one symbol's rows: counts in and out, skips by reason, gaps."""

    rows_in: int
    rows_out: int
    skipped_by_reason: dict[str, int]
    gaps: int
    first_gaps: tuple[Gap, ...]

    @property
    def skipped(self) -> int:
        return self.rows_in - self.rows_out


def validate_bars(
    df: pd.DataFrame,
    *,
    source: str,
    policy: Policy,
    gap: pd.Timedelta | str | None = None,
    column_names: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Check one symbol's bars and apply the policy; return the kept rows and a report.

    `df` holds lowercase open/high/low/close/volume columns and its timestamps in
    a "ts" column or a DatetimeIndex (naive = UTC). An optional int "row" column
    names each row as the user sees it in the file (the loader puts the CSV line
    number there, header = line 1); without it rows are numbered from 1.
    `column_names` maps our column names ("ts", "open", ...) to the file's, for
    messages. Other columns pass through untouched.

    Rules, in order: timestamp present, no NaN price or volume, prices > 0,
    high >= low, high >= open and close, low <= open and close, volume >= 0,
    no duplicate timestamp, no timestamp earlier than one before it.

    policy "fail" raises `DataError` at the first bad row, e.g.
    ``data/aapl.csv: row 17, column 'high': high 101.2 is below low 101.5``.
    policy "skip" drops bad rows and counts each under its first broken rule; of
    rows with the same timestamp the first is kept, and a row that goes back in
    time is dropped (so one far-future typo drops every row after it: the report
    shows it as out_of_order). Gaps longer than `gap` between kept rows are
    counted and the first five listed; they are never an error.
    """
    if policy not in ("fail", "skip"):
        raise ConfigError(f"data policy must be 'fail' or 'skip', got {policy!r}")
    gap_ns = _gap_ns(gap)
    names = {name: name for name in ("ts", *BAR_COLUMNS)}
    names.update(column_names or {})
    for name in BAR_COLUMNS:
        if name not in df.columns:
            raise DataError(f"{source}: no '{name}' column to validate")

    n = len(df)
    if "ts" in df.columns:
        ts = timestamps_to_ns(df["ts"])
    elif isinstance(df.index, pd.DatetimeIndex):
        ts = timestamps_to_ns(df.index)
    else:
        raise DataError(f"{source}: no 'ts' column and no DatetimeIndex")
    rows = df["row"].to_numpy(dtype=np.int64) if "row" in df.columns else np.arange(1, n + 1)
    values = {
        name: pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64) for name in BAR_COLUMNS
    }
    reason, before = _reasons(ts, values)

    bad = np.flatnonzero(reason >= 0)
    if policy == "fail" and bad.size:
        i = int(bad[0])
        column, detail = _describe(i, int(reason[i]), ts, values, rows, before, names)
        raise DataError(f"{source}: row {int(rows[i])}, column '{column}': {detail}")

    keep = reason < 0
    counts = np.bincount(reason[~keep], minlength=len(REASONS))
    skipped_by_reason = {REASONS[k]: int(c) for k, c in enumerate(counts) if c}
    kept_ts, kept_rows = ts[keep], rows[keep]
    gaps = 0
    first_gaps: tuple[Gap, ...] = ()
    if gap_ns is not None and kept_ts.size > 1:
        at = np.flatnonzero(np.diff(kept_ts) > gap_ns)
        gaps = int(at.size)
        first_gaps = tuple(
            Gap(int(kept_rows[j + 1]), int(kept_ts[j]), int(kept_ts[j + 1])) for j in at[:FIRST_GAPS_LISTED]
        )
    report = ValidationReport(
        rows_in=n,
        rows_out=int(keep.sum()),
        skipped_by_reason=skipped_by_reason,
        gaps=gaps,
        first_gaps=first_gaps,
    )
    return (df if keep.all() else df[keep]), report


def _gap_ns(gap: pd.Timedelta | str | None) -> int | None:
    if gap is None:
        return None
    try:
        value = pd.Timedelta(gap)
    except ValueError as exc:
        raise ConfigError(f"gap must be a duration such as '5min', got {gap!r}") from exc
    if pd.isna(value) or value <= pd.Timedelta(0):
        raise ConfigError(f"gap must be a positive duration, got {gap!r}")
    return int(value.value)


def _reasons(ts: IntArray, v: dict[str, FloatArray]) -> tuple[IntArray, IntArray]:
    """Per row, the index into REASONS of its first broken rule (-1: clean), and for
    rows checked for order, the position of the latest earlier timestamp."""
    o, h, low, c, vol = (v[name] for name in BAR_COLUMNS)
    n = len(ts)
    reason = np.full(n, -1, dtype=np.int64)
    value_rules = (
        ts == NAT_NS,
        np.isnan(o) | np.isnan(h) | np.isnan(low) | np.isnan(c) | np.isnan(vol),
        (o <= 0) | (h <= 0) | (low <= 0) | (c <= 0),
        h < low,
        (h < o) | (h < c),
        (low > o) | (low > c),
        vol < 0,
    )
    for k, broken in enumerate(value_rules):
        reason[(reason < 0) & broken] = k

    # Order rules run over the rows that passed the value rules. A row is kept only
    # if it is later than every kept row before it; dropped rows never raise that
    # running maximum, so it equals the maximum over all earlier candidates.
    before = np.full(n, -1, dtype=np.int64)
    candidates = np.flatnonzero(reason < 0)
    if candidates.size > 1:
        t = ts[candidates]
        # Point at the first row that reached each running maximum, so a duplicate
        # names the row that is kept rather than another dropped copy.
        new_max = np.ones(t.size, dtype=bool)
        new_max[1:] = t[1:] > np.maximum.accumulate(t)[:-1]
        running_max_at = np.maximum.accumulate(np.where(new_max, np.arange(t.size), 0))
        prev = running_max_at[:-1]
        later = t[1:]
        previous = t[prev]
        at = candidates[1:]
        before[at] = candidates[prev]
        reason[at[later == previous]] = REASONS.index("duplicate_timestamp")
        reason[at[later < previous]] = REASONS.index("out_of_order")
    return reason, before


def _describe(
    i: int,
    k: int,
    ts: IntArray,
    v: dict[str, FloatArray],
    rows: IntArray,
    before: IntArray,
    names: Mapping[str, str],
) -> tuple[str, str]:
    """The (file column, message) naming why row i broke rule k."""
    o, h, low, c, vol = (float(v[name][i]) for name in BAR_COLUMNS)
    value = {"open": o, "high": h, "low": low, "close": c, "volume": vol}
    reason = REASONS[k]
    if reason == "bad_timestamp":
        return names["ts"], "timestamp is missing or unreadable"
    if reason == "missing_value":
        name = next(n for n in BAR_COLUMNS if np.isnan(value[n]))
        return names[name], f"{names[name]} is missing or not a number"
    if reason == "non_positive_price":
        name = next(n for n in ("open", "high", "low", "close") if value[n] <= 0)
        return names[name], f"{names[name]} {_num(value[name])} is not positive"
    if reason == "high_below_low":
        return names["high"], f"{names['high']} {_num(h)} is below {names['low']} {_num(low)}"
    if reason == "high_below_open_or_close":
        other = "open" if h < o else "close"
        return names["high"], (f"{names['high']} {_num(h)} is below {names[other]} {_num(value[other])}")
    if reason == "low_above_open_or_close":
        other = "open" if low > o else "close"
        return names["low"], (f"{names['low']} {_num(low)} is above {names[other]} {_num(value[other])}")
    if reason == "negative_volume":
        return names["volume"], f"{names['volume']} {_num(vol)} is negative"
    j = int(before[i])
    if reason == "duplicate_timestamp":
        return names["ts"], f"timestamp {_iso(int(ts[i]))} repeats row {int(rows[j])}"
    return names["ts"], (
        f"timestamp {_iso(int(ts[i]))} is earlier than {_iso(int(ts[j]))} at row {int(rows[j])}"
    )


def _num(x: float) -> str:
    return f"{x:.15g}"


def _iso(ts_ns: int) -> str:
    return pd.Timestamp(ts_ns, unit="ns", tz="UTC").isoformat()
