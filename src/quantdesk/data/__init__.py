"""Market data: loading, validating, aggregating, merging bars; bundled and synthetic samples."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from quantdesk.data.aggregate import BarAggregator, resample_bars, ticks_to_bars
from quantdesk.data.merge import merge_bars
from quantdesk.data.series import BarSeries
from quantdesk.data.synthetic import synthetic_intraday

if TYPE_CHECKING:
    from quantdesk.data.loaders import load_bar_series, load_bars
    from quantdesk.data.samples import load_sample, resolve_data, sample_names
    from quantdesk.data.validate import ValidationReport, validate_bars

# These modules use pandas (~110 MB with pyarrow); they load on first use, so a backtest
# on synthetic or in-memory bars never pays for them.
_LAZY = {
    "load_bar_series": "quantdesk.data.loaders",
    "load_bars": "quantdesk.data.loaders",
    "load_sample": "quantdesk.data.samples",
    "resolve_data": "quantdesk.data.samples",
    "sample_names": "quantdesk.data.samples",
    "ValidationReport": "quantdesk.data.validate",
    "validate_bars": "quantdesk.data.validate",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BarAggregator",
    "BarSeries",
    "ValidationReport",
    "load_bar_series",
    "load_bars",
    "load_sample",
    "merge_bars",
    "resample_bars",
    "resolve_data",
    "sample_names",
    "synthetic_intraday",
    "ticks_to_bars",
    "validate_bars",
]
