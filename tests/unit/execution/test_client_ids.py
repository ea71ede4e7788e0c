"""Client ids: deterministic plan hashes, per-leg ids fit for Kite and Alpaca, a registry with no repeats."""

from __future__ import annotations

import random
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.errors import FatalError
from quantdesk.execution.client_ids import (
    MAX_ATTEMPT,
    PLAN_ID_LENGTH,
    ClientIdRegistry,
    ClientIdsExhausted,
    DuplicateClientId,
    Leg,
    order_client_id,
    plan_client_id,
)
from quantdesk.model import Side
from quantdesk.venues.base import VenueCapabilities

D = Decimal
KITE = VenueCapabilities(
    "kite", max_client_id_length=20, client_id_alphanumeric=True, unique_client_ids=False
)
ALPACA = VenueCapabilities("alpaca", max_client_id_length=128)
KITE_ID = re.compile(r"[A-Z0-9]{1,20}")
ALPACA_ID = re.compile(r"qd-[A-Z2-7]+-(entry|stop|tp1|tp2|exit)-\d+")


def _plan(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "strategy": "orb",
        "symbol": "RELIANCE",
        "side": "BUY",
        "entry": D("2500.50"),
        "stop": D("2480"),
        "targets": (D("2520"), D("2540.5")),
        "qty": D("10"),
        "signal_ts": 1_704_205_800_000_000_000,
        "config_sha": "3f2a9c",
    }
    fields.update(changes)
    return fields


PLAN = plan_client_id(**_plan())


def test_plan_id_is_the_same_for_the_same_plan() -> None:
    assert plan_client_id(**_plan()) == plan_client_id(**_plan())
    assert len(PLAN) == PLAN_ID_LENGTH
    assert re.fullmatch(r"[A-Z2-7]+", PLAN)


def test_plan_id_treats_equal_decimals_as_one_plan() -> None:
    spelled_differently = _plan(
        entry=D("2500.5"),
        stop=D("2.48E+3"),
        targets=(D("2520.000"), D("2540.50")),
        qty=D("1E+1"),
    )
    assert plan_client_id(**spelled_differently) == PLAN


def test_plan_id_keeps_digits_beyond_the_decimal_context_precision() -> None:
    # Decimal.normalize() would round both to 28 digits and make them one plan.
    a = _plan(entry=D("1234567890123456789012345678901.5"))
    b = _plan(entry=D("1234567890123456789012345678901.6"))
    assert plan_client_id(**a) != plan_client_id(**b)


def test_plan_id_treats_negative_zero_as_zero() -> None:
    assert plan_client_id(**_plan(entry=D("-0.00"))) == plan_client_id(**_plan(entry=D("0")))


def test_plan_id_fields_cannot_run_into_each_other() -> None:
    # Joined with a plain separator these two would be one text; each free-text field carries
    # its length, so they are two plans.
    a = _plan(strategy="orb|x", symbol="RELIANCE")
    b = _plan(strategy="orb", symbol="x|RELIANCE")
    assert plan_client_id(**a) != plan_client_id(**b)
    assert plan_client_id(**_plan(config_sha="")) != plan_client_id(**_plan(config_sha="0:"))


def test_plan_id_letters_are_spread_over_the_whole_alphabet() -> None:
    # Each letter comes from the low five bits of one hash byte: over many ids every letter
    # of [A-Z2-7] shows up in every position an order id keeps, about equally often.
    ids = [plan_client_id(**_plan(signal_ts=n)) for n in range(2_000)]
    for position in (0, 15):
        counts = [
            sum(1 for i in ids if i[position] == letter) for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
        ]
        assert min(counts) > 20 and max(counts) < 110  # 62.5 expected


@pytest.mark.parametrize(
    "change",
    [
        {"strategy": "vwap"},
        {"symbol": "TCS"},
        {"side": "SELL"},
        {"entry": None},
        {"entry": D("0")},
        {"stop": None},
        {"stop": D("2480.05")},
        {"targets": (D("2540.5"), D("2520"))},
        {"targets": (D("2520"),)},
        {"qty": D("11")},
        {"signal_ts": 1_704_205_860_000_000_000},
        {"config_sha": "3f2a9d"},
    ],
)
def test_plan_id_changes_with_every_defining_field(change: dict[str, Any]) -> None:
    assert plan_client_id(**_plan(**change)) != PLAN


def test_plan_id_accepts_the_side_enum() -> None:
    assert plan_client_id(**_plan(side=Side.BUY)) == PLAN


@pytest.mark.parametrize(
    "change",
    [{"side": "buy"}, {"entry": D("NaN")}, {"stop": D("Infinity")}, {"targets": (D("sNaN"),)}],
)
def test_plan_id_refuses_a_malformed_plan(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        plan_client_id(**_plan(**change))


def test_kite_id_is_q_sixteen_plan_chars_leg_code_and_attempt() -> None:
    client_id = order_client_id(PLAN, Leg.STOP, attempt=37, capabilities=KITE)
    assert client_id == f"Q{PLAN[:16]}S11"  # 37 = 1*36 + 1
    assert len(client_id) == 20
    assert KITE_ID.fullmatch(client_id)


def test_kite_ids_of_every_leg_and_the_last_attempt_fit_the_tag() -> None:
    for leg in Leg:
        for attempt in (0, 1, 35, 36, MAX_ATTEMPT):
            client_id = order_client_id(PLAN, leg, attempt=attempt, capabilities=KITE)
            assert len(client_id) == 20
            assert KITE_ID.fullmatch(client_id)


def test_alpaca_id_is_readable_and_carries_the_whole_plan() -> None:
    client_id = order_client_id(PLAN, Leg.TP1, attempt=2, capabilities=ALPACA)
    assert client_id == f"qd-{PLAN}-tp1-2"
    assert len(client_id) <= 128


def test_readable_layout_shortens_the_plan_part_for_a_tighter_venue() -> None:
    tight = VenueCapabilities("tight", max_client_id_length=40)
    ids = [order_client_id(PLAN, leg, attempt=MAX_ATTEMPT, capabilities=tight) for leg in Leg]
    assert all(len(client_id) <= 40 for client_id in ids)
    assert all(client_id.startswith(f"qd-{PLAN[:26]}-") for client_id in ids)


def test_legs_and_attempts_never_share_an_id() -> None:
    for venue in (KITE, ALPACA):
        ids = [
            order_client_id(PLAN, leg, attempt=attempt, capabilities=venue)
            for leg in Leg
            for attempt in range(MAX_ATTEMPT + 1)
        ]
        assert len(set(ids)) == len(ids) == len(Leg) * (MAX_ATTEMPT + 1)


def test_order_id_is_the_same_for_the_same_inputs() -> None:
    first = order_client_id(PLAN, Leg.ENTRY, capabilities=KITE)
    assert first == order_client_id(PLAN, Leg.ENTRY, attempt=0, capabilities=KITE)


@pytest.mark.parametrize("attempt", [-1, MAX_ATTEMPT + 1])
def test_order_id_refuses_an_attempt_out_of_range(attempt: int) -> None:
    with pytest.raises(ValueError, match="attempt"):
        order_client_id(PLAN, Leg.ENTRY, attempt=attempt, capabilities=KITE)


def test_order_id_refuses_something_that_is_not_a_plan_id() -> None:
    with pytest.raises(ValueError, match="plan id"):
        order_client_id("qd-abc", Leg.ENTRY, capabilities=ALPACA)


def test_order_id_refuses_a_venue_too_short_for_a_safe_hash() -> None:
    with pytest.raises(ValueError, match="tiny"):
        order_client_id(PLAN, Leg.ENTRY, capabilities=VenueCapabilities("tiny", 15, True))


decimals = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
plans = st.fixed_dictionaries(
    {
        "strategy": st.sampled_from(["orb", "vwap", "momentum"]),
        "symbol": st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ&-", min_size=1, max_size=12),
        "side": st.sampled_from(["BUY", "SELL"]),
        "entry": st.none() | decimals,
        "stop": st.none() | decimals,
        "targets": st.lists(decimals, max_size=2).map(tuple),
        "qty": st.integers(min_value=1, max_value=10_000).map(D),
        "signal_ts": st.integers(min_value=0, max_value=2**62),
        "config_sha": st.sampled_from(["3f2a9c", "77be01"]),
    }
)


def _random_plan(rng: random.Random) -> dict[str, Any]:
    def price() -> Decimal:
        return D(rng.randint(1, 10_000_000)) / 100

    return {
        "strategy": rng.choice(["orb", "vwap", "momentum"]),
        "symbol": "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ", k=rng.randint(1, 10))),
        "side": rng.choice(["BUY", "SELL"]),
        "entry": rng.choice([None, price()]),
        "stop": rng.choice([None, price()]),
        "targets": tuple(price() for _ in range(rng.randint(0, 2))),
        "qty": D(rng.randint(1, 10_000)),
        "signal_ts": rng.randrange(2**62),
        "config_sha": rng.choice(["3f2a9c", "77be01"]),
    }


# Hypothesis draws the seed; a thousand plans per example is the point (a collision needs many),
# which is more data than Hypothesis will draw field by field.
@settings(max_examples=5, deadline=None)
@given(st.integers(min_value=0, max_value=2**64))
def test_distinct_plans_get_distinct_ids_that_fit_each_venue(seed: int) -> None:
    rng = random.Random(seed)
    # Decimal equality is by value, so the dict key says "the same plan" exactly as the hash should.
    distinct = {tuple(plan.values()): plan for plan in (_random_plan(rng) for _ in range(1_000))}
    plan_ids = [plan_client_id(**plan) for plan in distinct.values()]
    assert len(set(plan_ids)) == len(plan_ids) > 900
    kite_ids = [order_client_id(p, Leg.ENTRY, capabilities=KITE) for p in plan_ids]
    alpaca_ids = [order_client_id(p, Leg.ENTRY, capabilities=ALPACA) for p in plan_ids]
    assert len(set(kite_ids)) == len(kite_ids)
    assert len(set(alpaca_ids)) == len(alpaca_ids)
    assert all(KITE_ID.fullmatch(i) for i in kite_ids)
    assert all(ALPACA_ID.fullmatch(i) and len(i) <= 128 for i in alpaca_ids)


@settings(max_examples=50, deadline=None)
@given(plans, st.sampled_from(list(Leg)), st.integers(min_value=0, max_value=MAX_ATTEMPT))
def test_every_order_id_matches_its_venue_constraints(plan: dict[str, Any], leg: Leg, attempt: int) -> None:
    plan_id = plan_client_id(**plan)
    kite_id = order_client_id(plan_id, leg, attempt=attempt, capabilities=KITE)
    alpaca_id = order_client_id(plan_id, leg, attempt=attempt, capabilities=ALPACA)
    assert KITE_ID.fullmatch(kite_id)
    assert ALPACA_ID.fullmatch(alpaca_id)
    assert len(alpaca_id) <= 128


def test_five_thousand_plans_on_one_day_share_no_kite_id() -> None:
    plan_ids = {
        plan_client_id(
            **_plan(symbol=f"SYM{n % 500}", signal_ts=1_704_205_800_000_000_000 + n * 60_000_000_000)
        )
        for n in range(5_000)
    }
    kite_ids = {order_client_id(p, Leg.ENTRY, capabilities=KITE) for p in plan_ids}
    assert len(plan_ids) == len(kite_ids) == 5_000


def test_registry_refuses_an_id_it_already_issued() -> None:
    registry = ClientIdRegistry(KITE)
    client_id = order_client_id(PLAN, Leg.ENTRY, capabilities=KITE)
    registry.reserve(client_id)
    with pytest.raises(DuplicateClientId, match=client_id):
        registry.reserve(client_id)
    assert issubclass(DuplicateClientId, FatalError)


def test_registry_preloaded_from_a_store_refuses_earlier_ids() -> None:
    earlier = order_client_id(PLAN, Leg.STOP, capabilities=ALPACA)
    registry = ClientIdRegistry(ALPACA, issued=[earlier])
    assert earlier in registry
    with pytest.raises(DuplicateClientId):
        registry.reserve(earlier)


def test_registry_next_attempt_skips_every_used_attempt() -> None:
    registry = ClientIdRegistry(KITE)
    assert registry.next_attempt(PLAN, Leg.STOP) == 0
    registry.reserve(order_client_id(PLAN, Leg.STOP, attempt=0, capabilities=KITE))
    registry.reserve(order_client_id(PLAN, Leg.STOP, attempt=1, capabilities=KITE))
    assert registry.next_attempt(PLAN, Leg.STOP) == 2
    assert registry.next_attempt(PLAN, Leg.TP1) == 0


def test_registry_issues_a_new_id_for_a_replaced_stop() -> None:
    registry = ClientIdRegistry(KITE)
    first_stop = registry.issue(PLAN, Leg.STOP)
    resized_stop = registry.issue(PLAN, Leg.STOP)
    assert first_stop == order_client_id(PLAN, Leg.STOP, attempt=0, capabilities=KITE)
    assert resized_stop == order_client_id(PLAN, Leg.STOP, attempt=1, capabilities=KITE)
    assert len(registry) == 2


def test_registry_stops_a_runaway_replacement_loop() -> None:
    issued = [order_client_id(PLAN, Leg.STOP, attempt=a, capabilities=KITE) for a in range(MAX_ATTEMPT + 1)]
    registry = ClientIdRegistry(KITE, issued=issued)
    with pytest.raises(ClientIdsExhausted):
        registry.issue(PLAN, Leg.STOP)
