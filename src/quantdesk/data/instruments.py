"""Instrument properties for a run: from an instruments file, from flags, or inferred from the data."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from quantdesk.errors import DataError
from quantdesk.model import Instrument
from quantdesk.model.instrument import tick_size_for_precision


class InstrumentSpec(BaseModel):
    """One row of an instruments file; unknown keys are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str
    exchange: str = "SIM"
    currency: str = "USD"
    tick_size: Decimal
    lot_size: Decimal = Decimal(1)
    min_qty: Decimal | None = None
    max_qty: Decimal | None = None
    multiplier: Decimal = Decimal(1)


def load_instruments(path: str | Path) -> dict[str, Instrument]:
    """Read instruments from TOML (`[[instrument]]` tables), JSON (a list) or CSV (a header row).

    Example TOML::

        [[instrument]]
        symbol = "RELIANCE"
        exchange = "XNSE"
        currency = "INR"
        tick_size = "0.05"
        max_qty = 100000
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: instruments file not found")
    try:
        rows = _rows(path)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise DataError(f"{path}: cannot read instruments: {error}") from None
    instruments: dict[str, Instrument] = {}
    for number, row in enumerate(rows, start=1):
        try:
            spec = InstrumentSpec.model_validate(row)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise DataError(f"{path}: instrument {number}, field {where!r}: {first['msg']}") from None
        if spec.symbol in instruments:
            raise DataError(f"{path}: instrument {spec.symbol} is listed twice")
        instruments[spec.symbol] = _build(spec, f"instruments file {path.name}", str(path))
    return instruments


def _rows(path: Path) -> list[Mapping[str, Any]]:
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        data = tomllib.loads(text)
        rows = data.get("instrument", data.get("instruments"))
        if not isinstance(rows, list):
            raise ValueError("expected [[instrument]] tables")
        return rows
    if suffix == ".json":
        data = json.loads(text)
        if isinstance(data, dict):
            data = data.get("instruments", data)
        if not isinstance(data, list):
            raise ValueError("expected a list of instruments")
        return data
    if suffix == ".csv":
        import csv

        return [
            {k: v for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(text.splitlines())
        ]
    raise ValueError(f"unsupported instruments format {suffix!r} (use .toml, .json or .csv)")


def _build(spec: InstrumentSpec, source: str, where: str) -> Instrument:
    try:
        return Instrument(
            symbol=spec.symbol,
            exchange=spec.exchange,
            currency=spec.currency,
            tick_size=spec.tick_size,
            lot_size=spec.lot_size,
            min_qty=spec.min_qty if spec.min_qty is not None else spec.lot_size,
            max_qty=spec.max_qty,
            multiplier=spec.multiplier,
            source=source,
        )
    except (ValueError, InvalidOperation) as error:
        raise DataError(f"{where}: instrument {spec.symbol}: {error}") from None


def instrument_for(
    symbol: str,
    *,
    price_decimals: int,
    tick_size: Decimal | None = None,
    lot_size: Decimal | None = None,
    exchange: str = "SIM",
    currency: str = "USD",
) -> Instrument:
    """An instrument from flags where given, the rest inferred: tick = the data's price precision."""
    from_flags = tick_size is not None or lot_size is not None
    tick = tick_size if tick_size is not None else tick_size_for_precision(price_decimals)
    lot = lot_size if lot_size is not None else Decimal(1)
    if tick_size is None and lot_size is None:
        source = f"inferred from data ({price_decimals} price decimals)"
    elif tick_size is not None and lot_size is not None:
        source = "flags"
    else:
        source = "flags and inferred from data" if from_flags else "inferred from data"
    try:
        return Instrument(
            symbol=symbol,
            exchange=exchange,
            currency=currency,
            tick_size=tick,
            lot_size=lot,
            min_qty=lot,
            source=source,
        )
    except (ValueError, InvalidOperation) as error:
        raise DataError(f"instrument {symbol}: {error}") from None
