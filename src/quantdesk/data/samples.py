"""Bundled sample data: real bars read from permissively licensed packages, never copied here."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pandas as pd

from quantdesk.data.loaders import load_bars
from quantdesk.data.series import BarSeries
from quantdesk.data.validate import Policy
from quantdesk.errors import UserError

SAMPLE_PREFIX = "sample:"
_STOCKS = ("AAPL", "FB", "GOOG", "IBM", "MSFT")
_FOREX = {"EURUSD_1H": "FOREX_EURUSD_1H_ASK.csv"}


def sample_names() -> list[str]:
    """Names `load_sample` accepts, sorted."""
    return sorted((*_STOCKS, *_FOREX))


def load_sample(name: str) -> BarSeries:
    """Load a bundled sample series by name (case-insensitive); see `sample_names`.

    AAPL, FB, GOOG, IBM, MSFT: daily unadjusted OHLCV, 2000-03-01 (FB
    2012-05-18, GOOG 2004-08-19) to 2013-03-01; 196 to 3,270 bars. Read from
    ``_data/stocks.csv.gz`` of the installed package ``bokeh-sampledata``
    (BSD-3-Clause); the data itself is Quandl WIKI Prices, which Quandl declared
    public domain. "Adj Close" is ignored. Each day is labelled at midnight UTC
    of its date (no session time is implied).

    EURUSD_1H: hourly EUR/USD ask bars, 2017-01-01 22:00 to 2017-12-29 21:00,
    6,225 bars, 5 price decimals. Read from
    ``datasets/data/FOREX_EURUSD_1H_ASK.csv`` of the installed package
    ``gym-anytrading`` (MIT). Its times are naive day-first text
    (``01.01.2017 22:00:00.000``) and are read as UTC.

    The packages are located with `importlib.util.find_spec` and not imported
    (gym-anytrading would pull in gymnasium). Raises `UserError` for an unknown
    name or a missing package.
    """
    key = name.strip().upper()
    if key in _STOCKS:
        path = _package_file("bokeh_sampledata", "bokeh-sampledata", "_data", "stocks.csv.gz")
        series = load_bars(path, symbol=key)[key]
    elif key in _FOREX:
        path = _package_file("gym_anytrading", "gym-anytrading", "datasets", "data", _FOREX[key])
        series = load_bars(path, symbol=key)[key]
    else:
        raise UserError(f"unknown sample {name!r}; known samples: {', '.join(sample_names())}")
    return replace(series, source=f"{SAMPLE_PREFIX}{key}")


def resolve_data(
    spec: str,
    *,
    symbol: str | None = None,
    columns: Mapping[str, str] | None = None,
    tz: str | None = None,
    policy: Policy = "fail",
    gap: pd.Timedelta | str | None = None,
) -> dict[str, BarSeries]:
    """Series keyed by symbol from a data spec: ``sample:NAME`` or a file path.

    ``sample:GOOG`` gives ``{"GOOG": load_sample("GOOG")}`` (the keyword
    arguments do not apply to samples); anything else is passed with the keyword
    arguments to `load_bars`.
    """
    if spec.startswith(SAMPLE_PREFIX):
        series = load_sample(spec[len(SAMPLE_PREFIX) :])
        return {series.symbol: series}
    return load_bars(spec, symbol=symbol, columns=columns, tz=tz, policy=policy, gap=gap)


def _package_file(package: str, distribution: str, *parts: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location).joinpath(*parts)
        if path.is_file():
            return path
    if not locations:
        raise UserError(f"sample data needs the package {distribution}: pip install {distribution}")
    raise UserError(f"{distribution} is installed but has no {'/'.join(parts)}")
