"""Ranking: opportunity scores from signal features, and the candidates of one cycle kept or dropped."""

from quantdesk.ranking.config import RankingConfig
from quantdesk.ranking.ranker import DroppedSignal, DropReason, FeatureScores, RankedSignal, Ranker

__all__ = ["DropReason", "DroppedSignal", "FeatureScores", "RankedSignal", "Ranker", "RankingConfig"]
