"""Ranking: feature scores by hand, inversion, clipping, missing features, tie-breaks, top N and min score."""

from __future__ import annotations

import math
import random
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from quantdesk.model import Side, Signal
from quantdesk.ranking import DropReason, Ranker, RankingConfig

T0 = 1_704_205_800_000_000_000


def _signal(
    symbol: str = "AAA", *, strategy: str = "orb", side: Side = Side.BUY, ts: int = T0, **features: float
) -> Signal:
    return Signal(strategy, symbol, side, ts, features=Signal.freeze_features(features))


def _ranker(**config: Any) -> Ranker:
    return Ranker(RankingConfig(**config))


def test_score_is_the_weighted_mean_of_clipped_linear_feature_scores() -> None:
    ranker = _ranker(
        weights={"rvol": 2.0, "trend": 1.0, "spread_bps": 1.0},
        ranges={"rvol": (1.0, 5.0), "spread_bps": (0.0, 20.0)},
        invert={"spread_bps"},
    )
    scores = ranker.score(_signal(rvol=3.0, trend=0.4, spread_bps=5.0))
    # rvol (3-1)/4 = 0.5; trend 0.4 on the default 0..1 range; spread 1 - 5/20 = 0.75.
    assert dict(scores.feature_scores) == {"rvol": 0.5, "trend": 0.4, "spread_bps": 0.75}
    assert scores.score == pytest.approx((2 * 0.5 + 0.4 + 0.75) / 4)
    assert scores.missing == ()


def test_inverted_feature_scores_lower_values_higher() -> None:
    ranker = _ranker(weights={"spread_bps": 1.0}, ranges={"spread_bps": (0.0, 10.0)}, invert={"spread_bps"})
    assert ranker.score(_signal(spread_bps=0.0)).score == 1.0
    assert ranker.score(_signal(spread_bps=2.0)).score == pytest.approx(0.8)
    assert ranker.score(_signal(spread_bps=10.0)).score == 0.0


def test_values_outside_the_range_are_clipped_to_its_ends() -> None:
    ranker = _ranker(weights={"rvol": 1.0}, ranges={"rvol": (1.0, 5.0)})
    assert ranker.score(_signal(rvol=0.2)).score == 0.0
    assert ranker.score(_signal(rvol=40.0)).score == 1.0
    assert ranker.score(_signal(rvol=math.inf)).score == 1.0


def test_a_feature_without_a_range_is_read_as_a_zero_to_one_score_and_clipped() -> None:
    ranker = _ranker(weights={"quality": 1.0})
    assert ranker.score(_signal(quality=0.3)).score == pytest.approx(0.3)
    assert ranker.score(_signal(quality=1.7)).score == 1.0
    assert ranker.score(_signal(quality=-2.0)).score == 0.0


def test_a_missing_feature_scores_zero_counts_in_the_mean_and_is_named() -> None:
    ranker = _ranker(weights={"rvol": 1.0, "trend": 3.0})
    scores = ranker.score(_signal(rvol=0.8))
    assert dict(scores.feature_scores) == {"rvol": 0.8, "trend": 0.0}
    assert scores.score == pytest.approx(0.8 / 4)
    assert scores.missing == ("trend",)


def test_a_nan_feature_counts_as_missing() -> None:
    scores = _ranker(weights={"rvol": 1.0}).score(_signal(rvol=math.nan))
    assert scores.score == 0.0
    assert scores.missing == ("rvol",)


def test_features_without_a_weight_are_ignored() -> None:
    scores = _ranker(weights={"rvol": 1.0}).score(_signal(rvol=0.5, noise=1.0))
    assert dict(scores.feature_scores) == {"rvol": 0.5}


def test_feature_scores_cannot_be_changed() -> None:
    scores = _ranker(weights={"rvol": 1.0}).score(_signal(rvol=0.5))
    with pytest.raises(TypeError):
        scores.feature_scores["rvol"] = 1.0  # type: ignore[index]


def test_signals_come_back_best_first_with_ranks() -> None:
    ranker = _ranker(weights={"q": 1.0})
    ranked = ranker.rank([_signal("AAA", q=0.2), _signal("BBB", q=0.9), _signal("CCC", q=0.5)])
    assert [(r.signal.symbol, r.rank) for r in ranked] == [("BBB", 1), ("CCC", 2), ("AAA", 3)]
    assert [r.score for r in ranked] == pytest.approx([0.9, 0.5, 0.2])


def test_equal_scores_are_ordered_by_symbol_strategy_side_then_time() -> None:
    ranker = _ranker(weights={"q": 1.0}, top_n=10)
    signals = [
        _signal("BBB", q=0.5),
        _signal("AAA", strategy="vwap", q=0.5),
        _signal("AAA", strategy="orb", side=Side.SELL, q=0.5),
        _signal("AAA", strategy="orb", side=Side.BUY, ts=T0 + 60, q=0.5),
        _signal("AAA", strategy="orb", side=Side.BUY, ts=T0, q=0.5),
    ]
    ranked = ranker.rank(signals)
    assert [r.signal for r in ranked] == [signals[4], signals[3], signals[2], signals[1], signals[0]]


def test_signals_beyond_top_n_are_dropped_with_the_reason() -> None:
    ranker = _ranker(weights={"q": 1.0}, top_n=2)
    kept, dropped = ranker.rank_all(
        [_signal(s, q=q) for s, q in [("A", 0.1), ("B", 0.7), ("C", 0.4), ("D", 0.9)]]
    )
    assert [r.signal.symbol for r in kept] == ["D", "B"]
    assert [(d.ranked.signal.symbol, d.ranked.rank, d.reason) for d in dropped] == [
        ("C", 3, DropReason.BEYOND_TOP_N),
        ("A", 4, DropReason.BEYOND_TOP_N),
    ]
    assert str(DropReason.BEYOND_TOP_N) == "beyond top N"


def test_signals_below_min_score_are_dropped_with_that_reason_first() -> None:
    ranker = _ranker(weights={"q": 1.0}, top_n=1, min_score=0.5)
    kept, dropped = ranker.rank_all([_signal(s, q=q) for s, q in [("A", 0.49), ("B", 0.5), ("C", 0.8)]])
    assert [r.signal.symbol for r in kept] == ["C"]
    assert [(d.ranked.signal.symbol, d.reason) for d in dropped] == [
        ("B", DropReason.BEYOND_TOP_N),
        ("A", DropReason.BELOW_MIN_SCORE),
    ]
    assert str(DropReason.BELOW_MIN_SCORE) == "below min score"


def test_a_score_equal_to_min_score_is_kept() -> None:
    kept = _ranker(weights={"q": 1.0}, min_score=0.5).rank([_signal(q=0.5)])
    assert len(kept) == 1


def test_default_keeps_five() -> None:
    ranker = _ranker(weights={"q": 1.0})
    kept, dropped = ranker.rank_all([_signal(f"S{i}", q=i / 10) for i in range(8)])
    assert len(kept) == 5
    assert len(dropped) == 3
    assert RankingConfig(weights={"q": 1.0}).min_score is None


def test_an_empty_cycle_ranks_nothing() -> None:
    assert _ranker(weights={"q": 1.0}).rank_all([]) == ([], [])


symbols = st.sampled_from(["AAA", "BBB", "CCC"])
signals = st.builds(
    lambda symbol, strategy, side, ts, q, r, entry: Signal(
        strategy, symbol, side, ts, entry=entry, features=Signal.freeze_features({"q": q, "r": r})
    ),
    symbols,
    st.sampled_from(["orb", "vwap"]),
    st.sampled_from(list(Side)),
    st.sampled_from([T0, T0 + 60]),
    st.sampled_from([0.0, 0.25, 0.5, 1.0]),  # few values, so scores tie often
    st.sampled_from([0.0, 0.5, 1.0]),
    st.sampled_from([None, Decimal("100"), Decimal("101.5")]),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(signals, max_size=12), st.randoms(use_true_random=False), st.integers(1, 6))
def test_the_same_signals_rank_the_same_in_any_order(
    cycle: list[Signal], rng: random.Random, top_n: int
) -> None:
    ranker = _ranker(weights={"q": 1.0, "r": 1.0}, top_n=top_n, min_score=0.3)
    shuffled = list(cycle)
    rng.shuffle(shuffled)
    assert ranker.rank_all(shuffled) == ranker.rank_all(cycle)
    kept, dropped = ranker.rank_all(cycle)
    assert len(kept) <= top_n
    assert sorted(r.rank for r in [*kept, *(d.ranked for d in dropped)]) == list(range(1, len(cycle) + 1))
    scores = [r.score for r in kept]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(
    "config",
    [
        {"weights": {"q": 1.0}, "top_k": 3},
        {"weights": {}},
        {"weights": {"q": 0.0}},
        {"weights": {"q": -1.0}},
        {"weights": {"q": math.nan}},
        {"weights": {"q": 1.0}, "top_n": 0},
        {"weights": {"q": 1.0}, "min_score": 1.5},
        {"weights": {"q": 1.0}, "ranges": {"q": (5.0, 1.0)}},
        {"weights": {"q": 1.0}, "ranges": {"q": (1.0, math.inf)}},
        {"weights": {"q": 1.0}, "ranges": {"qq": (0.0, 1.0)}},
        {"weights": {"q": 1.0}, "invert": {"spread"}},
    ],
    ids=[
        "unknown-key",
        "no-weights",
        "all-zero-weights",
        "negative-weight",
        "nan-weight",
        "top-n-zero",
        "min-score-above-one",
        "range-reversed",
        "range-infinite",
        "range-for-unweighted",
        "invert-unweighted",
    ],
)
def test_config_refuses_bad_values(config: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RankingConfig(**config)


def test_config_names_the_unknown_key() -> None:
    with pytest.raises(ValidationError, match="top_k"):
        RankingConfig(weights={"q": 1.0}, top_k=3)  # type: ignore[call-arg]


def test_config_is_frozen() -> None:
    config = RankingConfig(weights={"q": 1.0})
    with pytest.raises(ValidationError):
        config.top_n = 3
