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


def kill_at(work: Path, point: str) -> None:
    """Start the node and let `point` kill it (SIGKILL: no clean-up of any kind)."""
    crashed = launch(work, point)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]


def run_to_end(work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start the node once more, to the end of the data: what it saw once recovered, and at the end."""
    restarted = launch(work)
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    return read(work, "after_start.json"), read(work, "final.json")


@pytest.mark.parametrize(
    "point",
    ["persisted:3", "sent:4", "entry_fill:2", "child_fill:2", "child_fill:14", "flatten:1"],
)
def test_a_node_killed_at_any_step_recovers_without_duplicates_orphans_or_lost_fills(
    tmp_path: Path, point: str
) -> None:
    kill_at(tmp_path, point)
    assert not (tmp_path / "final.json").exists()

    start, final = run_to_end(tmp_path)

    # Recovery had work to do: orders in doubt settled at the venue, fills it missed applied.
    report = start["recovery"]
    assert report is not None and report["restored_orders"] >= 1
    # Orders in doubt looked up at the venue and settled: taken with its state, or never sent.
    assert len(report["adopted"]) + len(report["never_sent"]) + len(report["shadows"]) >= 1
    if "fill" in point:
        assert report["missed_fills"]  # executions made while the node was dead, now booked
    assert report["position_mismatches"] == []
    assert_consistent(tmp_path, start, final)


# Killed again before the restart had finished recovering: at the first order it sends (the
# children of an entry filled while it was down) or the first cancel (the sibling of a child
# filled while it was down), then restarted once more.
@pytest.mark.parametrize(
    ("first", "second"),
    [("entry_fill:2", "persisted:1"), ("child_fill:2", "cancel:1"), ("child_fill:14", "any:1")],
)
def test_a_node_killed_again_while_recovering_recovers_on_the_next_start(
    tmp_path: Path, first: str, second: str
) -> None:
    kill_at(tmp_path, first)
    (tmp_path / "after_start.json").unlink()

    kill_at(tmp_path, second)
    # It died recovering: it never got as far as trading.
    assert not (tmp_path / "after_start.json").exists()

    start, final = run_to_end(tmp_path)
    assert start["recovery"] is not None and start["recovery"]["position_mismatches"] == []
    assert_consistent(tmp_path, start, final)


def assert_consistent(work: Path, start: dict[str, Any], final: dict[str, Any]) -> None:
    """The promises of a recovery: the node and the venue agree when it starts and when it ends,
    nothing was sent twice, nothing is left working, and every execution is in the store."""
    # Right after recovery the node and the venue agree on positions and open orders.
    assert numbers(start["engine_positions"]) == numbers(start["venue_positions"])
    # Every position is protected again, or being closed (its stop was never stored): none naked.
    assert start["naked"] == []
    assert start["engine_working"] == start["venue_open"]
    # No client order id ever reached the venue twice, across the crashes and the restarts.
    repeats = [cid for cid, n in Counter(final["submitted"]).items() if n > 1]
    assert repeats == []
    # The session ends flat on both sides with nothing left working: no orphan child.
    assert numbers(final["engine_positions"]) == numbers(final["venue_positions"]) == {}
    assert final["engine_working"] == final["venue_open"] == []
    # Every execution the venue made is in the store, once.
    stored = stored_fills(work / "var" / "quantdesk.db")
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
