"""Loading bar files: column discovery, time zones, formats, symbols, Parquet."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantdesk.data import BarSeries, load_bar_series, load_bars
from quantdesk.errors import ConfigError, DataError

FIXTURES = Path(__file__).parents[2] / "fixtures" / "data"


def utc_ns(text: str) -> int:
    return pd.Timestamp(text, tz="UTC").value


def test_daily_csv_is_labelled_at_midnight_utc_and_named_after_the_file() -> None:
    loaded = load_bars(FIXTURES / "daily_ok.csv")

    assert list(loaded) == ["DAILY_OK"]
    series = loaded["DAILY_OK"]
    assert len(series) == 5
    assert series.ts[0] == utc_ns("2013-02-25")
    assert series.source == str(FIXTURES / "daily_ok.csv")
    assert series.skipped == 0


def test_adj_close_is_ignored_and_close_is_unadjusted() -> None:
    series = load_bar_series(FIXTURES / "daily_ok.csv")

    assert series.close.tolist() == [100.25, 101.75, 102.90, 101.40, 100.60]
    assert series.open[0] == 100.10
    assert series.volume[0] == 1_200_300.0


def test_price_decimals_count_what_the_text_shows() -> None:
    # "100.10" parses to 100.1 but the file shows two decimals.
    assert load_bar_series(FIXTURES / "daily_ok.csv").price_decimals == 2
    assert load_bar_series(FIXTURES / "eurusd_dayfirst.csv").price_decimals == 5
    assert load_bar_series(FIXTURES / "gaps.csv").price_decimals == 1


def test_naive_times_are_wall_times_in_tz_converted_to_utc() -> None:
    series = load_bar_series(FIXTURES / "ny_naive_1min.csv", tz="America/New_York")

    # 09:30 New York is 14:30 UTC in winter (EST) and 13:30 UTC in summer (EDT).
    assert series.ts[0] == utc_ns("2024-03-08 14:30")
    assert series.ts[2] == utc_ns("2024-07-01 13:30")


def test_naive_times_default_to_utc() -> None:
    series = load_bar_series(FIXTURES / "ny_naive_1min.csv")

    assert series.ts[0] == utc_ns("2024-03-08 09:30")


def test_times_with_an_offset_ignore_tz() -> None:
    series = load_bar_series(FIXTURES / "with_offsets.csv", tz="America/New_York")

    assert series.ts.tolist() == [utc_ns("2024-01-02 03:45"), utc_ns("2024-01-02 03:46")]


def test_local_time_skipped_by_a_dst_change_fails_naming_the_row() -> None:
    with pytest.raises(DataError) as raised:
        load_bars(FIXTURES / "ny_dst_gap.csv", tz="America/New_York")

    message = str(raised.value)
    assert "ny_dst_gap.csv: row 3, column 'timestamp'" in message
    assert "2024-03-10 02:30:00 does not exist or is ambiguous in America/New_York" in message


def test_local_time_skipped_by_a_dst_change_is_dropped_under_skip() -> None:
    series = load_bar_series(FIXTURES / "ny_dst_gap.csv", tz="America/New_York", policy="skip")

    assert series.skipped == 1
    assert series.ts.tolist() == [utc_ns("2024-03-10 06:30"), utc_ns("2024-03-10 07:30")]


def test_unknown_time_zone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        load_bars(FIXTURES / "daily_ok.csv", tz="Mars/Olympus")


def test_day_first_dotted_timestamps_parse() -> None:
    series = load_bar_series(FIXTURES / "eurusd_dayfirst.csv")

    # 13.01.2017 only reads day-first: there is no month 13.
    assert series.ts.tolist() == [
        utc_ns("2017-01-12 22:00"),
        utc_ns("2017-01-12 23:00"),
        utc_ns("2017-01-13 00:00"),
        utc_ns("2017-01-13 01:00"),
    ]
    assert series.high[2] == 1.0629


def test_multi_symbol_file_gives_one_series_per_symbol_in_order_of_appearance() -> None:
    loaded = load_bars(FIXTURES / "multi_symbol.csv")

    assert list(loaded) == ["AAPL", "IBM"]
    assert loaded["AAPL"].close.tolist() == [441.40, 441.40, 430.47]
    assert loaded["IBM"].close.tolist() == [202.33, 200.83, 202.91]
    assert loaded["IBM"].ts[-1] == utc_ns("2013-03-01")


def test_symbol_argument_picks_one_symbol_of_a_multi_symbol_file() -> None:
    assert list(load_bars(FIXTURES / "multi_symbol.csv", symbol="ibm")) == ["IBM"]
    assert load_bar_series(FIXTURES / "multi_symbol.csv", "AAPL").symbol == "AAPL"


def test_load_bar_series_lists_the_symbols_when_a_file_holds_several() -> None:
    with pytest.raises(DataError, match=r"holds 2 symbols \(AAPL, IBM\)"):
        load_bar_series(FIXTURES / "multi_symbol.csv")


def test_asking_for_a_symbol_the_file_lacks_lists_the_symbols_found() -> None:
    with pytest.raises(DataError, match=r"no rows for symbol 'MSFT' \(symbols: AAPL, IBM\)"):
        load_bars(FIXTURES / "multi_symbol.csv", symbol="MSFT")


def test_symbol_argument_names_a_single_symbol_file() -> None:
    assert list(load_bars(FIXTURES / "daily_ok.csv", symbol="XYZ")) == ["XYZ"]


def test_first_unnamed_column_is_the_time_index() -> None:
    series = load_bar_series(FIXTURES / "unnamed_index.csv")

    assert series.ts[1] == utc_ns("2024-01-02 14:31")
    assert series.high.tolist() == [50.75, 51.0]


def test_missing_volume_column_gives_zero_volume() -> None:
    series = load_bar_series(FIXTURES / "no_volume.csv")

    assert series.volume.tolist() == [0.0, 0.0]


def test_separate_date_and_time_columns_are_joined() -> None:
    series = load_bar_series(FIXTURES / "date_time_split.csv", tz="America/New_York")

    assert series.ts.tolist() == [utc_ns("2024-01-02 14:30"), utc_ns("2024-01-02 14:31")]


def test_columns_override_maps_our_names_to_the_file_headers() -> None:
    mapping = {
        "ts": "when",
        "open": "first",
        "high": "top",
        "low": "bottom",
        "close": "LAST",  # matched case-insensitively
        "volume": "qty",
    }
    series = load_bar_series(FIXTURES / "custom_headers.csv", columns=mapping)

    assert series.close.tolist() == [10.05, 10.10]
    assert series.volume.tolist() == [500.0, 400.0]


def test_file_without_a_recognisable_column_names_it_and_the_columns_found() -> None:
    with pytest.raises(DataError) as raised:
        load_bars(FIXTURES / "custom_headers.csv")

    message = str(raised.value)
    assert "custom_headers.csv: no ts column" in message
    assert "when, first, top, bottom, last, qty" in message


def test_unknown_override_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown name"):
        load_bars(FIXTURES / "daily_ok.csv", columns={"price": "Close"})


def test_override_naming_a_missing_column_is_a_data_error() -> None:
    with pytest.raises(DataError, match="column 'Last' given for 'close' is not in the file"):
        load_bars(FIXTURES / "daily_ok.csv", columns={"close": "Last"})


def test_gzipped_csv_loads_like_the_plain_file(tmp_path: Path) -> None:
    target = tmp_path / "aapl.csv.gz"
    with (FIXTURES / "daily_ok.csv").open("rb") as plain, gzip.open(target, "wb") as packed:
        shutil.copyfileobj(plain, packed)

    loaded = load_bars(target)

    assert list(loaded) == ["AAPL"]
    np.testing.assert_array_equal(loaded["AAPL"].close, load_bar_series(FIXTURES / "daily_ok.csv").close)


def test_parquet_round_trip_keeps_times_prices_and_decimals(tmp_path: Path) -> None:
    index = pd.DatetimeIndex(
        ["2024-01-02 09:30", "2024-01-02 09:31", "2024-01-02 09:32"], tz="America/New_York"
    )
    frame = pd.DataFrame(
        {
            "Open": [1.10002, 1.10010, 1.10021],
            "High": [1.10015, 1.10025, 1.1003],
            "Low": [1.09990, 1.1, 1.10011],
            "Close": [1.10010, 1.10021, 1.10012],
            "Volume": [10, 20, 30],
        },
        index=index.rename("Date"),
    )
    path = tmp_path / "eurusd.parquet"
    frame.to_parquet(path)

    series = load_bar_series(path)

    assert series.symbol == "EURUSD"
    assert series.ts[0] == utc_ns("2024-01-02 14:30")
    np.testing.assert_array_equal(series.open, frame["Open"].to_numpy())
    np.testing.assert_array_equal(series.volume, [10.0, 20.0, 30.0])
    assert series.price_decimals == 5
    round_trip = BarSeries.from_frame(series.to_frame(), "EURUSD")
    np.testing.assert_array_equal(round_trip.ts, series.ts)
    np.testing.assert_array_equal(round_trip.close, series.close)
    assert round_trip.price_decimals == 5


def test_parquet_bad_row_is_named_by_its_row_counted_from_one(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-02", periods=3, freq="min", tz="UTC"),
            "open": [10.0, 10.0, 10.0],
            "high": [10.5, 9.0, 10.5],
            "low": [9.5, 9.5, 9.5],
            "close": [10.0, 10.0, 10.0],
        }
    )
    path = tmp_path / "x.parquet"
    frame.to_parquet(path, index=False)

    with pytest.raises(DataError, match=r"x.parquet: row 2, column 'high': high 9 is below low 9.5"):
        load_bars(path)


def test_missing_file_and_unsupported_type_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_bars(tmp_path / "absent.csv")
    odd = tmp_path / "bars.xlsx"
    odd.write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        load_bars(odd)


def test_header_only_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n")

    with pytest.raises(DataError, match="no data rows"):
        load_bars(path)


def test_epoch_second_timestamps_are_utc(tmp_path: Path) -> None:
    path = tmp_path / "epoch.csv"
    path.write_text("time,open,high,low,close\n1704205800,5,6,4,5\n1704205860,5,6,4,5\n")

    series = load_bar_series(path, tz="Asia/Kolkata")

    assert series.ts[0] == utc_ns("2024-01-02 14:30")


def test_picking_a_symbol_ignores_bad_rows_of_other_symbols() -> None:
    path = FIXTURES / "multi_symbol_bad_ibm.csv"

    assert len(load_bar_series(path, "AAPL")) == 2
    with pytest.raises(DataError, match=r"row 3, column 'High': High 197.75 is below Low 198.6"):
        load_bars(path)


# BarSeries behaviour, exercised on a loaded file (the series has no test file of its own).


def test_series_slice_is_half_open_and_keeps_metadata() -> None:
    series = load_bar_series(FIXTURES / "daily_ok.csv")

    part = series.slice(utc_ns("2013-02-26"), utc_ns("2013-02-28"))

    assert part.close.tolist() == [101.75, 102.90]
    assert (part.symbol, part.source, part.price_decimals) == (
        series.symbol,
        series.source,
        series.price_decimals,
    )
    assert len(series.slice(start_ns=utc_ns("2013-03-01"))) == 1
    assert len(series.slice(utc_ns("2020-01-01"), utc_ns("2019-01-01"))) == 0


def test_series_bars_and_frame_agree() -> None:
    series = load_bar_series(FIXTURES / "daily_ok.csv")

    bars = list(series.iter_bars())
    frame = series.to_frame()

    assert str(pd.DatetimeIndex(frame.index).tz) == "UTC"
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert [b.ts_event for b in bars] == series.ts.tolist()
    assert all(b.ts_init == b.ts_event and b.symbol == "DAILY_OK" for b in bars)
    assert [b.high for b in bars] == frame["high"].tolist()


def test_series_arrays_are_read_only_and_times_must_increase() -> None:
    series = load_bar_series(FIXTURES / "daily_ok.csv")
    with pytest.raises(ValueError, match="read-only"):
        series.close[0] = 1.0

    frame = series.to_frame().iloc[[0, 2, 1]]
    with pytest.raises(DataError, match="not strictly increasing"):
        BarSeries.from_frame(frame, "X")
