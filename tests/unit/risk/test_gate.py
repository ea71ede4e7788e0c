"""The pre-trade gate: each rule at its edge, every reason collected, bad input blocked; risk config."""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace
from pydantic import ValidationError

from quantdesk.clock.calendar import MarketCalendar
from quantdesk.errors import ConfigError
from quantdesk.model import Instrument, Side, Signal
from quantdesk.risk.config import RiskConfig, SizingConfig
from quantdesk.risk.gate import RiskGate
from quantdesk.risk.messages import BlockReason, Decision, Mode, OpenPositionView, RiskState, TradePlan

D = Decimal
SECOND = 1_000_000_000
NOW = pd.Timestamp("2024-11-26 15:00", tz="UTC").value  # NYSE open (10:00 ET), a regular Tuesday
INSTRUMENTS = MappingProxyType(
    {
        "AAA": Instrument("AAA"),
        "NIFTY": Instrument("NIFTY", exchange="XNSE", currency="INR", lot_size=D(25), min_qty=D(25)),
        "ES": Instrument("ES", multiplier=D(50), tick_size=D("0.25")),
    }
)


def utc_ns(text: str) -> int:
    return pd.Timestamp(text, tz="UTC").value


def plan(**kw: Any) -> TradePlan:
    """BUY 100 AAA at 100, stop 98: risk 200 = 0.2% of 100,000."""
    fields: dict[str, Any] = {
        "strategy": "orb",
        "symbol": "AAA",
        "side": Side.BUY,
        "entry": D(100),
        "stop": D(98),
        "qty": D(100),
        "signal_ts": NOW,
        "targets": (D(104), D(108)),
    }
    fields.update(kw)
    return TradePlan(**fields)


def position(symbol: str = "BBB", **kw: Any) -> OpenPositionView:
    """Long 100 at 50, stop 45: 500 at risk."""
    fields: dict[str, Any] = {"symbol": symbol, "sign": 1, "qty": D(100), "avg_price": D(50), "stop": D(45)}
    fields.update(kw)
    return OpenPositionView(**fields)


def state(**kw: Any) -> RiskState:
    fields: dict[str, Any] = {
        "equity": D(100_000),
        "start_of_day_equity": D(100_000),
        "now": NOW,
        "last_data_ts": MappingProxyType({"AAA": NOW, "NIFTY": NOW, "ES": NOW}),
    }
    fields.update(kw)
    return RiskState(**fields)


def gate(calendar: MarketCalendar | None = None, **config: Any) -> RiskGate:
    return RiskGate(RiskConfig(**config), INSTRUMENTS, calendar)


@pytest.fixture(scope="module")
def nyse() -> MarketCalendar:
    return MarketCalendar("XNYS", start="2024-01-01", end="2024-12-31")


def reasons(decision: Decision) -> tuple[BlockReason, ...]:
    return decision.reasons


# ---- the happy path ---------------------------------------------------------------------


def test_a_plan_within_every_limit_is_approved_with_its_risk() -> None:
    decision = gate().can_enter(plan(), state())
    assert decision.approved and not decision.blocked
    assert decision.reasons == () and decision.details == ()
    assert decision.risk_amount == D(200)
    assert decision.risk_pct == D("0.2")


# ---- 1. invalid plan --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"stop": D(100)}, "stop must be below the entry"),
        ({"stop": D(101)}, "stop must be below the entry"),
        ({"side": Side.SELL, "stop": D(99), "targets": ()}, "stop must be above the entry"),
        ({"entry": D("NaN")}, "entry must be a positive price"),
        ({"entry": D(-1)}, "entry must be a positive price"),
        ({"stop": D("NaN")}, "stop must be a positive price"),
        ({"qty": D(0)}, "quantity must be positive"),
        ({"qty": D(-5)}, "quantity must be positive"),
        ({"qty": D("NaN")}, "quantity must be positive"),
        ({"symbol": "ZZZ"}, "unknown symbol 'ZZZ'"),
        ({"symbol": "NIFTY", "qty": D(30)}, "not a multiple of the lot 25"),
        ({"targets": (D(99),)}, "targets must be above the entry"),
        ({"side": "LONG"}, "side must be BUY or SELL"),
    ],
)
def test_a_malformed_plan_is_blocked_as_invalid(fields: dict[str, Any], fragment: str) -> None:
    decision = gate().can_enter(plan(**fields), state())
    assert BlockReason.INVALID_PLAN in decision.reasons
    detail = decision.details[decision.reasons.index(BlockReason.INVALID_PLAN)]
    assert fragment in detail


def test_a_stop_one_tick_below_a_long_entry_is_valid() -> None:
    assert gate().can_enter(plan(stop=D("99.99")), state()).approved


def test_a_short_with_stop_above_and_targets_below_is_valid() -> None:
    decision = gate().can_enter(plan(side=Side.SELL, stop=D(102), targets=(D(96),)), state())
    assert decision.approved


# ---- 2. invalid state -------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"equity": D(0)},
        {"equity": D("NaN")},
        {"start_of_day_equity": D(-1)},
        {"unrealized_pnl": D("Infinity")},
        {"now": 1.5},
        {"open_positions": (position(sign=0),)},
    ],
)
def test_a_broken_account_state_blocks_as_invalid_state(fields: dict[str, Any]) -> None:
    assert BlockReason.INVALID_STATE in gate().can_enter(plan(), state(**fields)).reasons


# ---- 3/4. paused and kill switch ---------------------------------------------------------


def test_paused_blocks_new_entries_and_resumed_does_not() -> None:
    assert gate().can_enter(plan(), state(paused=True)).reasons == (BlockReason.PAUSED,)
    assert gate().can_enter(plan(), state(paused=False)).approved


def test_the_kill_switch_blocks_new_entries() -> None:
    assert gate().can_enter(plan(), state(kill_switch=True)).reasons == (BlockReason.KILL_SWITCH,)
    assert gate().can_enter(plan(), state(kill_switch=False)).approved


# ---- 5. per-trade risk -------------------------------------------------------------------


def test_trade_risk_exactly_at_the_cap_passes_and_one_unit_more_is_blocked() -> None:
    # 0.5% of 100,000 = 500 = 250 x (100 - 98).
    assert gate().can_enter(plan(qty=D(250)), state()).approved
    decision = gate().can_enter(plan(qty=D(251)), state())
    assert decision.reasons == (BlockReason.TRADE_RISK,)
    assert decision.risk_amount == D(502)
    assert "above the 0.5% per-trade cap" in decision.details[0]


def test_trade_risk_counts_the_contract_multiplier() -> None:
    # ES: 1 contract x 10 points x 50 = 500 (at the cap); 2 contracts = 1,000.
    es = {"symbol": "ES", "entry": D(5000), "stop": D(4990), "targets": ()}
    assert gate().can_enter(plan(qty=D(1), **es), state()).approved
    assert gate().can_enter(plan(qty=D(2), **es), state()).reasons == (BlockReason.TRADE_RISK,)


def test_an_entry_without_a_stop_is_blocked_as_unbounded_risk() -> None:
    decision = gate().can_enter(plan(stop=None), state())
    assert BlockReason.TRADE_RISK in decision.reasons
    assert "unbounded" in decision.details[decision.reasons.index(BlockReason.TRADE_RISK)]


def test_a_stopless_entry_when_allowed_risks_its_whole_notional() -> None:
    # 5 x 100 = 500 notional = 0.5%: at the cap; 6 is over it.
    allowing = gate(allow_stopless_entries=True)
    approved = allowing.can_enter(plan(stop=None, qty=D(5)), state())
    assert approved.approved and approved.risk_amount == D(500)
    assert allowing.can_enter(plan(stop=None, qty=D(6)), state()).reasons == (BlockReason.TRADE_RISK,)


# ---- 6. portfolio heat --------------------------------------------------------------------


def test_heat_at_the_cap_passes_and_just_over_it_is_blocked() -> None:
    # Open risk 1,500 (three positions of 500) + this plan's 500 = 2,000 = 2.0% of equity.
    open_three = tuple(position(f"P{i}") for i in range(3))
    assert gate().can_enter(plan(qty=D(250)), state(open_positions=open_three)).approved
    over = (*open_three[:2], position("P2", avg_price=D("50.01")))
    decision = gate().can_enter(plan(qty=D(250)), state(open_positions=over))
    assert decision.reasons == (BlockReason.PORTFOLIO_HEAT,)
    assert "open 1501.00 + this 500.00" in decision.details[0]


def test_an_open_position_without_a_stop_counts_its_whole_notional_in_heat() -> None:
    # 100 x 15 = 1,500 notional + 500 = 2,000: at the cap; a dearer position is over it.
    at_cap = (position(stop=None, avg_price=D(15)),)
    assert gate().can_enter(plan(qty=D(250)), state(open_positions=at_cap)).approved
    over = (position(stop=None, avg_price=D(16)),)
    decision = gate().can_enter(plan(qty=D(250)), state(open_positions=over))
    assert BlockReason.PORTFOLIO_HEAT in decision.reasons


def test_a_stop_at_break_even_or_in_profit_adds_no_heat() -> None:
    locked = (
        position("P1", stop=D(50)),
        position("P2", stop=D(60)),
        position("P3", sign=-1, avg_price=D(50), stop=D(40)),
        position("P4", sign=-1, avg_price=D(50), stop=D(65)),  # short, 1,500 at risk
    )
    assert gate().can_enter(plan(qty=D(250)), state(open_positions=locked)).approved


def test_heat_counts_the_position_multiplier() -> None:
    # 1 contract, 30 points to the stop, x 50 = 1,500.
    es = (position("ES", qty=D(1), avg_price=D(5000), stop=D(4970), multiplier=D(50)),)
    assert gate().can_enter(plan(qty=D(250)), state(open_positions=es)).approved
    es_wider = (position("ES", qty=D(1), avg_price=D(5000), stop=D(4969), multiplier=D(50)),)
    assert gate().can_enter(plan(qty=D(250)), state(open_positions=es_wider)).reasons == (
        BlockReason.PORTFOLIO_HEAT,
    )


# ---- 7. daily loss --------------------------------------------------------------------------


def test_daily_loss_at_the_cap_blocks_and_a_cent_less_passes() -> None:
    # 2% of 100,000 start-of-day equity = 2,000, realised and unrealised together.
    at_cap = state(realized_pnl_today=D(-1500), unrealized_pnl=D(-500))
    decision = gate().can_enter(plan(), at_cap)
    assert decision.reasons == (BlockReason.DAILY_LOSS,)
    assert "-2000.00" in decision.details[0]
    assert gate().can_enter(plan(), state(realized_pnl_today=D("-1999.99"))).approved


def test_daily_loss_is_measured_against_start_of_day_equity() -> None:
    # Equity has fallen to 97,000 but the cap is 2% of the 100,000 the day began with.
    fallen = state(equity=D(97_000), realized_pnl_today=D(-1999))
    assert gate().can_enter(plan(), fallen).approved
    assert gate().can_enter(plan(), replace(fallen, realized_pnl_today=D(-2000))).reasons == (
        BlockReason.DAILY_LOSS,
    )


# ---- 8. max open positions -----------------------------------------------------------------


def test_max_open_positions_blocks_at_the_cap() -> None:
    tiny = {"qty": D(1), "avg_price": D(10), "stop": D(9)}
    four = tuple(position(f"P{i}", **tiny) for i in range(4))
    assert gate().can_enter(plan(), state(open_positions=four)).approved
    five = (*four, position("P4", **tiny))
    assert gate().can_enter(plan(), state(open_positions=five)).reasons == (BlockReason.MAX_POSITIONS,)


def test_flat_positions_do_not_count_as_open() -> None:
    flat = tuple(position(f"P{i}", qty=D(0)) for i in range(5))
    assert gate().can_enter(plan(), state(open_positions=flat)).approved


# ---- 9/10. per symbol and already in position -----------------------------------------------


def test_max_per_symbol_counts_positions_of_other_strategies() -> None:
    tiny = {"qty": D(1), "avg_price": D(100), "stop": D(99)}
    other = (position("AAA", strategy="vwap", **tiny),)
    assert gate().can_enter(plan(), state(open_positions=other)).reasons == (BlockReason.MAX_PER_SYMBOL,)
    assert gate(max_positions_per_symbol=2).can_enter(plan(), state(open_positions=other)).approved
    two = (*other, position("AAA", strategy="gap", **tiny))
    assert gate(max_positions_per_symbol=2).can_enter(plan(), state(open_positions=two)).reasons == (
        BlockReason.MAX_PER_SYMBOL,
    )


def test_a_strategy_already_in_the_symbol_is_blocked_even_when_the_symbol_cap_allows_more() -> None:
    tiny = {"qty": D(1), "avg_price": D(100), "stop": D(99)}
    loose = gate(max_positions_per_symbol=3)
    own = (position("AAA", strategy="orb", **tiny),)
    assert loose.can_enter(plan(), state(open_positions=own)).reasons == (BlockReason.ALREADY_IN_POSITION,)
    unknown_owner = (position("AAA", strategy=None, **tiny),)
    assert loose.can_enter(plan(), state(open_positions=unknown_owner)).reasons == (
        BlockReason.ALREADY_IN_POSITION,
    )
    assert loose.can_enter(plan(), state(open_positions=(position("BBB", strategy="orb", **tiny),))).approved


# ---- 11. entry cutoff ------------------------------------------------------------------------


def test_entries_stop_at_the_nyse_cutoff_15_40_et(nyse: MarketCalendar) -> None:
    cutoff = utc_ns("2024-11-26 20:40")  # 15:55 ET flatten - 15 minutes
    fresh = MappingProxyType({"AAA": cutoff})
    assert gate(nyse).can_enter(plan(), state(now=cutoff - 1, last_data_ts=fresh)).approved
    decision = gate(nyse).can_enter(plan(), state(now=cutoff, last_data_ts=fresh))
    assert decision.reasons == (BlockReason.ENTRY_CUTOFF,)
    assert "20:40:00 UTC" in decision.details[0]


def test_the_cutoff_follows_an_early_close(nyse: MarketCalendar) -> None:
    cutoff = utc_ns("2024-11-29 17:40")  # close 13:00 ET -> flatten 12:55 -> cutoff 12:40 ET
    fresh = MappingProxyType({"AAA": cutoff})
    assert gate(nyse).can_enter(plan(), state(now=cutoff - 1, last_data_ts=fresh)).approved
    assert gate(nyse).can_enter(plan(), state(now=cutoff, last_data_ts=fresh)).reasons == (
        BlockReason.ENTRY_CUTOFF,
    )


# ---- 12. stale data --------------------------------------------------------------------------


def test_data_exactly_max_age_old_passes_and_a_nanosecond_older_is_stale() -> None:
    assert gate().can_enter(plan(), state(last_data_ts={"AAA": NOW - 5 * SECOND})).approved
    decision = gate().can_enter(plan(), state(last_data_ts={"AAA": NOW - 5 * SECOND - 1}))
    assert decision.reasons == (BlockReason.STALE_DATA,)
    assert "5.0 s old" in decision.details[0]


def test_a_symbol_without_any_data_is_stale() -> None:
    decision = gate().can_enter(plan(), state(last_data_ts={"ES": NOW}))
    assert decision.reasons == (BlockReason.STALE_DATA,)
    assert decision.details == ("no market data for AAA",)


def test_the_stale_data_check_can_be_disabled() -> None:
    assert gate(max_data_age_seconds=None).can_enter(plan(), state(last_data_ts={})).approved


# ---- 13. not tradable ---------------------------------------------------------------------------


def test_an_entry_before_the_open_is_not_tradable_and_at_the_open_it_is(nyse: MarketCalendar) -> None:
    open_ = utc_ns("2024-11-26 14:30")  # 09:30 ET
    before = gate(nyse).can_enter(plan(), state(now=open_ - 1, last_data_ts={"AAA": open_ - 1}))
    assert before.reasons == (BlockReason.NOT_TRADABLE,)
    assert "XNYS is not in regular session" in before.details[0]
    assert gate(nyse).can_enter(plan(), state(now=open_, last_data_ts={"AAA": open_})).approved


def test_a_holiday_is_not_tradable(nyse: MarketCalendar) -> None:
    thanksgiving = utc_ns("2024-11-28 16:00")
    decision = gate(nyse).can_enter(plan(), state(now=thanksgiving, last_data_ts={"AAA": thanksgiving}))
    assert decision.reasons == (BlockReason.NOT_TRADABLE,)


def test_the_caller_can_mark_a_symbol_not_tradable_without_a_calendar() -> None:
    assert gate().can_enter(plan(), state(tradable=False)).reasons == (BlockReason.NOT_TRADABLE,)
    assert gate().can_enter(plan(), state(tradable=True)).approved


def test_an_instant_outside_the_calendar_blocks_instead_of_raising(nyse: MarketCalendar) -> None:
    later = utc_ns("2026-01-05 15:00")
    decision = gate(nyse).can_enter(plan(), state(now=later, last_data_ts={"AAA": later}))
    assert BlockReason.NOT_TRADABLE in decision.reasons
    assert decision.blocked


# ---- every reason, in order ------------------------------------------------------------------


def test_every_reason_that_applies_is_listed_in_the_fixed_order(nyse: MarketCalendar) -> None:
    after_cutoff = utc_ns("2024-11-26 20:50")
    own = tuple(position("AAA" if i == 0 else f"P{i}", strategy="orb") for i in range(5))
    bad_day = state(
        now=after_cutoff,
        paused=True,
        kill_switch=True,
        realized_pnl_today=D(-5000),
        open_positions=own,
        last_data_ts={"AAA": after_cutoff - 60 * SECOND},
        tradable=False,
    )
    decision = gate(nyse).can_enter(plan(qty=D(1000), stop=D(98)), bad_day)
    assert decision.reasons == (
        BlockReason.PAUSED,
        BlockReason.KILL_SWITCH,
        BlockReason.TRADE_RISK,
        BlockReason.PORTFOLIO_HEAT,
        BlockReason.DAILY_LOSS,
        BlockReason.MAX_POSITIONS,
        BlockReason.MAX_PER_SYMBOL,
        BlockReason.ALREADY_IN_POSITION,
        BlockReason.ENTRY_CUTOFF,
        BlockReason.STALE_DATA,
        BlockReason.NOT_TRADABLE,
    )
    assert len(decision.details) == len(decision.reasons)
    assert all(decision.details)


def test_an_invalid_plan_still_reports_the_account_level_blocks() -> None:
    decision = gate().can_enter(plan(symbol="ZZZ"), state(paused=True))
    assert decision.reasons == (BlockReason.INVALID_PLAN, BlockReason.PAUSED, BlockReason.STALE_DATA)
    assert decision.risk_amount == 0


# ---- bad input never raises -------------------------------------------------------------------

_GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.just([]),
    st.just(()),
    st.just({}),
)


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(["strategy", "symbol", "side", "entry", "stop", "qty", "targets", "signal_ts"]),
    value=_GARBAGE,
    state_field=st.sampled_from(
        [
            "equity",
            "start_of_day_equity",
            "now",
            "realized_pnl_today",
            "unrealized_pnl",
            "open_positions",
            "paused",
            "kill_switch",
            "last_data_ts",
            "tradable",
        ]
    ),
    state_value=_GARBAGE,
)
def test_garbage_in_any_field_gives_a_decision_never_an_exception(
    field: str, value: object, state_field: str, state_value: object
) -> None:
    bad_plan = plan(**{field: value})
    decision = gate().can_enter(bad_plan, state(**{state_field: state_value}))
    assert isinstance(decision, Decision)
    assert len(decision.reasons) == len(decision.details)


# Values near every limit's edge, the usual ones repeated so that about half the cases approve:
# the fast approval and the full judgement then meet often on both sides of each limit.
def _mostly(usual: Any, *others: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from([usual] * (2 * len(others) + 2) + list(others))


_ENTRY = _mostly(D(100), D(98), D("99.99"), D("100.01"), D(102), D("NaN"))
_STOP = _mostly(D(98), None, D(97), D(100), D(102), D(-1))
_TARGET = _mostly(D(104), D(100), D(97), D(0))


@st.composite
def _open_views(draw: st.DrawFn) -> OpenPositionView:
    return position(
        symbol=draw(_mostly("BBB", "AAA", "ES")),
        sign=draw(_mostly(1, -1, 0)),
        qty=draw(_mostly(D(100), D(0), D(10), D(-1))),
        avg_price=draw(_mostly(D(50), D(100), D(0))),
        stop=draw(_mostly(D(45), None, D(55), D(-1))),
        strategy=draw(_mostly("vwap", None, "orb")),
    )


@settings(max_examples=600, deadline=None)
@given(
    side=_mostly(Side.BUY, Side.SELL),
    entry=_ENTRY,
    stop=_STOP,
    qty=_mostly(D(100), D(0), D(25), D(150), D("100.5"), D(-5)),
    targets=st.lists(_TARGET, max_size=2).map(tuple),
    symbol=_mostly("AAA", "NIFTY", "ES", "ZZZ"),
    equity=_mostly(D(100_000), D(40_000), D(10_000), D(0)),
    start=_mostly(D(100_000), D(40_000), D(-1)),
    realized=_mostly(D(0), D(-1999), D(-2000), D(-5000), D("NaN")),
    positions=st.lists(_open_views(), max_size=3).map(tuple),
    paused=_mostly(False, True),
    age_s=_mostly(0, 5, 6),
    at=_mostly(NOW, utc_ns("2024-11-26 14:29"), utc_ns("2024-11-26 20:45")),
    config=st.fixed_dictionaries(
        {
            "allow_stopless_entries": st.booleans(),
            "max_open_positions": _mostly(5, 1, 2),
            "max_positions_per_symbol": _mostly(2, 1),
            "max_portfolio_heat_pct": _mostly(D(2), D("0.5")),
        }
    ),
)
def test_the_fast_approval_agrees_with_the_full_judgement(
    nyse: MarketCalendar,
    side: Side,
    entry: Decimal,
    stop: Decimal | None,
    qty: Decimal,
    targets: tuple[Decimal, ...],
    symbol: str,
    equity: Decimal,
    start: Decimal,
    realized: Decimal,
    positions: tuple[OpenPositionView, ...],
    paused: bool,
    age_s: int,
    at: int,
    config: dict[str, Any],
) -> None:
    the_gate = gate(nyse, **config)
    the_plan = plan(side=side, entry=entry, stop=stop, qty=qty, targets=targets, symbol=symbol)
    the_state = state(
        equity=equity,
        start_of_day_equity=start,
        realized_pnl_today=realized,
        open_positions=positions,
        paused=paused,
        now=at,
        last_data_ts=MappingProxyType({symbol: at - age_s * SECOND}),
    )
    fast = the_gate._approve_fast(the_plan, the_state)
    full = the_gate._judge(the_plan, the_state)
    # The fast path may only leave a decision to the full one, never contradict it.
    if fast is not None:
        assert fast == full and full.approved
    assert the_gate.can_enter(the_plan, the_state) == full


def test_a_garbage_open_position_blocks_as_invalid_state() -> None:
    garbage = (position(qty=D("NaN")), "not a position")
    decision = gate().can_enter(plan(), state(open_positions=garbage))
    assert BlockReason.INVALID_STATE in decision.reasons


# ---- messages -----------------------------------------------------------------------------------


def test_refusals_from_outside_the_gate_share_the_decision_shape() -> None:
    decision = Decision.block(plan(), BlockReason.ZERO_SIZE, "risk 50.00 buys less than one lot of 25")
    assert decision.blocked and decision.reasons == (BlockReason.ZERO_SIZE,)
    assert decision.details == ("risk 50.00 buys less than one lot of 25",)


def test_a_market_signal_becomes_a_plan_at_the_reference_price() -> None:
    signal = Signal("orb", "AAA", Side.BUY, ts=NOW, stop=D(98), targets=(D(104),))
    made = TradePlan.from_signal(signal, qty=D(100), reference_price=D(100), config_sha="abc")
    assert made == plan(targets=(D(104),), config_sha="abc", is_market=True)
    no_price = TradePlan.from_signal(signal, qty=D(100))
    assert BlockReason.INVALID_PLAN in gate().can_enter(no_price, state()).reasons


# ---- configuration and the LIVE caps -------------------------------------------------------------


def test_default_limits() -> None:
    config = RiskConfig()
    assert (config.max_risk_per_trade_pct, config.max_portfolio_heat_pct, config.max_daily_loss_pct) == (
        D("0.5"),
        D("2.0"),
        D("2.0"),
    )
    assert (config.max_open_positions, config.max_positions_per_symbol) == (5, 1)
    assert config.max_data_age_seconds == 5.0
    assert config.sizing.mode == "risk"


def test_live_applies_the_day_one_caps_to_a_config_that_sets_nothing() -> None:
    live = RiskConfig().for_mode(Mode.LIVE)
    assert (live.max_risk_per_trade_pct, live.max_portfolio_heat_pct, live.max_daily_loss_pct) == (
        D("0.25"),
        D("1.0"),
        D("1.0"),
    )


def test_live_keeps_a_limit_the_config_set_explicitly_and_caps_the_rest() -> None:
    config = RiskConfig.model_validate({"max_risk_per_trade_pct": "0.4", "max_daily_loss_pct": "0.5"})
    live = config.for_mode(Mode.LIVE)
    assert live.max_risk_per_trade_pct == D("0.4")  # raised on purpose: stands
    assert live.max_daily_loss_pct == D("0.5")  # set lower than the cap: stands
    assert live.max_portfolio_heat_pct == D("1.0")  # not set: capped


def test_live_caps_only_ever_lower_a_default() -> None:
    # A value below the cap that was not set explicitly stays (min of configured and cap).
    config = RiskConfig(max_daily_loss_pct=D("0.5"))
    assert config.for_mode(Mode.LIVE, overrides_given=set()).max_daily_loss_pct == D("0.5")


def test_explicit_overrides_given_replace_the_fields_the_model_saw() -> None:
    config = RiskConfig(max_risk_per_trade_pct=D("0.5"))
    assert config.for_mode(Mode.LIVE).max_risk_per_trade_pct == D("0.5")
    assert config.for_mode(Mode.LIVE, overrides_given=set()).max_risk_per_trade_pct == D("0.25")


def test_live_lowers_the_sizing_risk_to_the_capped_per_trade_limit() -> None:
    config = RiskConfig(sizing=SizingConfig(mode="risk", risk_pct=D("0.5")))
    assert config.for_mode(Mode.LIVE).sizing.risk_pct == D("0.25")


def test_paper_is_the_config_unchanged_and_backtest_turns_the_stale_check_off() -> None:
    config = RiskConfig()
    assert config.for_mode(Mode.PAPER) is config
    assert config.for_mode(Mode.BACKTEST).max_data_age_seconds is None
    assert RiskConfig(max_data_age_seconds=60).for_mode(Mode.BACKTEST).max_data_age_seconds == 60


def test_an_unknown_override_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_risk_pct"):
        RiskConfig().for_mode(Mode.LIVE, overrides_given={"max_risk_pct"})


@pytest.mark.parametrize(
    "fields",
    [
        {"max_risk_pct": 1},
        {"max_risk_per_trade_pct": 0},
        {"max_daily_loss_pct": "NaN"},
        {"flatten_time": "3:25pm"},
        {"entry_cutoff": "15:30", "flatten_time": "15:25"},
        {"max_open_positions": 0},
        {"sizing": {"mode": "fixed"}},
        {"sizing": {"mode": "risk", "risk_pct": 1}},
        {"sizing": {"mode": "kelly"}},
    ],
)
def test_bad_risk_config_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RiskConfig.model_validate(fields)


def test_percentages_from_floats_are_exact_decimals() -> None:
    assert RiskConfig.model_validate({"max_risk_per_trade_pct": 0.3}).max_risk_per_trade_pct == D("0.3")


def test_a_stop_on_the_wrong_side_is_only_an_invalid_plan_not_a_risk_figure() -> None:
    decision = gate().can_enter(plan(stop=D(130), qty=D(1000)), state())
    assert decision.reasons == (BlockReason.INVALID_PLAN,)
    assert decision.risk_amount == 0
