"""The root configuration: each part's model composed into one, validated before start, hashed.

A file (TOML or JSON) holds any of the sections; what it leaves out keeps its
default::

    [risk]
    max_risk_per_trade_pct = 0.5
    max_daily_loss_pct = 2.0
    [risk.sizing]
    mode = "risk"
    [ranking]
    weights = { z = 1.0 }
    top_n = 3
    [[protections]]
    method = "StoplossGuard"
    trade_limit = 3
    lookback_minutes = 60
    stop_duration_minutes = 30
    [recovery]
    orphan_policy = "cancel"    # or "adopt": orders at the venue nobody here placed
    confirmations = 2

`sha256()` hashes the effective configuration (defaults included), so every
decision can say exactly which limits it was made under.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from quantdesk.errors import ConfigError
from quantdesk.execution.recovery import RecoveryConfig
from quantdesk.ranking import RankingConfig
from quantdesk.risk.config import RiskConfig


class TradingConfig(BaseModel):
    """Everything that shapes trading decisions: risk limits and sizing, ranking, protections,
    and what recovery does with what it finds at the venue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    risk: RiskConfig = Field(default_factory=RiskConfig)
    ranking: RankingConfig | None = None
    protections: tuple[dict[str, Any], ...] = ()
    recovery: RecoveryConfig = Field(default_factory=RecoveryConfig)

    def sha256(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def load_config(path: str | Path) -> TradingConfig:
    """Read and validate a configuration file; errors name the file and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the configuration: {error.strerror}") from None
    try:
        raw = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {error}") from None
    try:
        return TradingConfig.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None
