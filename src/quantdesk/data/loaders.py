"""Bar file loaders: CSV, gzipped CSV and Parquet into validated BarSeries, one per symbol."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import structlog

from quantdesk.data.series import (
    BAR_COLUMNS,
    MAX_PRICE_DECIMALS,
    NAT_NS,
    PRICE_COLUMNS,
    BarSeries,
    IntArray,
    decimals_each,
    timestamps_to_ns,
)
from quantdesk.data.validate import Policy, validate_bars
from quantdesk.errors import ConfigError, DataError

log = structlog.get_logger(__name__)

# Keys are our names; values are normalised file headers (lowercase, letters and digits
# only), in order of preference. "Adj Close" normalises to "adjclose" and is never read.
_ALIASES: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "timestamp", "datetime", "time", "date", "gmttime", "localtime"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close",),
    "volume": ("volume", "vol"),
    "symbol": ("ticker", "symbol"),
}
_UNNAMED_INDEX = ("unnamed0", "", "index")
_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zip", ".zst")
_TIME_ONLY = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$")
_AWARE = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")
_DOTTED_DATE = re.compile(r"^\d{1,2}\.\d{1,2}\.\d{4}")
_SLASHED_DATE = re.compile(r"^\d{1,2}/\d{1,2}/\d{4}")
_EPOCH = re.compile(r"^-?\d+(\.\d+)?$")


def load_bars(
    path: str | Path,
    *,
    symbol: str | None = None,
    columns: Mapping[str, str] | None = None,
    tz: str | None = None,
    policy: Policy = "fail",
    gap: pd.Timedelta | str | None = None,
) -> dict[str, BarSeries]:
    """Load a bar file (.csv, .csv.gz, .parquet) into validated series keyed by symbol.

    Columns are found case-insensitively: the time in Date/Time/Datetime/Timestamp
    (or a first unnamed column, as `DataFrame.to_csv` writes an index; or separate
    Date and Time columns, joined), prices in Open/High/Low/Close, Volume, and a
    Ticker or Symbol column for files holding several symbols. "Adj Close" is
    ignored: bars are unadjusted. `columns` overrides the lookup, mapping our name
    ("ts", "open", "high", "low", "close", "volume", "symbol") to the file's
    header. A file without a volume column gets volume 0.

    Timestamps: ISO 8601 (with or without offset), day-first dotted
    (``01.01.2017 22:00:00.000``), slashed (month-first, or day-first when that
    is the only reading that works) and epoch seconds/ms/us/ns are read. Naive
    times are wall times in `tz` (default UTC) and converted to UTC; times with
    an offset ignore `tz`. Dates alone are labelled at midnight of `tz`.

    `symbol`: with a symbol column, keep only that symbol (matched
    case-insensitively); without one, the name for the bars (default: the file
    name up to its first suffix, upper-cased: ``aapl.csv.gz`` -> ``AAPL``).

    `policy` and `gap` are applied per symbol by `validate_bars`: "fail" raises
    `DataError` naming the file, row (CSV: the line number, header = line 1;
    Parquet: rows counted from 1), column and value; "skip" drops bad rows and
    records the count in `BarSeries.skipped`.
    """
    path = Path(path)
    source = str(path)
    if tz is not None:
        _check_tz(tz)
    if not path.is_file():
        raise DataError(f"{source}: no such file")
    kind = _file_kind(path)
    raw = _read_csv(path) if kind == "csv" else _read_parquet(path)
    if raw.empty:
        raise DataError(f"{source}: no data rows")
    found = _find_columns(raw, columns, source)
    names = {ours: str(theirs) for ours, theirs in found.items() if ours != "_time"}
    if "_time" in found:
        names["ts"] = f"{found['ts']}+{found['_time']}"

    first_row = 2 if kind == "csv" else 1
    rows = np.arange(first_row, first_row + len(raw), dtype=np.int64)
    if kind == "csv":
        # Blank lines are read as all-empty rows so line numbers stay true; drop them now.
        filled = raw.notna().any(axis=1).to_numpy()
        raw, rows = raw[filled], rows[filled]
    if symbol is not None and "symbol" in found:
        raw, rows = _keep_symbol(raw, rows, found, symbol, path)

    # Text that cannot be read (timestamps, numbers) is found here, before validation;
    # under "fail" the error raised is still the one of the earliest bad row.
    problems: list[tuple[int, str]] = []
    frame = pd.DataFrame({"row": rows}, index=raw.index)
    frame["ts"] = _parse_timestamps(raw, found, tz or "UTC", source, names["ts"], rows, problems)
    decimals = np.zeros(len(raw), dtype=np.int64)
    for name in BAR_COLUMNS:
        if name not in found:  # only volume may be absent: _find_columns checked the rest
            frame[name] = 0.0
            continue
        column = raw[found[name]]
        numbers = _to_numbers(column, source, names[name], rows, problems)
        frame[name] = numbers
        if name in PRICE_COLUMNS:
            decimals = np.maximum(decimals, _decimals(column, numbers))
    frame["_decimals"] = decimals

    if problems and policy == "fail":
        position, message = min(problems, key=lambda problem: problem[0])
        earlier = _split_symbols(raw.iloc[:position], found, frame.iloc[:position], symbol, path, policy)
        for part in earlier.values():
            validate_bars(part, source=source, policy="fail", column_names=names)
        raise DataError(message)

    groups = _split_symbols(raw, found, frame, symbol, path, policy)
    result: dict[str, BarSeries] = {}
    for name, part in groups.items():
        clean, report = validate_bars(part, source=source, policy=policy, gap=gap, column_names=names)
        if report.skipped or report.gaps:
            log.warning(
                "bars_validated",
                source=source,
                symbol=name,
                rows_in=report.rows_in,
                rows_out=report.rows_out,
                skipped_by_reason=report.skipped_by_reason,
                gaps=report.gaps,
                first_gaps=[(g.row, g.duration.isoformat()) for g in report.first_gaps],
            )
        if clean.empty:
            raise DataError(f"{source}: every row of {name} was skipped ({report.skipped_by_reason})")
        result[name] = BarSeries(
            symbol=name,
            ts=timestamps_to_ns(clean["ts"]),
            open=clean["open"].to_numpy(dtype=np.float64),
            high=clean["high"].to_numpy(dtype=np.float64),
            low=clean["low"].to_numpy(dtype=np.float64),
            close=clean["close"].to_numpy(dtype=np.float64),
            volume=clean["volume"].to_numpy(dtype=np.float64),
            source=source,
            price_decimals=min(int(clean["_decimals"].max()), MAX_PRICE_DECIMALS),
            skipped=report.skipped,
        )
    return result


def load_bar_series(
    path: str | Path,
    symbol: str | None = None,
    *,
    columns: Mapping[str, str] | None = None,
    tz: str | None = None,
    policy: Policy = "fail",
    gap: pd.Timedelta | str | None = None,
) -> BarSeries:
    """Load a file holding one symbol (or pick `symbol` from a multi-symbol file).

    Raises `DataError` listing the symbols found when the file holds several and
    `symbol` is not given. Other arguments as in `load_bars`.
    """
    loaded = load_bars(path, symbol=symbol, columns=columns, tz=tz, policy=policy, gap=gap)
    if len(loaded) != 1:
        raise DataError(
            f"{path}: holds {len(loaded)} symbols ({', '.join(loaded)}); choose one with symbol=..."
        )
    return next(iter(loaded.values()))


def _check_tz(tz: str) -> None:
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {tz!r}") from exc


def _file_kind(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in (".csv", ".txt"):
        return "csv"
    if last in (".parquet", ".pq") and path.suffix.lower() == last:
        return "parquet"
    raise DataError(f"{path}: unsupported file type; expected .csv, .csv.gz or .parquet")


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        # Read as text: the text tells how many decimals a price shows and lets
        # errors quote the value as written.
        return pd.read_csv(path, dtype=str, skip_blank_lines=False, skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{path}: cannot read as CSV: {exc}".splitlines()[0]) from exc


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: cannot read as Parquet: {exc}".splitlines()[0]) from exc
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()
    return frame


def _normalise(header: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(header).lower())


def _find_columns(raw: pd.DataFrame, overrides: Mapping[str, str] | None, source: str) -> dict[str, str]:
    """Our name -> the file's column; "_time" when a separate time-of-day column exists."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(_ALIASES))
    if unknown:
        raise ConfigError(f"columns: unknown name(s) {unknown}; use {', '.join(_ALIASES)}")
    by_norm: dict[str, str] = {}
    for header in raw.columns:
        by_norm.setdefault(_normalise(header), str(header))
    found: dict[str, str] = {}
    for ours, theirs in overrides.items():
        if theirs in raw.columns:
            found[ours] = theirs
        elif _normalise(theirs) in by_norm:
            found[ours] = by_norm[_normalise(theirs)]
        else:
            raise DataError(
                f"{source}: column {theirs!r} given for {ours!r} is not in the file "
                f"(columns: {', '.join(map(str, raw.columns))})"
            )
    for ours, aliases in _ALIASES.items():
        if ours in found:
            continue
        match = next((by_norm[a] for a in aliases if a in by_norm), None)
        if match is not None:
            found[ours] = match
    if "ts" not in overrides:
        date, time = by_norm.get("date"), by_norm.get("time")
        if found.get("ts") in (date, time) and date and time and _is_time_of_day(raw[time]):
            found["ts"], found["_time"] = date, time
        if "ts" not in found and _normalise(raw.columns[0]) in _UNNAMED_INDEX:
            found["ts"] = str(raw.columns[0])
    for ours in ("ts", *PRICE_COLUMNS):
        if ours not in found:
            raise DataError(
                f"{source}: no {ours} column (columns: {', '.join(map(str, raw.columns))}); "
                f"name it with columns={{{ours!r}: ...}}"
            )
    return found


def _is_time_of_day(column: pd.Series) -> bool:
    sample = column.dropna()
    return bool(len(sample)) and bool(_TIME_ONLY.match(str(sample.iloc[0]).strip()))


def _parse_timestamps(
    raw: pd.DataFrame,
    found: Mapping[str, str],
    tz: str,
    source: str,
    column_name: str,
    rows: IntArray,
    problems: list[tuple[int, str]],
) -> pd.Series:
    """UTC datetime64[ns] timestamps; unreadable ones become NaT and the first of each
    kind is added to `problems` as (position, message)."""
    values = raw[found["ts"]]
    if "_time" in found:
        values = values.str.strip() + " " + raw[found["_time"]].str.strip()

    def reject(found_at: npt.NDArray[np.intp], detail: Callable[[int], str]) -> None:
        if found_at.size:
            i = int(found_at[0])
            problems.append((i, f"{source}: row {int(rows[i])}, column '{column_name}': {detail(i)}"))

    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        parsed = pd.DatetimeIndex(values)
        aware = parsed.tz is not None
    elif pd.api.types.is_numeric_dtype(values.dtype):
        parsed, aware = _from_epoch(pd.to_numeric(values)), True
    else:
        text = _as_text(values)
        parsed, aware = _parse_text(text)
        unread = np.flatnonzero(text.notna().to_numpy() & parsed.isna())
        reject(unread, lambda i: f"cannot read timestamp {text.iloc[i]!r}")
    if not aware:
        local = parsed
        try:
            parsed = local.tz_localize(tz, ambiguous="infer", nonexistent="NaT")
        except ValueError:
            # "infer" needs the repeated hour present in order; otherwise refuse each one.
            parsed = local.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
        lost = np.flatnonzero(np.asarray(local.notna()) & np.asarray(parsed.isna()))
        reject(
            lost,
            lambda i: (
                f"local time {local[i]} does not exist or is ambiguous in {tz} (a daylight-saving change)"
            ),
        )
    ns = timestamps_to_ns(parsed)
    # Listed after the specific problems: at the same row, theirs is the better message.
    reject(np.flatnonzero(ns == NAT_NS), lambda i: "timestamp is missing")
    return pd.Series(ns.view("datetime64[ns]"), index=raw.index)


def _parse_text(text: pd.Series) -> tuple[pd.DatetimeIndex, bool]:
    """Parse timestamp strings with one format for the whole column; NaT where it fails."""
    sample = next((s for s in text.dropna() if s[:1].isdigit()), None)
    if sample is None:
        return pd.DatetimeIndex(pd.to_datetime(text, errors="coerce")), False
    if _EPOCH.match(sample):
        return _from_epoch(pd.to_numeric(text, errors="coerce")), True
    date_formats: tuple[str, ...] = ()
    if _DOTTED_DATE.match(sample):
        date_formats = ("%d.%m.%Y",)
    elif _SLASHED_DATE.match(sample):
        date_formats = ("%m/%d/%Y", "%d/%m/%Y")
    if not date_formats:
        aware = bool(_AWARE.search(sample))
        iso = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=aware)
        return pd.DatetimeIndex(iso), aware
    rest = sample.split(" ", 1)[1].strip() if " " in sample else ""
    clock = ""
    if rest:
        colons = rest.count(":")
        clock = " %H:%M" if colons == 1 else " %H:%M:%S"
        if "." in rest:
            clock += ".%f"
    readings = [
        pd.DatetimeIndex(pd.to_datetime(text, format=date_format + clock, errors="coerce"))
        for date_format in date_formats
    ]
    # Month-first wins unless day-first reads more rows (a day above 12 decides it).
    return min(readings, key=lambda parsed: int(np.asarray(parsed.isna()).sum())), False


def _from_epoch(numbers: pd.Series) -> pd.DatetimeIndex:
    """Epoch numbers in s, ms, us or ns, told apart by magnitude (years 1973..2286)."""
    finite = numbers.dropna().abs()
    size = float(finite.median()) if len(finite) else 0.0
    unit: Literal["s", "ms", "us", "ns"] = (
        "s" if size < 1e11 else "ms" if size < 1e14 else "us" if size < 1e17 else "ns"
    )
    return pd.DatetimeIndex(pd.to_datetime(numbers, unit=unit, utc=True, errors="coerce"))


def _as_text(column: pd.Series) -> pd.Series:
    """The column as stripped strings, missing values kept missing."""
    if not isinstance(column.dtype, pd.StringDtype):
        column = column.astype("str")  # the "str" dtype keeps NaN/None as missing
    return column.str.strip()


def _to_numbers(
    column: pd.Series, source: str, name: str, rows: IntArray, problems: list[tuple[int, str]]
) -> pd.Series:
    """Floats from a price/volume column; text that is not a number becomes NaN and the
    first such row is added to `problems` as (position, message)."""
    if pd.api.types.is_numeric_dtype(column.dtype):
        return column.astype(np.float64)
    text = _as_text(column)
    numbers = pd.to_numeric(text, errors="coerce").astype(np.float64)
    unread = np.flatnonzero(text.notna().to_numpy() & numbers.isna().to_numpy())
    if unread.size:
        i = int(unread[0])
        problems.append(
            (i, f"{source}: row {int(rows[i])}, column '{name}': {name} {text.iloc[i]!r} is not a number")
        )
    return numbers


def _decimals(column: pd.Series, numbers: pd.Series) -> IntArray:
    """Per row, the decimals the price shows: counted in the text for CSV, from the float
    value for numeric (Parquet) columns and for text in exponent notation."""
    values = numbers.to_numpy(dtype=np.float64)
    if pd.api.types.is_numeric_dtype(column.dtype):
        return decimals_each(values)
    text = _as_text(column).fillna("")
    dot = text.str.find(".").to_numpy(dtype=np.int64)
    length = text.str.len().to_numpy(dtype=np.int64)
    shown = np.where(dot >= 0, length - dot - 1, 0)
    exponent = text.str.contains("e", case=False, regex=False).to_numpy(dtype=bool)
    if exponent.any():
        shown[exponent] = decimals_each(values[exponent])
    return np.minimum(shown, MAX_PRICE_DECIMALS)


def _symbol_names(raw: pd.DataFrame, found: Mapping[str, str]) -> pd.Series:
    names = _as_text(raw[found["symbol"]])
    return names.where(names != "")


def _keep_symbol(
    raw: pd.DataFrame, rows: IntArray, found: Mapping[str, str], symbol: str, path: Path
) -> tuple[pd.DataFrame, IntArray]:
    """Only the rows of `symbol` (exact match, else case-insensitive), before any parsing,
    so other symbols' rows can neither slow the load nor fail it."""
    names = _symbol_names(raw, found)
    symbols = [str(s) for s in pd.unique(names.dropna())]
    wanted = [s for s in symbols if s == symbol] or [s for s in symbols if s.casefold() == symbol.casefold()]
    if not wanted:
        raise DataError(f"{path}: no rows for symbol {symbol!r} (symbols: {', '.join(symbols)})")
    mine = (names == wanted[0]).fillna(False).to_numpy(dtype=bool)
    return raw[mine], rows[mine]


def _split_symbols(
    raw: pd.DataFrame,
    found: Mapping[str, str],
    frame: pd.DataFrame,
    symbol: str | None,
    path: Path,
    policy: Policy,
) -> dict[str, pd.DataFrame]:
    """The rows of each symbol, in order of first appearance."""
    if "symbol" not in found:
        return {symbol or _stem_symbol(path): frame}
    names = _symbol_names(raw, found)
    missing = np.flatnonzero(names.isna().to_numpy())
    if missing.size:
        if policy == "fail":
            row = int(frame["row"].iloc[int(missing[0])])
            raise DataError(f"{path}: row {row}, column '{found['symbol']}': symbol is missing")
        log.warning("rows_without_symbol_skipped", source=str(path), rows=int(missing.size))
    positions = names.groupby(names, sort=False).indices
    return {str(s): frame.iloc[positions[s]] for s in pd.unique(names.dropna())}


def _stem_symbol(path: Path) -> str:
    return path.name.split(".", 1)[0].upper()
