"""Process settings: the trading GC tuning freezes start-up objects and makes young collections rare."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from quantdesk.engine.runtime import YOUNG_THRESHOLD, tune_gc_for_trading


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_tuning_freezes_what_is_alive_and_raises_only_the_young_threshold() -> None:
    _, older, oldest = gc.get_threshold()
    gc.unfreeze()
    tune_gc_for_trading()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_THRESHOLD, older, oldest)
    assert YOUNG_THRESHOLD > 700  # CPython's default, which a decision's allocations used to trip
