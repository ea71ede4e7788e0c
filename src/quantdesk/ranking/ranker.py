"""The ranker: feature and opportunity scores per signal, one cycle's order, what is kept and dropped.

Its results are frozen msgspec Structs: every signal of every cycle gets one, and they are
several times cheaper to build than frozen dataclasses.

Structs here are declared `gc=False`: they hold only scalars, strings and immutable
containers, so they cannot be part of a reference cycle, and untracked they cost the
cyclic collector nothing (fewer and shorter pauses on the hot path).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from types import MappingProxyType

import msgspec

from quantdesk.model.signals import Signal
from quantdesk.ranking.config import RankingConfig

_DEFAULT_RANGE = (0.0, 1.0)


class FeatureScores(msgspec.Struct, frozen=True, gc=False):
    """How one signal scored: 0..1 per weighted feature, their weighted mean, and what it lacked.

    `feature_scores` holds every weighted feature; a feature the signal lacks (or
    carries as NaN) scores 0 and is named in `missing`.
    """

    feature_scores: MappingProxyType[str, float]
    score: float
    missing: tuple[str, ...]


class RankedSignal(msgspec.Struct, frozen=True, gc=False):
    """A signal with its scores and its 1-based place among the cycle's candidates."""

    signal: Signal
    scores: FeatureScores
    rank: int

    @property
    def score(self) -> float:
        return self.scores.score

    @property
    def feature_scores(self) -> MappingProxyType[str, float]:
        return self.scores.feature_scores

    @property
    def missing(self) -> tuple[str, ...]:
        return self.scores.missing


class DropReason(StrEnum):
    """Why the ranker let a signal go."""

    BELOW_MIN_SCORE = "below min score"
    BEYOND_TOP_N = "beyond top N"


class DroppedSignal(msgspec.Struct, frozen=True, gc=False):
    """A ranked signal the cycle did not keep, and why (the pipeline records it)."""

    ranked: RankedSignal
    reason: DropReason


class Ranker:
    """Scores and orders the signals of one cycle; keeps the best `top_n` at or above `min_score`.

    Ties in score are broken by (symbol, strategy, side, ts), then by the signal's
    remaining fields, so the same set of signals ranks the same in any input order.
    """

    def __init__(self, config: RankingConfig) -> None:
        self._config = config
        # Copied into plain tuples: the hot path does no dict lookups on the config.
        self._features = tuple(
            (
                name,
                weight,
                *config.ranges.get(name, _DEFAULT_RANGE),
                name in config.invert,
            )
            for name, weight in sorted(config.weights.items())
        )
        self._total_weight = math.fsum(config.weights.values())

    @property
    def config(self) -> RankingConfig:
        return self._config

    def score(self, signal: Signal) -> FeatureScores:
        """The feature scores and the opportunity score (0..1) of one signal."""
        scores: dict[str, float] = {}
        missing: list[str] = []
        weighted: list[float] = []
        for name, weight, low, high, inverted in self._features:
            value = signal.features.get(name)
            if value is None or math.isnan(value):
                scores[name] = 0.0
                missing.append(name)
                continue
            clipped = min(max(value, low), high)
            feature_score = (clipped - low) / (high - low)
            if inverted:
                feature_score = 1.0 - feature_score
            scores[name] = feature_score
            weighted.append(weight * feature_score)
        # fsum: the score must not depend on summation order, or ties would wobble.
        score = math.fsum(weighted) / self._total_weight
        return FeatureScores(MappingProxyType(scores), score, tuple(missing))

    def rank_all(self, signals: Sequence[Signal]) -> tuple[list[RankedSignal], list[DroppedSignal]]:
        """Every signal of the cycle ranked: (kept, best first; dropped, with their reason).

        Ranks run 1..len(signals) over kept and dropped together. A signal below
        `min_score` is dropped for that reason even when it is also beyond the top N.
        """
        scored = [(self.score(signal), signal) for signal in signals]
        if len(scored) > 1:  # one signal has nothing to be ordered against (the common cycle)
            scored.sort(key=_order)
        kept: list[RankedSignal] = []
        dropped: list[DroppedSignal] = []
        min_score = self._config.min_score
        for rank, (scores, signal) in enumerate(scored, start=1):
            ranked = RankedSignal(signal, scores, rank)
            if min_score is not None and scores.score < min_score:
                dropped.append(DroppedSignal(ranked, DropReason.BELOW_MIN_SCORE))
            elif len(kept) >= self._config.top_n:
                dropped.append(DroppedSignal(ranked, DropReason.BEYOND_TOP_N))
            else:
                kept.append(ranked)
        return kept, dropped

    def rank(self, signals: Sequence[Signal]) -> list[RankedSignal]:
        """The signals this cycle keeps, best first."""
        return self.rank_all(signals)[0]


def _order(item: tuple[FeatureScores, Signal]) -> tuple[float, str, str, str, int, str]:
    scores, signal = item
    # The last key only separates signals that tie on score, symbol, strategy, side and
    # ts; signals whose remaining fields print alike are indistinguishable, so their order is moot.
    rest = repr(
        (
            signal.entry,
            signal.stop,
            signal.targets,
            signal.qty,
            sorted(signal.features.items()),
            signal.rationale,
        )
    )
    return (-scores.score, signal.symbol, signal.strategy, str(signal.side), signal.ts, rest)
