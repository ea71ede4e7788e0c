"""The OCO manager under random chaos: brackets opened, prices moving through stops and targets, partial
fills, cancels, refused children, events held back, shuffled and duplicated, exits and flattens.

A hypothesis state machine drives an engine on `ChaosVenue` (tests/chaos_venue.py)
and checks DESIGN section 5 after every step:

(i)   no client order id is ever submitted twice;
(ii)  no orphan child: no stop or target works at the venue once its group is
      closed or flat (checked whenever nothing is held back on the road);
(iii) every position is the signed sum of the fills, and equals the venue's own
      once nothing is held back;
(iv)  no naked position: an open position is covered by a working or pending
      stop of its open group, or by working closing orders.

At the end everything is released, the book is flattened, and it must come to
rest flat with nothing working.
"""

from __future__ import annotations

import random
from collections import defaultdict
from decimal import Decimal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from chaos_venue import ChaosRig, accepts, cancels, chaos_rig, every_event, fills, rejects, signed
from quantdesk.execution import ExitPolicy, OcoGroup
from quantdesk.execution.client_ids import plan_client_id
from quantdesk.model import Instrument, Order, OrderStatus, OrderType, Side
from quantdesk.venues.sim import SimVenueConfig

D = Decimal
SYMBOLS = ("AAA", "BBB")
KEYS = (("a", "AAA"), ("b", "AAA"), ("a", "BBB"))
CHILD_TAGS = ("STOP", "TP1", "TP2")
HOLDS = {"fills": fills, "accepts": accepts, "cancels": cancels, "rejects": rejects, "all": every_event}
ROAD = [
    *(f"hold {kind}" for kind in (*sorted(HOLDS), "cancel-requests")),
    "hold fills",  # the races that matter most: fills late, cancels slow
    "hold cancel-requests",
    *["release", "release shuffled", "release-all", "release-all shuffled", "send-held-cancels"] * 2,
    "replay",
    "replay",
    "duplicates on",
    "duplicates off",
    "refuse stops",
    "refuse targets",
    "accept-all",
]
REFUSALS = {
    "stops": lambda order: order.order_type is OrderType.STOP,
    "targets": lambda order: order.tag in ("TP1", "TP2"),
}


class OcoChaos(RuleBasedStateMachine):
    """Random brackets on two symbols and two strategies, through a chaotic road to the venue."""

    def __init__(self) -> None:
        super().__init__()
        # 0.5% of a bar's volume: 1, 5 or 20 shares a bar, so fills come in parts.
        self.r: ChaosRig = chaos_rig(
            [Instrument(s) for s in SYMBOLS], config=SimVenueConfig(max_volume_share=0.005)
        )
        self.price = dict.fromkeys(SYMBOLS, 100)
        self.plans = 0
        self.r.feed(*(self.r.flat(100.0, symbol=s) for s in SYMBOLS))

    # -- what can happen ------------------------------------------------------------------------

    @rule(
        key=st.sampled_from(KEYS),
        side=st.sampled_from([Side.BUY, Side.SELL]),
        qty=st.integers(1, 20),
        limit_offset=st.none() | st.integers(0, 2),
        stop_distance=st.integers(1, 4),
        target_distances=st.lists(st.integers(1, 4), min_size=1, max_size=2),
    )
    def open_group(
        self,
        key: tuple[str, str],
        side: Side,
        qty: int,
        limit_offset: int | None,
        stop_distance: int,
        target_distances: list[int],
    ) -> None:
        strategy, symbol = key
        om = self.r.engine.orders
        busy = [o for o in om.working_orders(symbol) if om.strategy_of(o.client_order_id) == strategy]
        if busy or self.r.engine.position_qty(strategy, symbol) != 0:
            return  # the gate allows one position per strategy and symbol
        sign = side.sign
        entry = self.price[symbol] - sign * limit_offset if limit_offset is not None else None
        reference = entry if entry is not None else self.price[symbol]
        targets, level = [], reference
        for distance in target_distances:
            level += sign * distance
            targets.append(D(level))
        self.plans += 1
        om.enter(
            strategy,
            symbol,
            side,
            D(qty),
            plan_id=plan_client_id(
                strategy=strategy,
                symbol=symbol,
                side=side.value,
                entry=None,
                stop=None,
                targets=(),
                qty=D(qty),
                signal_ts=self.plans,
                config_sha="",
            ),
            entry=D(entry) if entry is not None else None,
            stop=D(reference - sign * stop_distance),
            targets=tuple(targets),
        )

    @rule(
        symbol=st.sampled_from(SYMBOLS),
        gap=st.integers(-3, 3),
        move=st.integers(-5, 5),
        wicks=st.tuples(st.integers(0, 3), st.integers(0, 3)),
        volume=st.sampled_from([200.0, 1_000.0, 4_000.0]),
    )
    def bar(self, symbol: str, gap: int, move: int, wicks: tuple[int, int], volume: float) -> None:
        open_ = max(60, min(140, self.price[symbol] + gap))
        close = max(60, min(140, open_ + move))
        high, low = max(open_, close) + wicks[0], min(open_, close) - wicks[1]
        self.r.feed(self.r.bar(open_, high, low, close, volume=volume, symbol=symbol))
        self.price[symbol] = close

    # One rule for all the road's moods and one for all interventions, so that entries and bars
    # (which need several steps to play out) are not crowded out by them.
    @rule(
        action=st.sampled_from(ROAD),
        count=st.integers(1, 4),
        index=st.integers(0, 10_000),
        rng=st.randoms(use_true_random=False),
    )
    def road(self, action: str, count: int, index: int, rng: random.Random) -> None:
        venue = self.r.venue
        kind, _, what = action.partition(" ")
        if kind == "hold":
            if what == "cancel-requests":
                venue.hold_cancels = True
            else:
                venue.hold(HOLDS[what])
        elif kind == "release":
            venue.release(count, rng=rng if what == "shuffled" else None)
        elif kind == "release-all":
            venue.release_all(rng=rng if what == "shuffled" else None)
        elif kind == "send-held-cancels":
            venue.send_held_cancels()
        elif kind == "replay":
            venue.replay(index)
        elif kind == "duplicates":
            venue.duplicate_all = what == "on"
        elif kind == "refuse":
            venue.refuse(REFUSALS[what], f"{what} refused")
        else:
            assert kind == "accept-all"
            venue.stop_refusing()

    @rule(action=st.sampled_from(["cancel-entry", "exit", "exit", "flatten"]), key=st.sampled_from(KEYS))
    def intervene(self, action: str, key: tuple[str, str]) -> None:
        strategy, symbol = key
        engine = self.r.engine
        if action == "cancel-entry":
            for group in engine.orders.open_groups():
                if (group.strategy, group.symbol) == key:
                    engine.orders.cancel(group.entry_id)
        elif action == "exit":
            engine.orders.exit(strategy, symbol, engine.position_qty(strategy, symbol), "exit")
        else:
            engine.flatten("flatten", pause=False)

    # Entries and bars twice over: they are what the chaos acts on.
    open_another_group = open_group
    another_bar = bar

    # -- what must always hold ------------------------------------------------------------------

    @invariant()
    def no_client_id_is_submitted_twice(self) -> None:
        sent = self.r.venue.submitted
        assert len(sent) == len(set(sent)), [i for i in sent if sent.count(i) > 1]

    @invariant()
    def positions_are_the_sum_of_fills(self) -> None:
        engine, venue = self.r.engine, self.r.venue
        by_symbol: dict[str, Decimal] = defaultdict(Decimal)
        by_key: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for fill in venue.fills():
            by_symbol[fill.symbol] += signed(fill.side, fill.qty)
            by_key[(engine.orders.strategy_of(fill.client_order_id), fill.symbol)] += signed(
                fill.side, fill.qty
            )
        for symbol in SYMBOLS:
            assert engine.portfolio.qty(symbol) == by_symbol[symbol]
            if not venue.held:
                assert by_symbol[symbol] == venue.positions.get(symbol, D(0))
        for strategy, symbol in KEYS:
            assert engine.position_qty(strategy, symbol) == by_key[(strategy, symbol)]

    @invariant()
    def no_orphan_child(self) -> None:
        if not self.r.venue.quiet:
            return  # an answer or a cancel is on its way: the in-flight window
        om = self.r.engine.orders
        at_venue = set(self.r.venue.open_order_ids())
        # Every order the venue works is one we hold as working, and the other way round.
        assert at_venue == {o.client_order_id for o in om.working_orders()}
        positions = self._group_positions()
        for client_order_id in at_venue:
            order = om.orders[client_order_id]
            if order.tag not in CHILD_TAGS:
                continue
            group = om.group_of(client_order_id)
            assert group is not None and not group.closed, f"{order.tag} outlives its group"
            assert client_order_id in (group.stop_id, *group.tp_ids), f"replaced {order.tag} still works"
            assert positions[id(group)] > 0, f"{order.tag} works for a flat group"

    @invariant()
    def no_naked_position(self) -> None:
        om, engine = self.r.engine.orders, self.r.engine
        positions = self._group_positions()
        for group in om.open_groups():
            position = positions[id(group)]
            if position <= 0 or group.stop is None:
                continue
            stop = om.orders.get(group.stop_id) if group.stop_id is not None else None
            # Working, or pending (submitted, its acknowledgement on its way): never missing.
            assert stop is not None and stop.is_open and stop.status is not OrderStatus.PENDING_CANCEL
            assert stop.leaves_qty >= position
            if self.r.venue.quiet:
                state = self.r.venue.query_order(stop.client_order_id)
                assert state is not None and state.is_open and state.qty - state.filled_qty >= position
        for strategy, symbol in KEYS:
            position = engine.position_qty(strategy, symbol)
            if position == 0:
                continue
            closing = Side.SELL if position > 0 else Side.BUY
            covered = sum(
                (o.leaves_qty for o in self._protecting(strategy, symbol) if o.side is closing), D(0)
            )
            assert covered >= abs(position), f"{strategy} {symbol}: {position} open, {covered} covered"

    def teardown(self) -> None:
        venue, engine = self.r.venue, self.r.engine
        venue.release_all()
        self.no_orphan_child()
        self.no_naked_position()
        self.positions_are_the_sum_of_fills()
        venue.stop_refusing()
        venue.duplicate_all = False
        engine.flatten("final flatten", pause=False)
        for _ in range(3):
            venue.release_all()
            self.r.feed(*(self.r.flat(float(self.price[s]), volume=1e6, symbol=s) for s in SYMBOLS))
        venue.release_all()
        assert venue.open_order_ids() == [] and engine.orders.working_orders() == []
        assert engine.orders.open_groups() == []
        for symbol in SYMBOLS:
            assert engine.portfolio.qty(symbol) == 0 == venue.positions.get(symbol, D(0))
        self.no_client_id_is_submitted_twice()

    # -- helpers --------------------------------------------------------------------------------

    def _group_positions(self) -> dict[int, Decimal]:
        """Each group's open quantity from the fills delivered for its orders (replaced ones too)."""
        om = self.r.engine.orders
        positions: dict[int, Decimal] = defaultdict(Decimal)
        for fill in self.r.venue.fills():
            group: OcoGroup | None = om.group_of(fill.client_order_id)
            if group is not None:
                positions[id(group)] += fill.qty if fill.side is group.side else -fill.qty
        return positions

    def _protecting(self, strategy: str, symbol: str) -> list[Order]:
        om = self.r.engine.orders
        stops = [
            om.orders[g.stop_id]
            for g in om.open_groups()
            if (g.strategy, g.symbol) == (strategy, symbol) and g.stop_id is not None
        ]
        exits = [
            o
            for o in om.working_orders(symbol)
            if o.tag == "EXIT" and om.strategy_of(o.client_order_id) == strategy
        ]
        return [o for o in stops if o.is_open] + exits


OcoChaos.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_oco_manager_keeps_section_5_invariants_under_chaos = OcoChaos.TestCase


class OcoChaosStopResting(OcoChaos):
    """The same chaos under ExitPolicy.STOP_RESTING (Alpaca): only the stop rests; targets are held
    by the order manager and released when a bar touches them. Section 5 holds as above, with the
    stop replaced in two steps (the new one goes on the old one's confirmed cancel), plus the
    venue's rule: a group's exits never exceed its position."""

    def __init__(self) -> None:
        super().__init__()
        self.r.engine.orders.exit_policy = ExitPolicy.STOP_RESTING

    def _released(self, group: OcoGroup) -> list[Order]:
        om = self.r.engine.orders
        return [om.orders[i] for i in group.tp_ids if i is not None and om.orders[i].is_open]

    def _replacing(self, group: OcoGroup) -> bool:
        """The cancel->replace step: the old stop is being cancelled, its successor not sent yet."""
        om = self.r.engine.orders
        stop = om.orders.get(group.stop_id) if group.stop_id is not None else None
        return stop is not None and stop.is_open and stop.client_order_id in self.r.venue.cancel_requests

    @invariant()
    def no_naked_position(self) -> None:
        om, engine = self.r.engine.orders, self.r.engine
        positions = self._group_positions()
        replacing: set[tuple[str, str]] = set()
        for group in om.open_groups():
            position = positions[id(group)]
            if position <= 0 or group.stop is None:
                continue
            if self._replacing(group):
                replacing.add((group.strategy, group.symbol))
                continue
            released = sum((o.leaves_qty for o in self._released(group)), D(0))
            stop = om.orders.get(group.stop_id) if group.stop_id is not None else None
            stop_leaves = stop.leaves_qty if stop is not None and stop.is_open else D(0)
            assert stop_leaves + released >= position, f"{position} open, {stop_leaves} + {released} covered"
        for strategy, symbol in KEYS:
            position = engine.position_qty(strategy, symbol)
            if position == 0 or (strategy, symbol) in replacing:
                continue
            closing = Side.SELL if position > 0 else Side.BUY
            covered = sum(
                (o.leaves_qty for o in self._protecting(strategy, symbol) if o.side is closing), D(0)
            )
            assert covered >= abs(position), f"{strategy} {symbol}: {position} open, {covered} covered"

    @invariant()
    def exits_never_exceed_the_position(self) -> None:
        om = self.r.engine.orders
        positions = self._group_positions()
        for group in om.open_groups():
            stop = om.orders.get(group.stop_id) if group.stop_id is not None else None
            live = [o for o in (stop, *self._released(group)) if o is not None and o.is_open]
            resting = sum((o.leaves_qty for o in live), D(0))
            assert resting <= max(positions[id(group)], D(0)) or not live, (
                f"{resting} of exits rest against {positions[id(group)]}"
            )

    def _protecting(self, strategy: str, symbol: str) -> list[Order]:
        released = [
            o
            for g in self.r.engine.orders.open_groups()
            if (g.strategy, g.symbol) == (strategy, symbol)
            for o in self._released(g)
        ]
        return super()._protecting(strategy, symbol) + released


OcoChaosStopResting.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_stop_resting_keeps_section_5_invariants_under_chaos = OcoChaosStopResting.TestCase
