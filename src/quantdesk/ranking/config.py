"""Ranking configuration: feature weights, normalisation ranges, inversions, how many signals survive."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Weight = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Bound = Annotated[float, Field(allow_inf_nan=False)]


class RankingConfig(BaseModel):
    """How a signal's features become an opportunity score, and which signals of a cycle are kept.

    - `weights`: feature name -> weight (finite, >= 0, at least one > 0). Required.
      The score is the weighted mean of the feature scores over every weighted feature.
    - `ranges`: feature name -> (low, high). A raw value is clipped to the range and
      mapped linearly onto 0..1 (low -> 0, high -> 1). Default for a feature without a
      range: (0, 1), i.e. the value is taken as already a 0..1 score and clipped.
    - `invert`: features where lower is better; their score becomes 1 - score. Default: none.
    - `top_n`: how many signals a cycle keeps. Default 5.
    - `min_score`: signals scoring below it (0..1) are dropped. Default None (no floor).

    Example: ``RankingConfig(weights={"rvol": 2, "spread_bps": 1}, ranges={"rvol": (1, 5),
    "spread_bps": (0, 20)}, invert={"spread_bps"})`` scores rvol 3 and spread 5 bps as
    (2 * 0.5 + 1 * 0.75) / 3 = 0.5833.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: dict[str, Weight] = Field(min_length=1)
    top_n: int = Field(default=5, ge=1)
    min_score: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    ranges: dict[str, tuple[Bound, Bound]] = Field(default_factory=dict)
    invert: frozenset[str] = frozenset()

    @model_validator(mode="after")
    def _features_agree(self) -> RankingConfig:
        if not any(weight > 0 for weight in self.weights.values()):
            raise ValueError("weights: at least one feature needs a weight above 0")
        # A range or inversion for an unweighted feature is almost always a misspelt name.
        for field, names in (("ranges", set(self.ranges)), ("invert", set(self.invert))):
            unknown = sorted(names - set(self.weights))
            if unknown:
                raise ValueError(f"{field}: features {unknown} have no weight in weights")
        for name, (low, high) in self.ranges.items():
            if not low < high:
                raise ValueError(f"ranges.{name}: low {low} must be below high {high}")
        return self
