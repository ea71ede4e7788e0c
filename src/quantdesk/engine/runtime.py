"""Process settings for a trading node: garbage collection tuned so pauses stay off the hot path."""

from __future__ import annotations

import gc


def tune_gc_for_trading() -> None:
    """Freeze what start-up built, so collections stop rescanning it.

    A trading process holds a large set of long-lived objects (modules,
    calendars, instruments, strategies). CPython's full collections rescan all of
    them, a pause of milliseconds in the middle of a tick. `gc.freeze()` moves
    everything alive now to a permanent generation that is never scanned; young
    collections keep their default (small, frequent, cheap) thresholds, which
    measured better at p99 than rarer, larger ones. Cyclic garbage is still
    collected. Call once after start-up, and again after large loads (e.g. a
    recovery) to freeze what they built.
    """
    gc.collect()
    gc.freeze()
