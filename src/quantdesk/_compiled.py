"""The hot-path modules compiled to C with mypyc, and the guard against a stale compiled module.

`setup.py` compiles these (unless `QUANTDESK_PURE=1`); everything else stays Python.
They are the per-bar and per-order path: the feed loop, the engine, the pipeline, the
order manager, the simulated venue, the model's accounting, and what the store writer does on
the engine's thread (`store/capture.py`). Modules that define msgspec
Structs (orders, events, fills, signals, decisions, trade records, the venue's resting
orders and path hits) stay Python: mypyc drops a class's keyword arguments when it
compiles it, so a frozen, gc=False Struct would come out mutable and tracked; msgspec
builds them in C already.

Habits that keep compiled code fast (each measured): module constants are `Final` (a C
static, not a lookup in the module's dict per use); Decimals are compared with a Decimal
zero, not the int 0 (an int is converted on every comparison); Structs on the per-order
path are built positionally (keywords cost a name match per field); Python methods of the
pure Structs that run per order (`Order.transition`, `Order.apply_fill`) have compiled
copies in the order manager that defer to the method for anything it would refuse. Enum
members are read from module constants (`_BUY: Final = Side.BUY`): on Python 3.11 `Side.BUY`
goes through EnumType's `__getattr__` hook, ~80 ns each, and the per-order path read ~35 of
them per order; enum properties (`side.opposite`, `.value`) are Python code, so hot code
spells them out. f-strings write `str(x)`, never `!s`: one conversion flag turns every field
of the f-string into a `str.format` call (ruff's RUF010 is off for this). No lambda in a hot
function: it moves all of the function's locals into a heap object. Tests in
tests/unit/test_compiled.py hold the first two.

This module imports nothing from quantdesk: `setup.py` reads it before anything is built.
"""

from __future__ import annotations

import importlib.machinery
from pathlib import Path

COMPILED_MODULES: tuple[str, ...] = (
    "quantdesk/backtest/runner.py",
    "quantdesk/bus/bus.py",
    "quantdesk/clock/clock.py",
    "quantdesk/engine/engine.py",
    "quantdesk/engine/pipeline.py",
    "quantdesk/execution/client_ids.py",
    "quantdesk/execution/event_log.py",
    "quantdesk/execution/order_manager.py",
    "quantdesk/execution/throttle.py",
    "quantdesk/execution/tracker.py",
    "quantdesk/model/account.py",
    "quantdesk/model/instrument.py",
    "quantdesk/model/position.py",
    "quantdesk/portfolio/portfolio.py",
    "quantdesk/portfolio/trades.py",
    "quantdesk/risk/gate.py",
    "quantdesk/risk/protections/manager.py",
    "quantdesk/risk/protections/window.py",
    "quantdesk/risk/session.py",
    "quantdesk/risk/sizer.py",
    "quantdesk/store/capture.py",
    "quantdesk/strategies/indicators.py",
    "quantdesk/venues/sim/exchange.py",
    "quantdesk/venues/sim/matching.py",
)


class StaleCompiledModule(ImportError):
    """A compiled module is older than its source: Python would run the old code."""


def stale_modules(src: Path) -> list[str]:
    """The compiled modules under `src` whose source changed after they were built."""
    stale = []
    for module in COMPILED_MODULES:
        source = src / module
        stem = source.with_suffix("")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            built = stem.with_name(stem.name + suffix)
            if built.exists() and source.stat().st_mtime > built.stat().st_mtime:
                stale.append(module)
                break
    return stale


def check_source_tree(package_dir: Path) -> None:
    """In a source checkout (a pyproject.toml beside src/), refuse to run stale compiled code.

    An extension module wins over its .py at import, so after an edit, a pull or a branch
    switch the old compiled code would run silently. Installed wheels are not checked:
    their sources and extensions come from one build.
    """
    src = package_dir.parent
    if not (src.parent / "pyproject.toml").exists():
        return
    stale = stale_modules(src)
    if stale:
        raise StaleCompiledModule(
            f"compiled modules older than their source: {', '.join(stale)}. "
            "Rebuild them with `make build` (or delete src/**/*.so to run pure Python)."
        )
