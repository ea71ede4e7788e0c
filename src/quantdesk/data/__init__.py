"""Market data: loading, validating, aggregating, merging bars; bundled and synthetic samples."""

from quantdesk.data.aggregate import BarAggregator, resample_bars, ticks_to_bars
from quantdesk.data.loaders import load_bar_series, load_bars
from quantdesk.data.merge import merge_bars
from quantdesk.data.samples import load_sample, resolve_data, sample_names
from quantdesk.data.series import BarSeries
from quantdesk.data.synthetic import synthetic_intraday
from quantdesk.data.validate import ValidationReport, validate_bars

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
