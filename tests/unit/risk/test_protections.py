"""Protections: StoplossGuard, MaxDrawdown, CooldownPeriod, LowProfitPairs and their manager."""

from __future__ import annotations

import random
from decimal import Decimal
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from quantdesk.errors import ConfigError
from quantdesk.risk.protections import (
    ClosedTrade,
    CooldownPeriod,
    CooldownPeriodConfig,
    LowProfitPairs,
    LowProfitPairsConfig,
    MaxDrawdown,
    MaxDrawdownConfig,
    ProtectionManager,
    StoplossGuard,
    StoplossGuardConfig,
    protections_from_config,
)
from quantdesk.risk.protections.window import TradeWindow, TradeWindows

MIN = 60 * 1_000_000_000
T0 = 1_700_000_000 * 1_000_000_000  # 2023-11-14 22:13:20 UTC


def at(minutes: float) -> int:
    return T0 + int(minutes * MIN)


def trade(
    exit_min: float,
    ret: float = -0.01,
    *,
    symbol: str = "AAA",
    side: str = "LONG",
    reason: str = "stop",
    pnl: str | None = None,
) -> ClosedTrade:
    exit_time = at(exit_min)
    net = Decimal(pnl) if pnl is not None else Decimal(str(ret)) * 1000
    return ClosedTrade(symbol, side, exit_time - 5 * MIN, exit_time, net, ret, reason)


def guard(**fields: object) -> StoplossGuard:
    return StoplossGuard(StoplossGuardConfig.model_validate(fields))


# --- StoplossGuard -------------------------------------------------------------------------


def test_stoploss_guard_locks_all_symbols_at_the_trade_limit_from_the_last_stop_out() -> None:
    protection = guard(lookback_minutes=60, trade_limit=3, stop_duration_minutes=30)
    trades = [trade(10, symbol="AAA"), trade(20, symbol="BBB"), trade(40, symbol="CCC")]

    lock = protection.check(None, at(45), [], trades)

    assert lock is not None
    assert (lock.symbol, lock.until, lock.protection, lock.side) == (None, at(70), "StoplossGuard", None)
    assert "3 stop-outs" in lock.reason


def test_stoploss_guard_does_not_lock_one_stop_out_below_the_limit() -> None:
    protection = guard(lookback_minutes=60, trade_limit=3)

    assert protection.check(None, at(45), [], [trade(10), trade(20)]) is None


def test_stoploss_guard_counts_only_stop_exits_with_a_loss() -> None:
    protection = guard(lookback_minutes=60, trade_limit=2)
    not_counted = [trade(10, -0.02, reason="target"), trade(11, +0.01, reason="stop"), trade(12, 0.0)]

    assert protection.check(None, at(20), [], not_counted) is None
    assert protection.check(None, at(20), [], [*not_counted, trade(13, reason="trailing_stop")]) is None
    locked = protection.check(None, at(20), [], [*not_counted, trade(13, reason="trailing_stop"), trade(14)])
    assert locked is not None


def test_stoploss_guard_required_profit_counts_stop_outs_strictly_below_it() -> None:
    protection = guard(lookback_minutes=60, trade_limit=1, required_profit=0.01)

    assert protection.check(None, at(20), [], [trade(10, 0.009)]) is not None
    assert protection.check(None, at(20), [], [trade(10, 0.01)]) is None


def test_stoploss_guard_lookback_excludes_a_stop_out_exactly_at_the_window_start() -> None:
    protection = guard(lookback_minutes=60, trade_limit=1, stop_duration_minutes=120)
    on_the_edge = ClosedTrade("AAA", "LONG", at(0), at(10), Decimal(-5), -0.01, "stop")
    just_inside = ClosedTrade("AAA", "LONG", at(0), at(10) + 1, Decimal(-5), -0.01, "stop")

    assert protection.check(None, at(70), [], [on_the_edge]) is None
    assert protection.check(None, at(70), [], [just_inside]) is not None


def test_stoploss_guard_ignores_trades_closed_after_now() -> None:
    protection = guard(lookback_minutes=60, trade_limit=1)

    assert protection.check(None, at(10), [], [trade(11)]) is None


def test_stoploss_guard_returns_no_lock_that_has_already_run_out() -> None:
    protection = guard(lookback_minutes=60, trade_limit=1, stop_duration_minutes=10)

    assert protection.check(None, at(19), [], [trade(10)]) is not None
    assert protection.check(None, at(20), [], [trade(10)]) is None


def test_stoploss_guard_per_symbol_check_counts_only_that_symbols_stop_outs() -> None:
    protection = guard(lookback_minutes=60, trade_limit=2)
    trades = [trade(10, symbol="AAA"), trade(20, symbol="BBB"), trade(30, symbol="BBB")]

    assert protection.check("AAA", at(40), [], trades) is None
    lock = protection.check("BBB", at(40), [], trades)
    assert lock is not None and lock.symbol == "BBB"


def test_stoploss_guard_only_per_pair_never_locks_globally() -> None:
    protection = guard(lookback_minutes=60, trade_limit=2, only_per_pair=True)
    trades = [trade(10), trade(20)]

    assert protection.check(None, at(30), [], trades) is None
    assert protection.check("AAA", at(30), [], trades) is not None


def test_stoploss_guard_only_per_side_locks_only_the_side_that_was_stopped() -> None:
    protection = guard(lookback_minutes=60, trade_limit=2, only_per_side=True)
    trades = [trade(10, side="SHORT"), trade(20, side="SHORT"), trade(25, side="LONG")]

    assert protection.check(None, at(30), [], trades, side="LONG") is None
    short_lock = protection.check(None, at(30), [], trades, side="SHORT")
    assert short_lock is not None and short_lock.side == "SHORT"
    assert short_lock.applies_to("SHORT") and not short_lock.applies_to("LONG")
    either = protection.check(None, at(30), [], trades)
    assert either == short_lock


def test_stoploss_guard_lookback_in_candles_is_candles_times_candle_minutes() -> None:
    protection = guard(lookback_period_candles=4, candle_minutes=15, trade_limit=1, stop_duration_candles=8)

    assert protection.check(None, at(70), [], [trade(10)]) is None
    lock = protection.check(None, at(70), [], [trade(11)])
    assert lock is not None and lock.until == at(131)
    assert "in 4 candles" in lock.reason and "for 8 candles" in lock.reason


# --- MaxDrawdown ---------------------------------------------------------------------------


def drawdown(max_allowed: float, **fields: object) -> MaxDrawdown:
    base: dict[str, object] = {"lookback_minutes": 60, "stop_duration_minutes": 30}
    base.setdefault("starting_balance", "10000")
    return MaxDrawdown(
        MaxDrawdownConfig.model_validate({**base, **fields, "max_allowed_drawdown": max_allowed})
    )


def test_max_drawdown_locks_when_relative_account_drawdown_passes_the_limit() -> None:
    # 10_000 -> 11_000 (peak) -> 9_350: (11_000 - 9_350) / 11_000 = 15 %.
    trades = [trade(10, 0.1, pnl="1000"), trade(20, -0.15, pnl="-1650")]

    assert drawdown(0.15).check(None, at(30), [], trades) is None
    lock = drawdown(0.1499).check(None, at(30), [], trades)
    assert lock is not None
    assert (lock.symbol, lock.until, lock.protection) == (None, at(50), "MaxDrawdown")
    assert "15.00%" in lock.reason


def test_max_drawdown_measures_a_first_loss_from_the_window_start_balance() -> None:
    lock = drawdown(0.05).check(None, at(30), [], [trade(10, pnl="-1000")])

    assert lock is not None and "10.00%" in lock.reason


def test_max_drawdown_starts_the_window_from_the_balance_after_earlier_trades() -> None:
    # The +10_000 closed before the window: the window starts at 20_000, so -2_000 is 10 %.
    trades = [trade(-100, pnl="10000"), trade(10, pnl="-2000")]

    assert drawdown(0.10).check(None, at(30), [], trades) is None
    assert drawdown(0.0999).check(None, at(30), [], trades) is not None


def test_max_drawdown_counts_trades_closed_at_the_same_instant_as_one_balance_change() -> None:
    # A loss and a gain closed together: listed either way round, no dip is seen between them.
    loss_first = [trade(10, pnl="-1000"), trade(10, pnl="1200")]
    gain_first = list(reversed(loss_first))

    for trades in (loss_first, gain_first):
        assert drawdown(0.05).check(None, at(30), [], trades) is None


def test_max_drawdown_needs_trade_limit_trades_in_the_lookback() -> None:
    trades = [trade(-40, pnl="-3000"), trade(10, pnl="-3000")]

    assert drawdown(0.1, trade_limit=2).check(None, at(30), [], trades) is None
    assert drawdown(0.1, trade_limit=1).check(None, at(30), [], trades) is not None


def test_max_drawdown_ratios_mode_uses_the_running_sum_of_profit_ratios() -> None:
    trades = [trade(5, 0.05), trade(10, -0.03), trade(15, -0.05), trade(20, 0.02)]
    config = {"calculation_mode": "ratios", "starting_balance": None}

    assert drawdown(0.08, **config).check(None, at(30), [], trades) is None
    assert drawdown(0.0799, **config).check(None, at(30), [], trades) is not None
    first_loss = [trade(10, -0.05)]  # the running peak starts at 0, as in freqtrade
    assert drawdown(0.0499, **config).check(None, at(30), [], first_loss) is not None


def test_max_drawdown_never_locks_a_single_symbol() -> None:
    protection = drawdown(0.01)
    trades = [trade(10, pnl="-5000")]

    assert protection.check(None, at(30), [], trades) is not None
    assert protection.check("AAA", at(30), [], trades) is None


def test_max_drawdown_equity_mode_needs_a_starting_balance() -> None:
    with pytest.raises(ValidationError, match="starting_balance is required"):
        MaxDrawdownConfig(max_allowed_drawdown=0.1)


# --- CooldownPeriod ------------------------------------------------------------------------


def test_cooldown_locks_the_symbol_until_its_last_exit_plus_the_duration() -> None:
    protection = CooldownPeriod(CooldownPeriodConfig(stop_duration_minutes=15))
    trades = [trade(0, 0.03, reason="target"), trade(5, 0.01, reason="exit"), trade(6, symbol="BBB")]

    lock = protection.check("AAA", at(10), [], trades)

    assert lock is not None
    assert (lock.symbol, lock.until) == ("AAA", at(20))


def test_cooldown_ends_exactly_at_last_exit_plus_duration() -> None:
    protection = CooldownPeriod(CooldownPeriodConfig(stop_duration_minutes=15))

    assert protection.check("AAA", at(20) - 1, [], [trade(5)]) is not None
    assert protection.check("AAA", at(20), [], [trade(5)]) is None


def test_cooldown_never_locks_globally_or_other_symbols() -> None:
    protection = CooldownPeriod(CooldownPeriodConfig(stop_duration_minutes=15))

    assert protection.check(None, at(10), [], [trade(5)]) is None
    assert protection.check("BBB", at(10), [], [trade(5)]) is None


# --- LowProfitPairs ------------------------------------------------------------------------


def low_profit(**fields: object) -> LowProfitPairs:
    return LowProfitPairs(LowProfitPairsConfig.model_validate({"lookback_minutes": 60, **fields}))


def test_low_profit_pairs_locks_a_symbol_whose_summed_profit_is_below_required() -> None:
    trades = [
        trade(10, 0.01, reason="target"),
        trade(20, 0.01, reason="target"),
        trade(25, -0.5, symbol="BBB"),
    ]

    assert low_profit(required_profit=0.02, trade_limit=2).check("AAA", at(30), [], trades) is None
    lock = low_profit(required_profit=0.021, trade_limit=2, stop_duration_minutes=60).check(
        "AAA", at(30), [], trades
    )
    assert lock is not None
    assert (lock.symbol, lock.until, lock.protection) == ("AAA", at(80), "LowProfitPairs")


def test_low_profit_pairs_needs_trade_limit_trades_of_the_symbol() -> None:
    trades = [trade(-40, -0.05), trade(10, -0.05), trade(20, -0.05, symbol="BBB")]

    assert low_profit(trade_limit=2).check("AAA", at(30), [], trades) is None
    assert low_profit(trade_limit=1).check("AAA", at(30), [], trades) is not None


def test_low_profit_pairs_never_locks_globally() -> None:
    assert low_profit().check(None, at(30), [], [trade(10, -0.05)]) is None


def test_low_profit_pairs_only_per_side_sums_and_locks_one_side() -> None:
    protection = low_profit(only_per_side=True)
    trades = [trade(10, -0.03, side="SHORT"), trade(20, 0.05, side="LONG")]

    assert protection.check("AAA", at(30), [], trades, side="LONG") is None
    lock = protection.check("AAA", at(30), [], trades, side="SHORT")
    assert lock is not None and lock.side == "SHORT"
    assert low_profit().check("AAA", at(30), [], trades) is None


# --- ClosedTrade ---------------------------------------------------------------------------


def test_closed_trade_refuses_an_unknown_side_and_an_exit_before_entry() -> None:
    with pytest.raises(ValueError, match="side"):
        ClosedTrade("AAA", "BUY", at(0), at(1), Decimal(0), 0.0, "exit")
    with pytest.raises(ValueError, match="before entry"):
        ClosedTrade("AAA", "LONG", at(1), at(0), Decimal(0), 0.0, "exit")


# --- ProtectionManager ---------------------------------------------------------------------


def test_manager_symbol_lock_is_the_longest_of_the_active_locks() -> None:
    manager = ProtectionManager(
        [
            CooldownPeriod(CooldownPeriodConfig(stop_duration_minutes=10)),
            low_profit(stop_duration_minutes=120),
        ]
    )

    lock = manager.symbol_lock("AAA", at(12), [], [trade(10, -0.02, reason="exit")])

    assert lock is not None
    assert (lock.protection, lock.until) == ("LowProfitPairs", at(130))
    assert [held.protection for held in manager.active_locks(at(12))] == ["CooldownPeriod", "LowProfitPairs"]


def test_manager_reports_a_lock_as_new_only_once_and_again_when_it_is_extended() -> None:
    manager = ProtectionManager([guard(lookback_minutes=60, trade_limit=2, stop_duration_minutes=30)])
    trades = [trade(10), trade(20)]

    first = manager.global_lock(at(21), [], trades)
    again = manager.global_lock(at(22), [], trades)

    assert first is not None and again == first
    assert manager.new_locks() == [first]
    assert manager.new_locks() == []

    extended = manager.global_lock(at(26), [], [*trades, trade(25)])
    assert extended is not None and extended.until == at(55)
    assert manager.new_locks() == [extended]


def test_manager_keeps_a_lock_after_its_trades_leave_the_lookback_until_it_expires() -> None:
    manager = ProtectionManager([guard(lookback_minutes=10, trade_limit=1, stop_duration_minutes=60)])
    trades = [trade(10)]

    assert manager.global_lock(at(11), [], trades) is not None
    assert manager.protections[0].check(None, at(40), [], trades) is None  # the trade left the lookback
    held = manager.global_lock(at(40), [], trades)
    assert held is not None and held.until == at(70)
    assert manager.global_lock(at(70), [], trades) is None
    assert manager.active_locks(at(70)) == []
    assert len(manager.new_locks()) == 1


def test_manager_separates_global_and_symbol_locks_and_entry_lock_sees_both() -> None:
    manager = ProtectionManager(
        [
            CooldownPeriod(CooldownPeriodConfig(stop_duration_minutes=90)),
            guard(lookback_minutes=60, trade_limit=1, only_per_pair=False, stop_duration_minutes=30),
        ]
    )
    trades = [trade(10, symbol="BBB")]

    global_lock = manager.global_lock(at(12), [], trades)
    assert global_lock is not None and global_lock.protection == "StoplossGuard"
    assert manager.symbol_lock("AAA", at(12), [], trades) is None
    entry = manager.entry_lock("AAA", at(12), [], trades)
    assert entry == global_lock
    bbb = manager.entry_lock("BBB", at(12), [], trades)
    assert bbb is not None and (bbb.protection, bbb.symbol, bbb.until) == ("CooldownPeriod", "BBB", at(100))


def test_manager_side_query_ignores_the_other_sides_lock() -> None:
    manager = ProtectionManager([guard(lookback_minutes=60, trade_limit=1, only_per_side=True)])
    trades = [trade(10, side="SHORT")]

    assert manager.global_lock(at(12), [], trades, side="LONG") is None
    short_lock = manager.global_lock(at(12), [], trades, side="SHORT")
    assert short_lock is not None and short_lock.side == "SHORT"
    assert manager.global_lock(at(12), [], trades) == short_lock
    assert manager.new_locks() == [short_lock]


def test_manager_with_no_protections_never_locks() -> None:
    manager = ProtectionManager([])

    assert manager.entry_lock("AAA", at(0), [], [trade(-1)]) is None
    assert manager.active_locks(at(0)) == []


# --- protections_from_config ---------------------------------------------------------------


def test_protections_from_config_builds_each_protection_by_method_in_order() -> None:
    manager = protections_from_config(
        [
            {"method": "StoplossGuard", "lookback_minutes": 60, "trade_limit": 3, "only_per_pair": True},
            {"method": "MaxDrawdown", "max_allowed_drawdown": 0.05},
            {"method": "CooldownPeriod", "stop_duration_candles": 3, "candle_minutes": 5},
            {"method": "LowProfitPairs", "required_profit": 0.01},
        ],
        starting_balance=Decimal("50000"),
    )

    names = [protection.name for protection in manager.protections]
    assert names == ["StoplossGuard", "MaxDrawdown", "CooldownPeriod", "LowProfitPairs"]
    max_drawdown = manager.protections[1]
    assert isinstance(max_drawdown, MaxDrawdown)
    assert max_drawdown.config.starting_balance == Decimal("50000")
    assert manager.protections[2].config.stop_duration_ns == 15 * MIN


def test_unknown_protection_method_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"protections\[1\]\.method: unknown protection 'Stoploss'"
    ) as error:
        protections_from_config([{"method": "CooldownPeriod"}, {"method": "Stoploss"}])

    assert "CooldownPeriod, LowProfitPairs, MaxDrawdown, StoplossGuard" in str(error.value)


def test_missing_method_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"protections\[0\]\.method: unknown protection None"):
        protections_from_config([{"trade_limit": 3}])


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"method": "StoplossGuard", "trade_limt": 3}, r"protections\[0\] \(StoplossGuard\)\.trade_limt"),
        ({"method": "StoplossGuard", "trade_limit": 0}, r"\(StoplossGuard\)\.trade_limit: .*greater than"),
        ({"method": "CooldownPeriod", "lookback_minutes": 5}, r"\(CooldownPeriod\)\.lookback_minutes"),
        ({"method": "LowProfitPairs", "lookback_minutes": 5, "lookback_period_candles": 2}, "not both"),
        (
            {"method": "LowProfitPairs", "stop_duration_candles": 2},
            "stop_duration_candles needs candle_minutes",
        ),
        ({"method": "MaxDrawdown", "max_allowed_drawdown": 0.1}, "starting_balance is required"),
        ({"method": "MaxDrawdown"}, r"\(MaxDrawdown\)\.max_allowed_drawdown"),
    ],
)
def test_bad_protection_settings_are_config_errors_naming_the_entry_and_field(
    entry: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        protections_from_config([entry])


# --- the incremental lookback window ---------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=3),  # trades appended before this question
            st.integers(min_value=0, max_value=25),  # minutes time moves on
            st.sampled_from(["grow", "grow", "grow", "copy", "shuffle", "back"]),
        ),
        min_size=1,
        max_size=25,
    ),
    seed=st.integers(min_value=0, max_value=1_000),
)
def test_the_window_followed_across_a_growing_session_equals_reading_it_afresh(
    steps: list[tuple[int, int, str]], seed: int
) -> None:
    """Every protection answers as a fresh instance reading the same list would, while trades are
    appended, time moves on, the list is replaced, reordered, or time goes back."""
    rng = random.Random(seed)
    configs = [
        {"method": "StoplossGuard", "lookback_minutes": 30, "trade_limit": 2, "stop_duration_minutes": 20},
        {"method": "CooldownPeriod", "stop_duration_minutes": 7},
        {"method": "LowProfitPairs", "lookback_minutes": 40, "trade_limit": 2, "stop_duration_minutes": 9},
        {
            "method": "MaxDrawdown",
            "lookback_minutes": 45,
            "trade_limit": 2,
            "max_allowed_drawdown": 0.004,
            "stop_duration_minutes": 15,
            "starting_balance": "10000",
        },
    ]
    followed = protections_from_config(configs).protections
    trades: list[ClosedTrade] = []
    now = 0.0
    for appended, minutes, change in steps:
        for _ in range(appended):
            exit_min = now + rng.choice([0.0, 0.5, 1.0, 3.0, 9.0])  # some close after `now`
            trades.append(
                trade(
                    exit_min,
                    rng.choice([-0.02, -0.004, 0.001, 0.03]),
                    symbol=rng.choice(["AAA", "BBB"]),
                    side=rng.choice(["LONG", "SHORT"]),
                    reason=rng.choice(["stop", "target"]),
                )
            )
        trades.sort(key=lambda t: t.exit_time)
        if change == "copy":
            trades = list(trades)
        elif change == "shuffle":
            # A reordered list is a new one: reordering the session's own list in place (which
            # only ever grows at its end) is outside the windows' contract, see window.py.
            trades = rng.sample(trades, len(trades))
        now = max(0.0, now - 10) if change == "back" else now + minutes
        fresh = protections_from_config(configs).protections
        for mine, new in zip(followed, fresh, strict=True):
            for symbol in (None, "AAA", "BBB"):
                for side in (None, "LONG", "SHORT"):
                    answer = mine.check(symbol, at(now), [], trades, side=side)
                    # The reference reads the whole list on every question, as `closed_between` does.
                    with patch.object(TradeWindows, "window", _read_whole):
                        assert answer == new.check(symbol, at(now), [], list(trades), side=side)


def _read_whole(
    self: TradeWindows, trades: list[ClosedTrade], start: int, now: int, symbol: str | None, side: str | None
) -> TradeWindow:
    return self._read_whole(trades, start, now, symbol, side)
