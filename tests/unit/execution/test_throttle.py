"""The request throttler: sliding windows, linked pools, weights, wait and reject policies, stats."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.clock import SimulatedClock
from quantdesk.errors import ConfigError
from quantdesk.execution.throttle import (
    ALPACA_LIMITS,
    KITE_LIMITS,
    RateLimit,
    ThrottleDecision,
    ThrottlePolicy,
    Throttler,
    format_ns,
    throttled,
)

MS = 1_000_000
SECOND = 1_000 * MS
MINUTE = 60 * SECOND
T0 = 1_700_000_000 * SECOND

# Kite-shaped: one endpoint bound by a per-second and a per-minute window at once.
ORDERS = (
    RateLimit("orders_per_second", limit=10, interval_ns=SECOND),
    RateLimit("orders_per_minute", limit=200, interval_ns=MINUTE),
    RateLimit(
        "orders",
        limit=10_000,
        interval_ns=MINUTE,
        linked=(("orders_per_second", 1), ("orders_per_minute", 1)),
    ),
)


def _throttler(
    limits: tuple[RateLimit, ...],
    *,
    policy: ThrottlePolicy = "wait",
    max_wait_ns: int = 10 * MINUTE,
    margin_ns: int = 0,
) -> tuple[Throttler, SimulatedClock]:
    clock = SimulatedClock(T0)
    throttler = Throttler(
        limits, clock_ns=clock.now_ns, policy=policy, max_wait_ns=max_wait_ns, margin_ns=margin_ns
    )
    return throttler, clock


def test_single_window_allows_exactly_limit_then_waits_until_the_oldest_leaves() -> None:
    throttler, clock = _throttler((RateLimit("api", limit=3, interval_ns=SECOND),))
    for offset in (0, 100 * MS, 200 * MS):
        clock.set_time(T0 + offset)
        assert throttler.acquire("api") == ThrottleDecision(allowed=True, wait_ns=0, reason="")
    clock.set_time(T0 + 300 * MS)
    fourth = throttler.acquire("api")
    # The oldest (T0) leaves the window at T0 + 1s: 700 ms from now.
    assert fourth == ThrottleDecision(allowed=True, wait_ns=700 * MS, reason="api: 3 of 3 per 1s used")
    # The fourth is booked at T0 + 1s, so the fifth queues behind the second one leaving at T0 + 1.1s.
    assert throttler.acquire("api").wait_ns == 800 * MS


def test_a_request_exactly_one_interval_after_the_oldest_goes_at_once() -> None:
    throttler, _ = _throttler((RateLimit("api", limit=1, interval_ns=SECOND),))
    assert throttler.acquire("api", now=T0).wait_ns == 0
    assert throttler.acquire("api", now=T0 + SECOND - 1).wait_ns == 1
    assert throttler.acquire("api", now=T0 + 2 * SECOND).wait_ns == 0


def test_waiting_requests_are_booked_so_later_ones_queue_behind_them() -> None:
    throttler, _ = _throttler((RateLimit("api", limit=1, interval_ns=SECOND),))
    waits = [throttler.acquire("api", now=T0).wait_ns for _ in range(4)]
    assert waits == [0, SECOND, 2 * SECOND, 3 * SECOND]


def test_two_windows_pass_200_spread_requests_and_hold_the_201st_within_the_minute() -> None:
    throttler, _ = _throttler(ORDERS)
    # 10 per second for 20 seconds: never more than 10 in any second, 200 in the minute.
    decisions = [throttler.acquire("orders", now=T0 + k * 100 * MS) for k in range(200)]
    assert all(d.allowed and d.wait_ns == 0 for d in decisions)
    late = throttler.acquire("orders", now=T0 + 20 * SECOND)
    # The minute window frees its oldest booking (T0) at T0 + 60s.
    assert late == ThrottleDecision(
        allowed=True, wait_ns=40 * SECOND, reason="orders_per_minute: 200 of 200 per 1m used"
    )


def test_two_windows_under_reject_policy_refuse_the_201st_and_do_not_book_it() -> None:
    throttler, _ = _throttler(ORDERS, policy="reject")
    for k in range(200):
        assert throttler.acquire("orders", now=T0 + k * 100 * MS).allowed
    refused = throttler.acquire("orders", now=T0 + 20 * SECOND)
    assert not refused.allowed
    assert refused.wait_ns == 40 * SECOND
    assert refused.reason == "orders_per_minute: 200 of 200 per 1m used; retry in 40s"
    assert throttler.acquire("orders", now=T0 + MINUTE).allowed
    assert throttler.stats().rejects == 1


def test_the_per_second_window_binds_a_burst_before_the_per_minute_one() -> None:
    throttler, _ = _throttler(ORDERS)
    for _ in range(10):
        assert throttler.acquire("orders", now=T0).wait_ns == 0
    eleventh = throttler.acquire("orders", now=T0 + 250 * MS)
    assert eleventh.wait_ns == 750 * MS
    assert eleventh.reason == "orders_per_second: 10 of 10 per 1s used"


def test_weights_count_against_the_limit() -> None:
    throttler, _ = _throttler((RateLimit("batch", limit=10, interval_ns=SECOND, weight=4),))
    assert throttler.acquire("batch", now=T0).wait_ns == 0
    assert throttler.acquire("batch", now=T0 + 10 * MS).wait_ns == 0
    third = throttler.acquire("batch", now=T0 + 20 * MS)
    # 8 used + 4 > 10: only when the first (T0) leaves does 4 + 4 fit.
    assert third.wait_ns == SECOND - 20 * MS
    assert third.reason == "batch: 8 of 10 per 1s used"


def test_a_heavy_request_waits_for_as_many_old_bookings_as_it_needs() -> None:
    limits = (
        RateLimit("api", limit=5, interval_ns=SECOND),
        RateLimit("bulk", limit=5, interval_ns=SECOND, linked=(("api", 3),)),
    )
    throttler, _ = _throttler(limits)
    for k in range(5):
        assert throttler.acquire("api", now=T0 + k * 100 * MS).wait_ns == 0
    # 3 units must leave "api": the third oldest (T0 + 200ms) leaves at T0 + 1.2s.
    assert throttler.acquire("bulk", now=T0 + 500 * MS).wait_ns == 700 * MS


def test_linked_pools_are_consumed_with_their_own_weights() -> None:
    limits = (
        RateLimit("api", limit=5, interval_ns=SECOND),
        RateLimit("orders", limit=100, interval_ns=SECOND, linked=(("api", 2),)),
        RateLimit("quote", limit=1, interval_ns=SECOND),
    )
    throttler, _ = _throttler(limits)
    assert throttler.acquire("orders", now=T0).wait_ns == 0
    assert throttler.acquire("orders", now=T0).wait_ns == 0
    assert throttler.stats().usage == {"api": 4, "orders": 2, "quote": 0}
    assert throttler.acquire("api", now=T0).wait_ns == 0
    held = throttler.acquire("api", now=T0 + 100 * MS)
    assert held.wait_ns == 900 * MS
    assert held.reason == "api: 5 of 5 per 1s used"
    # An unlinked pool is untouched by all of it.
    assert throttler.acquire("quote", now=T0 + 100 * MS).wait_ns == 0


def test_a_request_queues_behind_an_earlier_booking_in_a_shared_pool() -> None:
    limits = (
        RateLimit("api", limit=100, interval_ns=SECOND),
        RateLimit("orders", limit=1, interval_ns=SECOND, linked=(("api", 1),)),
    )
    throttler, _ = _throttler(limits)
    assert throttler.acquire("orders", now=T0).wait_ns == 0
    assert throttler.acquire("orders", now=T0).wait_ns == SECOND
    # "api" has room, but its log is kept in send order: the lookup goes after the queued order.
    lookup = throttler.acquire("api", now=T0 + 10 * MS)
    assert lookup.wait_ns == SECOND - 10 * MS
    assert lookup.reason == "api: queued behind earlier requests"


def test_reject_policy_refuses_any_wait_without_booking_it() -> None:
    throttler, clock = _throttler((RateLimit("api", limit=2, interval_ns=SECOND),), policy="reject")
    assert throttler.acquire("api").allowed
    assert throttler.acquire("api").allowed
    for _ in range(3):
        refused = throttler.acquire("api")
        assert not refused.allowed
        assert refused.wait_ns == SECOND
    clock.set_time(T0 + SECOND)
    # Nothing refused was booked: both slots are free again.
    assert throttler.acquire("api").wait_ns == 0
    assert throttler.acquire("api").wait_ns == 0


def test_wait_policy_books_up_to_max_wait_and_rejects_beyond_it() -> None:
    limits = (RateLimit("api", limit=1, interval_ns=SECOND),)
    throttler, _ = _throttler(limits, max_wait_ns=SECOND)
    assert throttler.acquire("api", now=T0).wait_ns == 0
    at_bound = throttler.acquire("api", now=T0)
    assert at_bound == ThrottleDecision(allowed=True, wait_ns=SECOND, reason="api: 1 of 1 per 1s used")
    over = throttler.acquire("api", now=T0)
    assert not over.allowed
    assert over.wait_ns == 2 * SECOND
    assert over.reason == "api: 1 of 1 per 1s used; wait 2s over max 1s"
    # The rejected request was not booked: the next one still waits 2 s, not 3 s.
    assert throttler.acquire("api", now=T0 + SECOND).wait_ns == SECOND


def test_stats_count_requests_waits_and_rejects_and_show_usage_now() -> None:
    limits = (RateLimit("api", limit=2, interval_ns=SECOND),)
    throttler, clock = _throttler(limits, max_wait_ns=SECOND)
    for _ in range(5):
        throttler.acquire("api")  # waits: 0, 0, 1s, 1s, then 2s is over the max
    stats = throttler.stats()
    assert (stats.requests, stats.allowed, stats.waits, stats.rejects) == (5, 4, 2, 1)
    assert stats.total_wait_ns == 2 * SECOND
    assert stats.max_wait_ns_seen == SECOND
    assert stats.usage == {"api": 2}
    clock.set_time(T0 + 2 * SECOND)
    assert throttler.stats().usage == {"api": 0}


def test_margin_widens_every_window() -> None:
    throttler, _ = _throttler((RateLimit("api", limit=1, interval_ns=SECOND),), margin_ns=50 * MS)
    assert throttler.acquire("api", now=T0).wait_ns == 0
    assert throttler.acquire("api", now=T0 + SECOND).wait_ns == 50 * MS


def test_a_clock_stepping_back_does_not_reopen_a_full_window() -> None:
    throttler, _ = _throttler((RateLimit("api", limit=1, interval_ns=SECOND),))
    assert throttler.acquire("api", now=T0 + 5 * SECOND).wait_ns == 0
    stepped_back = throttler.acquire("api", now=T0)
    assert stepped_back.wait_ns == 6 * SECOND


def test_a_clock_stepping_back_after_expiry_still_sees_the_expired_booking() -> None:
    throttler, clock = _throttler((RateLimit("api", limit=1, interval_ns=SECOND),))
    assert throttler.acquire("api").wait_ns == 0
    clock.set_time(T0 + SECOND)
    assert throttler.stats().usage == {"api": 0}  # the T0 booking is forgotten here
    # A caller whose clock reads earlier must still not land in the T0 booking's window.
    late_clock = throttler.acquire("api", now=T0 + 500 * MS)
    assert late_clock.wait_ns == 500 * MS


def test_unknown_limit_id_is_a_value_error_naming_it() -> None:
    throttler, _ = _throttler(ORDERS)
    with pytest.raises(ValueError, match="'ordres'"):
        throttler.acquire("ordres")


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ((RateLimit("a", 1, SECOND), RateLimit("a", 2, SECOND)), "a declared twice"),
        ((RateLimit("a", 5, SECOND, linked=(("b", 1),)),), "linked pool b is not declared"),
        ((RateLimit("b", 2, SECOND), RateLimit("a", 5, SECOND, linked=(("b", 3),))), "exceeds its limit 2"),
    ],
)
def test_inconsistent_declarations_are_config_errors(limits: tuple[RateLimit, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Throttler(limits, clock_ns=lambda: T0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "limit must be at least 1"),
        ({"interval_ns": 0}, "interval_ns must be positive"),
        ({"weight": 6}, "weight must be between 1 and limit 5"),
        ({"linked": (("b", 0),)}, "linked pool b must be at least 1"),
        ({"linked": (("a", 1),)}, "must not link to itself"),
        ({"linked": (("b", 1), ("b", 2))}, "pool b linked twice"),
    ],
)
def test_bad_rate_limit_fields_are_config_errors(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"limit_id": "a", "limit": 5, "interval_ns": SECOND, **kwargs}
    with pytest.raises(ConfigError, match=message):
        RateLimit(**fields)  # type: ignore[arg-type]


def test_bad_policy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="policy"):
        Throttler(ORDERS, clock_ns=lambda: T0, policy="queue")  # type: ignore[arg-type]


def test_kite_limits_hold_the_eleventh_order_of_a_second_and_keep_quotes_apart() -> None:
    throttler, _ = _throttler(KITE_LIMITS)
    for _ in range(10):
        assert throttler.acquire("orders", now=T0).wait_ns == 0
    assert throttler.acquire("orders", now=T0).reason == "orders_per_second: 10 of 10 per 1s used"
    assert throttler.acquire("quote", now=T0).wait_ns == 0
    assert throttler.acquire("quote", now=T0).wait_ns == SECOND
    assert throttler.stats().usage["orders_per_minute"] == 11


def test_alpaca_orders_and_other_calls_share_200_a_minute() -> None:
    throttler, _ = _throttler(ALPACA_LIMITS)
    for k in range(100):
        assert throttler.acquire("orders", now=T0 + k * MS).wait_ns == 0
        assert throttler.acquire("api", now=T0 + k * MS).wait_ns == 0
    assert throttler.acquire("api", now=T0 + SECOND).wait_ns == MINUTE - SECOND


def test_throttled_sleeps_out_the_wait_with_the_injected_sleep() -> None:
    throttler, _ = _throttler((RateLimit("api", limit=1, interval_ns=SECOND),), max_wait_ns=SECOND)
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    async def three_requests() -> list[ThrottleDecision]:
        return [await throttled(throttler, "api", sleep=fake_sleep) for _ in range(3)]

    first, second, third = asyncio.run(three_requests())
    assert (first.wait_ns, second.wait_ns) == (0, SECOND)
    assert not third.allowed
    # No sleep for the immediate one nor for the refused one.
    assert slept == [1.0]


def test_format_ns_uses_the_largest_exact_unit() -> None:
    assert [format_ns(n) for n in (SECOND, 250 * MS, MINUTE, 86_400 * SECOND, 1_500_000, 1_500, 7, 0)] == [
        "1s",
        "250ms",
        "1m",
        "1d",
        "1500us",
        "1500ns",
        "7ns",
        "0ns",
    ]


# -- property: whatever arrives when, the booked send times never overfill a window --------------

# Gaps between requests: mostly ones that land exactly on, or a nanosecond beside, a window
# edge; some arbitrary, negative ones included (a clock stepping back).
_GAPS = st.one_of(
    st.sampled_from(
        [0, 0, 1, 100 * MS, 500 * MS - 1, 500 * MS, SECOND - 1, SECOND, SECOND + 1, 2 * SECOND - 1]
    ),
    st.integers(-2 * SECOND, 3 * SECOND),
)
_POOLS = st.lists(
    st.tuples(st.integers(1, 6), st.sampled_from([SECOND, 2 * SECOND, 5 * SECOND])),
    min_size=1,
    max_size=3,
)


@st.composite
def _scenario(draw: st.DrawFn) -> tuple[tuple[RateLimit, ...], list[tuple[str, int]], int]:
    pools = draw(_POOLS)
    limits: list[RateLimit] = []
    for index, (limit, interval) in enumerate(pools):
        others = [(f"p{j}", pools[j][0]) for j in range(len(pools)) if j != index]
        linked = tuple((pool_id, draw(st.integers(1, cap))) for pool_id, cap in others if draw(st.booleans()))
        weight = draw(st.integers(1, limit))
        limits.append(RateLimit(f"p{index}", limit, interval, weight=weight, linked=linked))
    requests = draw(
        st.lists(
            st.tuples(st.sampled_from([f"p{i}" for i in range(len(pools))]), _GAPS),
            max_size=60,
        )
    )
    margin = draw(st.sampled_from([0, 0, 7 * MS]))
    return tuple(limits), requests, margin


@settings(max_examples=150, deadline=None)
@given(_scenario(), st.integers(0, 20).map(lambda k: k * 500 * MS))
def test_booked_send_times_never_overfill_any_window(
    scenario: tuple[tuple[RateLimit, ...], list[tuple[str, int]], int], max_wait_ns: int
) -> None:
    limits, requests, margin = scenario
    throttler = Throttler(
        limits, clock_ns=lambda: T0, policy="wait", max_wait_ns=max_wait_ns, margin_ns=margin
    )
    by_id = {limit.limit_id: limit for limit in limits}
    booked: dict[str, list[tuple[int, int]]] = defaultdict(list)
    now = T0
    for limit_id, gap in requests:
        now += gap
        decision = throttler.acquire(limit_id, now=now)
        assert decision.wait_ns >= 0
        if not decision.allowed:
            assert decision.wait_ns > max_wait_ns
            continue
        assert decision.wait_ns <= max_wait_ns
        send_at = now + decision.wait_ns
        limit = by_id[limit_id]
        booked[limit_id].append((send_at, limit.weight))
        for pool_id, weight in limit.linked:
            booked[pool_id].append((send_at, weight))
    for pool_id, sends in booked.items():
        interval = by_id[pool_id].interval_ns
        for start, _ in sends:
            in_window = sum(w for ts, w in sends if start <= ts < start + interval)
            assert in_window <= by_id[pool_id].limit, (pool_id, start, sends)
