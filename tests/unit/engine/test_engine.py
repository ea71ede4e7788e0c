"""The engine: signals become orders only when well-formed; positions are per strategy."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kit import flat_bar, instrument, rig
from quantdesk.engine import SignalBlocked
from quantdesk.model import Bar, Side, Signal
from quantdesk.strategies import Strategy

D = Decimal


class Scripted(Strategy):
    """Emits whatever the test queues for the next bar."""

    def on_start(self) -> None:
        self.queue: list[dict[str, object]] = []
        self.fills = 0

    def on_bar(self, bar: Bar) -> None:
        for action in self.queue:
            kind = action.pop("kind")
            if kind == "long":
                self.enter_long(**action)  # type: ignore[arg-type]
            elif kind == "short":
                self.enter_short(**action)  # type: ignore[arg-type]
            else:
                self.exit("scripted")
        self.queue.clear()

    def on_fill(self, order: object, fill: object) -> None:
        self.fills += 1


class ScriptedB(Scripted):
    pass


def _started(*strategies: Strategy):  # type: ignore[no-untyped-def]
    r = rig()
    for s in strategies:
        r.engine.add_strategy(s)
    r.engine.start()
    return r


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        ({"kind": "long", "stop": 105.0}, "wrong side"),
        ({"kind": "short", "stop": 95.0}, "wrong side"),
        ({"kind": "long", "stop": float("nan")}, "stop must be a positive number"),
        ({"kind": "long", "qty": 0}, "qty must be a positive number"),
        ({"kind": "long", "qty": -3}, "qty must be a positive number"),
        ({"kind": "long", "entry": float("nan")}, "entry must be a positive number"),
        ({"kind": "long", "targets": [float("nan")]}, "target must be a positive number"),
    ],
)
def test_malformed_signals_are_blocked_with_a_reason_and_never_sent(
    action: dict[str, object], reason: str
) -> None:
    strategy = Scripted("AAA")
    r = _started(strategy)
    blocked: list[SignalBlocked] = []
    r.bus.subscribe(SignalBlocked, blocked.append)
    r.feed(flat_bar(0, 100.0))
    strategy.queue.append(dict(action))
    r.feed(flat_bar(1, 100.0))
    assert len(blocked) == 1 and reason in blocked[0].reason
    assert r.engine.orders.orders == {}
    assert r.venue.open_order_ids() == []
    assert sum(r.engine.malformed.values()) == 1
    assert "refused" in "".join(r.log.lines or [])


def test_a_signal_for_an_unknown_symbol_is_blocked() -> None:
    r = _started()
    r.engine.submit_signal(Signal("x", "ZZZ", Side.BUY, 0))
    assert r.engine.malformed == {"unknown symbol": 1}  # counted by kind; the refusal names ZZZ


def test_positions_are_tracked_per_strategy_so_exits_do_not_cross() -> None:
    a, b = Scripted("AAA"), ScriptedB("AAA")
    r = _started(a, b)
    r.feed(flat_bar(0, 100.0))
    a.queue.append({"kind": "long", "qty": 3})
    b.queue.append({"kind": "short", "qty": 2})
    r.feed(flat_bar(1, 100.0), flat_bar(2, 100.0))
    assert a.position == 3 and b.position == -2
    assert r.engine.portfolio.qty("AAA") == 1
    a.queue.append({"kind": "exit"})
    r.feed(flat_bar(3, 100.0), flat_bar(4, 100.0))
    assert a.position == 0 and b.position == -2
    assert a.fills == 2 and b.fills == 1


def test_only_overridden_callbacks_are_dispatched() -> None:
    class BarsOnly(Strategy):
        def on_bar(self, bar: Bar) -> None:
            pass

    r = _started(BarsOnly("AAA"))
    assert "AAA" in r.engine._bar_handlers
    assert r.engine._tick_handlers == {} and r.engine._quote_handlers == {}


def test_a_strategy_on_an_unknown_symbol_is_refused() -> None:
    r = rig([instrument("AAA")])
    with pytest.raises(KeyError, match="unknown symbol 'BBB'"):
        r.engine.add_strategy(Scripted("BBB"))


def test_session_key_is_the_local_day() -> None:
    r = rig()
    # 2024-01-02 23:30 UTC is still 2024-01-02 in New York but 2024-01-03 in Kolkata.
    ts = 1_704_238_200_000_000_000
    assert r.engine.session_key(ts) == 19_724
    from quantdesk.engine import Engine, EngineConfig

    kolkata = Engine(
        clock=r.clock,
        bus=r.bus,
        venue=r.venue,
        instruments=r.engine.instruments,
        cash=D(1),
        config=EngineConfig(timezone="Asia/Kolkata"),
    )
    assert kolkata.session_key(ts) == 19_725


def test_a_quantity_below_one_lot_is_blocked_by_the_sizer_with_a_recorded_decision() -> None:
    strategy = Scripted("AAA")
    r = _started(strategy)
    r.feed(flat_bar(0, 100.0))
    strategy.queue.append({"kind": "long", "qty": D("0.4")})
    r.feed(flat_bar(1, 100.0), flat_bar(2, 100.0))
    assert r.engine.orders.orders == {}
    assert r.engine.pipeline.blocked == {"ZERO_SIZE": 1}
    decision = r.engine.pipeline.decisions[-1]
    assert not decision.approved and "less than one lot" in decision.details[0]
