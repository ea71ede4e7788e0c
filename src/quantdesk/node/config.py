"""The node's own settings: what to replay, how fast, where the store, Redis and the API live."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The default paper day: three seeded synthetic symbols, so the demo needs no data to install.
DEFAULT_SYMBOLS = ("SYNA", "SYNB", "SYNC")
DEFAULT_PARAMS = {
    "k": "1.5",
    "stop_k": "3.0",
    "warmup_bars": "15",
    "exit_before_close": "15",
    "take_profit": "true",
}


class NodeConfig(BaseModel):
    """Everything `quantdesk paper` takes. Defaults need nothing installed: SQLite under
    `var_dir`, the in-process bus, the API on 127.0.0.1.

    `data` is a file path or ``sample:NAME``; without it the node replays
    `days` seeded synthetic sessions of `symbols` from `start` (SYNTHETIC data,
    said so in the logs). `speed` is how many times faster than real time the
    session replays. `venue_state` keeps the simulated venue's account and
    orders in a file across restarts (a paper account that survives the node); a
    node restarted on it resumes the replay after the last bar the venue saw.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: str = "vwap_mean_reversion"
    params: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PARAMS))
    data: str | None = None
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    start: str = "2024-01-02"
    days: int = Field(default=1, ge=1, le=30)
    calendar: str = "XNYS"
    currency: str = "USD"
    speed: float = Field(default=60.0, gt=0, le=1_000_000)
    # Jump the clock over closed hours between sessions (a multi-day burn-in at speed 60 would
    # otherwise sleep ~17.5 real minutes a night); off by default: the night passes as live.
    skip_closed: bool = False
    cash: Decimal = Field(default=Decimal(100_000), gt=0)
    config_file: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65_535)
    db_url: str | None = None
    redis_url: str | None = None
    api_token: str | None = None
    var_dir: Path = Path("var")
    alert_urls: tuple[str, ...] = ()
    flatten_on_stop: bool = True
    exit_at_end: bool = False
    venue_state: Path | None = None
    store_max_buffer: int = Field(default=100_000, ge=1)
    # "process" (the default): batches written by a child process, fed between events, so the
    # store's work never holds the engine's interpreter lock; "thread": by a thread of this
    # process, which does, and delays the next tick's wake-up by up to the 5 ms switch interval
    # (p99 from due x3-10 of no writer, against x0.7-1.9; docs/PERFORMANCE.md, "Store"). A replay
    # fast enough that the engine never waits for a bar may do better with "thread": its engine
    # p99 was x1.01-1.09 against the process's x1.16-1.28 on one machine, but x1.16-1.33 against
    # x1.12-1.44 on another ("Evening of 2026-12-04"): measure on yours.
    store_writer: Literal["process", "thread"] = "process"
    # A CPU for the engine's thread alone (Linux): the node's event loop runs on it, the store's
    # writer process on the others. On a small machine the writer process beside the engine
    # costs its tail otherwise: a tick's wake-up came late >1 ms ~3x as often (2 vCPUs, both
    # unpinned; docs/PERFORMANCE.md, "Store"). None (the default): the system places both.
    engine_cpu: int | None = Field(default=None, ge=0)
    # With engine_cpu: the loop polls its sockets and timers instead of sleeping in the kernel
    # (engine.runtime.SpinningSelector), keeping that CPU busy for good. The node must run on
    # engine.runtime.spinning_event_loop() (the command line does).
    engine_spin: bool = False
    # Seconds between the background writer's batches (write-behind; the outbox is synchronous).
    # store.writer.FLUSH_INTERVAL_S, spelled out: this module stays free of the store's imports.
    store_flush_interval_s: float = Field(default=1.0, gt=0)
    # How a bracket's exits rest at the venue: "both_resting" (stop and targets; Kite, the
    # simulator) or "stop_resting" (targets held here and released on touch: Alpaca refuses
    # exits that add up to more than the position).
    exit_policy: Literal["both_resting", "stop_resting"] = "both_resting"
    watch_interval_s: float = Field(default=1.0, gt=0)
    reconcile_interval_s: float = Field(default=5.0, gt=0)

    @field_validator("speed")
    @classmethod
    def _finite(cls, value: float) -> float:
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("speed must be a finite number")
        return value

    @property
    def token_path(self) -> Path:
        return self.var_dir / "api-token"

    @property
    def log_path(self) -> Path:
        return self.var_dir / "logs" / "quantdesk.jsonl"
