"""Instrument properties from files, flags or the data, with errors that name file and field."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from quantdesk.data.instruments import instrument_for, load_instruments
from quantdesk.errors import DataError


def test_toml_instruments_file(tmp_path: Path) -> None:
    path = tmp_path / "instruments.toml"
    path.write_text(
        '[[instrument]]\nsymbol = "RELIANCE"\nexchange = "XNSE"\ncurrency = "INR"\n'
        'tick_size = "0.05"\nmax_qty = 100000\n\n'
        '[[instrument]]\nsymbol = "NIFTY24DECFUT"\ntick_size = "0.05"\nlot_size = 25\n'
    )
    instruments = load_instruments(path)
    reliance = instruments["RELIANCE"]
    assert reliance.tick_size == Decimal("0.05") and reliance.max_qty == 100000
    assert reliance.currency == "INR" and reliance.source == "instruments file instruments.toml"
    assert instruments["NIFTY24DECFUT"].lot_size == 25 and instruments["NIFTY24DECFUT"].min_qty == 25


def test_json_and_csv_instruments_files(tmp_path: Path) -> None:
    (tmp_path / "i.json").write_text('[{"symbol": "AAPL", "tick_size": "0.01"}]')
    (tmp_path / "i.csv").write_text("symbol,tick_size,lot_size\nEURUSD,0.00001,1000\n")
    assert load_instruments(tmp_path / "i.json")["AAPL"].tick_size == Decimal("0.01")
    assert load_instruments(tmp_path / "i.csv")["EURUSD"].lot_size == 1000


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"symbol": "A", "tick_size": "0.01", "tick": 1}]', "instrument 1, field 'tick'"),
        ('[{"symbol": "A"}]', "field 'tick_size'"),
        ('[{"symbol": "A", "tick_size": "-1"}]', "tick_size must be positive"),
        ('[{"symbol": "A", "tick_size": "0.01"}, {"symbol": "A", "tick_size": "0.01"}]', "listed twice"),
        ("{not json", "cannot read instruments"),
    ],
)
def test_bad_instruments_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_instruments(path)


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_instruments(tmp_path / "nope.toml")
    (tmp_path / "i.yaml").write_text("x")
    with pytest.raises(DataError, match="unsupported instruments format"):
        load_instruments(tmp_path / "i.yaml")


def test_properties_inferred_from_the_data_say_so() -> None:
    inferred = instrument_for("EURUSD", price_decimals=5)
    assert inferred.tick_size == Decimal("0.00001")
    assert inferred.source == "inferred from data (5 price decimals)"
    flagged = instrument_for("X", price_decimals=2, tick_size=Decimal("0.05"), lot_size=Decimal(10))
    assert flagged.source == "flags" and flagged.min_qty == 10
