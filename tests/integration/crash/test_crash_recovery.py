"""kill -9 at each step of the order lifecycle, restart, and check nothing was sent twice or lost.

The node runs in a child process on a simulated venue whose state is saved before
it answers (`PersistentExchange`), so the venue outlives the node as a broker does.
Each case kills the child at one step, restarts it on the same store and venue
state, lets it recover and trade to the end of the data, then compares.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

CHILD = Path(__file__).with_name("child.py")


def launch(work: Path, point: str = "") -> subprocess.CompletedProcess[str]:
    args = [sys.executable, str(CHILD), str(work)] + ([point] if point else [])
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def read(work: Path, name: str) -> dict[str, Any]:
    return json.loads((work / name).read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "point",
    ["persisted:3", "sent:4", "entry_fill:2", "child_fill:2", "child_fill:14", "flatten:1"],
)
def test_a_node_killed_at_any_step_recovers_without_duplicates_orphans_or_lost_fills(
    tmp_path: Path, point: str
) -> None:
    crashed = launch(tmp_path, point)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert not (tmp_path / "final.json").exists()

    restarted = launch(tmp_path)
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    start, final = read(tmp_path, "after_start.json"), read(tmp_path, "final.json")

    # Recovery had work to do: orders in doubt settled at the venue, fills it missed applied.
    report = start["recovery"]
    assert report is not None and report["restored_orders"] >= 1
    # Orders in doubt looked up at the venue and settled: taken with its state, or never sent.
    assert len(report["adopted"]) + len(report["never_sent"]) + len(report["shadows"]) >= 1
    if "fill" in point:
        assert report["missed_fills"]  # executions made while the node was dead, now booked
    assert report["position_mismatches"] == []
    # Right after recovery the node and the venue agree on positions and open orders.
    assert numbers(start["engine_positions"]) == numbers(start["venue_positions"])
    # Every position is protected again, or being closed (its stop was never stored): none naked.
    assert start["naked"] == []
    assert start["engine_working"] == start["venue_open"]
    # No client order id ever reached the venue twice, across the crash and the restart.
    repeats = [cid for cid, n in Counter(final["submitted"]).items() if n > 1]
    assert repeats == []
    # The session ends flat on both sides with nothing left working: no orphan child.
    assert numbers(final["engine_positions"]) == numbers(final["venue_positions"]) == {}
    assert final["engine_working"] == final["venue_open"] == []
    # Every execution the venue made is in the store, once.
    stored = stored_fills(tmp_path / "var" / "quantdesk.db")
    venue_fills = {f[0]: (f[1], Decimal(f[2])) for f in final["fills"]}
    assert stored == venue_fills


def numbers(positions: dict[str, str]) -> dict[str, Decimal]:
    return {symbol: Decimal(qty) for symbol, qty in positions.items()}


def stored_fills(db: Path) -> dict[str, tuple[str, Decimal]]:
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT f.execution_id, o.client_order_id, f.qty FROM fills f "
                "JOIN orders o ON o.id = f.order_id"
            )
        ).all()
    engine.dispose()
    return {execution: (cid, Decimal(str(qty))) for execution, cid, qty in rows}
