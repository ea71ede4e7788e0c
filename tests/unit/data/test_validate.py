"""Bar validation rules under the fail and skip policies."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from quantdesk.data import load_bar_series, synthetic_intraday, validate_bars
from quantdesk.errors import ConfigError, DataError

FIXTURES = Path(__file__).parents[2] / "fixtures" / "data"

# file, row as the user sees it (header = line 1), column, detail, reason counted under skip
CASES = [
    ("bad_missing_value.csv", 3, "High", "High is missing or not a number", "missing_value"),
    ("bad_not_a_number.csv", 4, "Close", "Close 'n/a?' is not a number", "missing_value"),
    ("bad_non_positive.csv", 5, "Low", "Low -1 is not positive", "non_positive_price"),
    ("bad_high_below_low.csv", 4, "High", "High 101.2 is below Low 101.5", "high_below_low"),
    (
        "bad_high_below_close.csv",
        3,
        "High",
        "High 100.4 is below Close 100.9",
        "high_below_open_or_close",
    ),
    (
        "bad_low_above_open.csv",
        5,
        "Low",
        "Low 100.4 is above Open 100.3",
        "low_above_open_or_close",
    ),
    ("bad_negative_volume.csv", 2, "Volume", "Volume -5 is negative", "negative_volume"),
    (
        "bad_duplicate.csv",
        4,
        "Date",
        "timestamp 2024-01-02T09:31:00+00:00 repeats row 3",
        "duplicate_timestamp",
    ),
    (
        "bad_out_of_order.csv",
        4,
        "Date",
        "timestamp 2024-01-02T09:31:00+00:00 is earlier than 2024-01-02T09:32:00+00:00 at row 3",
        "out_of_order",
    ),
    (
        "bad_timestamp.csv",
        4,
        "Date",
        "cannot read timestamp '2024-01-02 25:61:00'",
        "bad_timestamp",
    ),
    # A blank line still counts as a line: the bad row is line 4.
    ("bad_after_blank_line.csv", 4, "Volume", "Volume -900 is negative", "negative_volume"),
]
IDS = [case[0].removesuffix(".csv") for case in CASES]


def frame_of(name: str) -> pd.DataFrame:
    """A fixture as validate_bars takes it: lowercase columns, a ts column, file rows."""
    raw = pd.read_csv(FIXTURES / name)
    frame = raw.rename(columns=str.lower)
    frame["ts"] = pd.to_datetime(frame.pop("date"), errors="coerce", utc=True)
    frame["row"] = frame.index + 2
    return frame


@pytest.mark.parametrize(("name", "row", "column", "detail", "reason"), CASES, ids=IDS)
def test_fail_policy_names_file_row_column_and_value(
    name: str, row: int, column: str, detail: str, reason: str
) -> None:
    path = FIXTURES / name

    with pytest.raises(DataError) as raised:
        load_bar_series(path, policy="fail")

    assert str(raised.value) == f"{path}: row {row}, column '{column}': {detail}"


@pytest.mark.parametrize(("name", "row", "column", "detail", "reason"), CASES, ids=IDS)
def test_skip_policy_drops_the_bad_row_and_counts_it(
    name: str, row: int, column: str, detail: str, reason: str
) -> None:
    series = load_bar_series(FIXTURES / name, policy="skip")

    lines = (FIXTURES / name).read_text().splitlines()
    kept = [line for number, line in enumerate(lines, 1) if number not in (1, row) and line]
    assert series.skipped == 1
    assert series.close.tolist() == [float(line.split(",")[4]) for line in kept]


@pytest.mark.parametrize(("name", "row", "column", "detail", "reason"), CASES[:-1], ids=IDS[:-1])
def test_validate_bars_counts_each_skip_under_its_reason(
    name: str, row: int, column: str, detail: str, reason: str
) -> None:
    frame = frame_of(name)

    clean, report = validate_bars(frame, source=name, policy="skip")

    assert report.skipped_by_reason == {reason: 1}
    assert (report.rows_in, report.rows_out, report.skipped) == (len(frame), len(frame) - 1, 1)
    assert row not in clean["row"].tolist()


def test_fail_reports_the_first_bad_row_of_the_file() -> None:
    path = FIXTURES / "two_errors.csv"

    with pytest.raises(DataError, match=r"row 3, column 'Volume': Volume -3 is negative"):
        load_bar_series(path)


def test_skip_counts_every_reason_and_the_counts_add_up() -> None:
    frame = frame_of("two_errors.csv")

    clean, report = validate_bars(frame, source="two_errors.csv", policy="skip")

    assert report.skipped_by_reason == {"negative_volume": 1, "out_of_order": 1}
    assert report.rows_in - report.rows_out == sum(report.skipped_by_reason.values())
    assert clean["row"].tolist() == [2, 4]


def test_skip_keeps_the_first_of_duplicate_timestamps() -> None:
    series = load_bar_series(FIXTURES / "bad_duplicate.csv", policy="skip")

    assert series.close.tolist() == [100.2, 100.1, 100.5]


def test_skip_drops_the_row_that_goes_back_in_time() -> None:
    series = load_bar_series(FIXTURES / "bad_out_of_order.csv", policy="skip")

    minutes = pd.to_datetime(series.ts, unit="ns").strftime("%H:%M").tolist()
    assert minutes == ["09:30", "09:32", "09:33"]


def test_gaps_are_counted_and_listed_but_never_fatal() -> None:
    clean, report = validate_bars(
        frame_of("gaps.csv"), source="gaps.csv", policy="fail", gap=pd.Timedelta("5min")
    )

    assert len(clean) == 5
    assert report.gaps == 2
    assert [g.row for g in report.first_gaps] == [4, 6]
    assert [g.duration for g in report.first_gaps] == [pd.Timedelta("14min"), pd.Timedelta("44min")]


def test_only_the_first_five_gaps_are_listed() -> None:
    frame = synthetic_intraday(days=8).to_frame()

    _, report = validate_bars(frame, source="syn", policy="fail", gap="1h")

    assert report.gaps == 7  # one overnight gap between each pair of sessions
    assert len(report.first_gaps) == 5


def test_clean_frame_with_datetime_index_passes_unchanged() -> None:
    frame = synthetic_intraday(bars=50).to_frame()

    clean, report = validate_bars(frame, source="syn", policy="fail")

    assert clean.equals(frame)
    assert report.skipped_by_reason == {}
    assert report.rows_out == 50


def test_without_a_row_column_rows_are_counted_from_one() -> None:
    frame = frame_of("bad_high_below_low.csv").drop(columns="row")

    with pytest.raises(DataError, match=r"^mem: row 3, column 'high': high 101.2 is below low"):
        validate_bars(frame, source="mem", policy="fail")


def test_skipping_every_row_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "all_bad.csv"
    path.write_text("Date,Open,High,Low,Close\n2024-01-02,1,0.5,0.9,1\n")

    with pytest.raises(DataError, match="every row of ALL_BAD was skipped"):
        load_bar_series(path, policy="skip")


def test_unknown_policy_and_bad_gap_are_config_errors() -> None:
    frame = frame_of("gaps.csv")
    with pytest.raises(ConfigError, match="'fail' or 'skip'"):
        validate_bars(frame, source="x", policy="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="positive"):
        validate_bars(frame, source="x", policy="fail", gap="-5min")
