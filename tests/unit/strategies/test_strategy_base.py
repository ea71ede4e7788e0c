"""The Strategy base and registry: typed parameters, clear errors, built-ins registered by name."""

from __future__ import annotations

import pytest

from quantdesk.strategies import ParameterError, Strategy, get_strategy, register, strategy_names
from quantdesk.strategies.registry import UnknownStrategy


def test_every_builtin_is_registered() -> None:
    assert {
        "sma_cross",
        "vwap_mean_reversion",
        "vwap_micro_mean_reversion",
        "opening_range_breakout",
        "momentum",
    } <= set(strategy_names())


def test_unknown_strategy_lists_the_known_ones() -> None:
    with pytest.raises(UnknownStrategy, match=r"unknown strategy 'nope' \(known: .*sma_cross"):
        get_strategy("nope")


def test_parameters_are_converted_from_strings() -> None:
    strategy = get_strategy("sma_cross")("AAA", fast="5", slow="12", allow_short="true")
    assert (strategy.fast, strategy.slow, strategy.allow_short) == (5, 12, True)  # type: ignore[attr-defined]


def test_unknown_and_malformed_parameters_name_the_problem() -> None:
    cls = get_strategy("sma_cross")
    with pytest.raises(ParameterError, match=r"no parameter 'fst' .*known: allow_short, fast, slow"):
        cls("AAA", fst=3)
    with pytest.raises(ParameterError, match="fast='x'"):
        cls("AAA", fast="x")


def test_parameters_report_defaults_and_subclasses_override_them() -> None:
    base = get_strategy("vwap_mean_reversion").parameters()
    micro = get_strategy("vwap_micro_mean_reversion").parameters()
    assert base["k"] == 2.0 and micro["k"] == 1.5
    assert micro["max_hold_bars"] == 10 and base["max_hold_bars"] == 0


def test_sma_cross_refuses_fast_not_below_slow() -> None:
    strategy = get_strategy("sma_cross")("AAA", fast=20, slow=10)
    with pytest.raises(ParameterError, match="fast < slow"):
        strategy.on_start()


def test_register_refuses_a_taken_name() -> None:
    class Other(Strategy):
        pass

    with pytest.raises(ValueError, match="taken"):
        register("sma_cross")(Other)
