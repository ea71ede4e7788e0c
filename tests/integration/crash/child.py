"""Crash-test child: a paper node on a persistent venue that SIGKILLs itself at one lifecycle step.

Usage: python child.py WORKDIR [POINT:N]

POINT is where the N-th occurrence kills the process (no clean-up of any kind):
  persisted   the outbox row is committed, the order not yet sent
  sent        the venue accepted the order (and saved it), the node not yet told
  entry_fill  the venue filled an entry, the node not yet told (no children yet)
  child_fill  the venue filled a stop or target, the node not yet told (siblings still open)
  flatten     a flatten is under way: the N-th cancel of it has reached the venue
  cancel      any cancel: done at the venue and answered, the node's call not yet returned
  any         the N-th of all the above and of every other answer the venue gives (a cancel
              confirmed, a rejection...): a kill anywhere the node and the venue talk
Without POINT the node runs to the end of the data. Each run writes WORKDIR/after_start.json
once recovered and started, and WORKDIR/final.json at the end, for the parent to compare.
With POINT `flatten`, or a file WORKDIR/flatten, the node flattens (as /flatten does) at the
third entry fill it hears in each start.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from quantdesk.model import Bar, Fill, Order, OrderEvent, OrderFilled
from quantdesk.node import NodeConfig, NodeParts, PaperNode
from quantdesk.node import paper as paper_module
from quantdesk.strategies.base import Strategy
from quantdesk.strategies.registry import register
from quantdesk.venues.sim.persistent import PersistentExchange

CONFIG = """
[risk]
max_data_age_seconds = 3600
max_risk_per_trade_pct = 5.0
max_portfolio_heat_pct = 50.0
max_daily_loss_pct = 50.0
[risk.sizing]
mode = "fixed"
fixed_qty = 10
"""


@register("crash_bracket")
class CrashBracket(Strategy):
    """Every `every` bars while flat: buy at market with a stop and two targets (a full OCO)."""

    every: int = 7

    def on_start(self) -> None:
        self._bars = 0

    def on_bar(self, bar: Bar) -> None:
        self._bars += 1
        if self.is_flat and self._bars % self.every == 0:
            self.enter_long(
                stop=bar.close - 0.30, targets=[bar.close + 0.15, bar.close + 0.40], rationale="crash test"
            )


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class CrashingExchange(PersistentExchange):
    """The persistent venue with a kill switch of the other kind: SIGKILL at the chosen step."""

    point = ""
    nth = 0
    flattening = False
    _counts: ClassVar[dict[str, int]] = {}

    def _hit(self, *points: str) -> None:
        for point in (*points, "any"):
            if point != self.point:
                continue
            self._counts[point] = self._counts.get(point, 0) + 1
            if self._counts[point] == self.nth:
                die()

    def submit_order(self, order: Order) -> None:
        LEGS[order.client_order_id] = order.tag
        self._hit("persisted")
        super().submit_order(order)

    def cancel_order(self, client_order_id: str) -> None:
        super().cancel_order(client_order_id)
        self._hit("cancel", *(("flatten",) if self.flattening else ()))

    def _answer(self, event: OrderEvent) -> None:
        name = type(event).__name__
        if name == "OrderAccepted":
            self._hit("sent")
        elif isinstance(event, OrderFilled):
            self._hit("entry_fill" if LEGS.get(event.client_order_id) == "ENTRY" else "child_fill")
        else:
            self._hit()
        super()._answer(event)


LEGS: dict[str, str] = {}  # client order id -> leg tag, as this process sent them


def snapshot(parts: NodeParts) -> dict[str, Any]:
    engine, venue = parts.engine, parts.venue
    return {
        "engine_positions": {
            p.symbol: str(p.qty) for p in engine.portfolio.open_positions() if p.qty != Decimal(0)
        },
        "venue_positions": {s: str(q) for s, q in venue.positions.items() if q != 0},
        "engine_working": sorted(o.client_order_id for o in engine.orders.working_orders()),
        "venue_open": sorted(o.client_order_id for o in venue.open_orders()),
        "submitted": list(getattr(venue, "submitted", [])),
        "fills": [list(f) for f in getattr(venue, "fills", [])],
        "recovery": None if parts.recovery is None else parts.recovery.to_dict(),
        # Symbols held with neither a working stop nor a working exit (naked positions).
        "naked": sorted(
            p.symbol
            for p in engine.portfolio.open_positions()
            if p.qty != 0
            and not any(
                o.symbol == p.symbol and o.tag in ("STOP", "EXIT") for o in engine.orders.working_orders()
            )
        ),
        "paused": engine.state.paused,
    }


def main() -> None:
    work = Path(sys.argv[1])
    point, _, nth = (sys.argv[2] if len(sys.argv) > 2 else "").partition(":")
    CrashingExchange.point, CrashingExchange.nth = point, int(nth or 0)
    paper_module.PersistentExchange = CrashingExchange  # type: ignore[misc]
    (work / "risk.toml").write_text(CONFIG)
    config = NodeConfig(
        strategy="crash_bracket",
        params={},
        symbols=("AAA", "BBB"),
        speed=20_000.0,
        var_dir=work / "var",
        venue_state=work / "venue.pickle",
        config_file=str(work / "risk.toml"),
        exit_at_end=True,
        port=0,  # any free port: a fixed one collides with a node running beside the suite
    )

    flattens = point == "flatten" or (work / "flatten").exists()

    def on_built(parts: NodeParts) -> None:
        engine = parts.engine
        entry_fills = [0]

        def on_fill(fill: Fill) -> None:
            order = engine.orders.orders.get(fill.client_order_id)
            if order is not None and order.tag == "ENTRY" and flattens:
                entry_fills[0] += 1
                if entry_fills[0] == 3:  # with positions and brackets working: flatten, as /flatten does
                    CrashingExchange.flattening = True
                    asyncio.get_running_loop().call_soon(engine.flatten, "crash test", "tester")

        engine.bus.subscribe(Fill, on_fill)

    node = PaperNode(config, on_built=on_built)

    async def run() -> None:
        task = asyncio.create_task(node.run(handle_signals=False, configure_logs=False))
        await node.started.wait()
        assert node.parts is not None
        (work / "after_start.json").write_text(json.dumps(snapshot(node.parts)))
        await task

    asyncio.run(run())
    assert node.parts is not None
    (work / "final.json").write_text(json.dumps(snapshot(node.parts)))


if __name__ == "__main__":
    main()
