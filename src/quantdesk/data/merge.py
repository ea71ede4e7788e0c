"""Merging several symbols' bar series into one time-ordered stream of bars."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import repeat

import numpy as np

from quantdesk.data.series import BAR_COLUMNS, BarSeries, new_bar
from quantdesk.model import Bar


def merge_bars(series: Sequence[BarSeries]) -> Iterator[Bar]:
    """Yield the bars of all `series` in time order.

    Bars with the same timestamp come in the order of `series` (stable), so the
    stream is the same on every run. The order is computed once with a stable
    numpy argsort over the concatenated timestamps, which keeps series order on
    ties because the inputs are concatenated in that order; 1M bars take well
    under a second to order. Bars carry ts_event = ts_init = the bar's timestamp.
    """
    series = list(series)
    if not series:
        return
    ts = np.concatenate([s.ts for s in series])
    which = np.repeat(np.arange(len(series)), [len(s) for s in series])
    order = np.argsort(ts, kind="stable")
    owners = np.array([s.symbol for s in series], dtype=object)[which[order]].tolist()
    times = ts[order].tolist()
    # tolist() turns numpy scalars into Python ones in one pass rather than per bar.
    columns = [np.concatenate([getattr(s, name) for s in series])[order].tolist() for name in BAR_COLUMNS]
    yield from map(new_bar, repeat(Bar), zip(owners, times, *columns, times, strict=True))
