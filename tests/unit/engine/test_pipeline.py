"""The trading pipeline: every signal ends in one recorded decision, and only approved plans trade."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from kit import MINUTE, T0, bar, flat_bar, instrument, rig
from quantdesk.engine.messages import DecisionRecord
from quantdesk.engine.pipeline import PipelineConfig
from quantdesk.model import Bar, Side, Signal
from quantdesk.ranking import RankingConfig
from quantdesk.risk import LIVE_CONFIRMATION, Mode, ModeChangeRefused, RiskConfig, SizingConfig
from quantdesk.strategies import Strategy

D = Decimal
SRC = Path(__file__).resolve().parents[3] / "src" / "quantdesk"


class OnCue(Strategy):
    """Enters long with a stop 2% below and a target 4% above whenever told to."""

    def on_start(self) -> None:
        self.go = False

    def on_bar(self, bar: Bar) -> None:
        if self.go and self.is_flat:
            self.go = False
            self.enter_long(stop=bar.close * 0.98, targets=[bar.close * 1.04], features={"momentum": 0.5})


def _engine_with(
    risk: RiskConfig,
    *symbols: str,
    ranking: RankingConfig | None = None,
    protections: tuple[dict[str, object], ...] = (),
):  # type: ignore[no-untyped-def]
    r = rig(
        [instrument(s) for s in (symbols or ("AAA",))],
        cash=D(100_000),
        pipeline=PipelineConfig(risk=risk, ranking=ranking, protections=protections, mode=Mode.PAPER),
    )
    strategies = {s: OnCue(s) for s in (symbols or ("AAA",))}
    for strategy in strategies.values():
        r.engine.add_strategy(strategy)
    r.engine.start()
    decisions: list[DecisionRecord] = []
    r.engine.pipeline.subscribe(decisions.append)
    return r, strategies, decisions


RISK = RiskConfig(max_data_age_seconds=None, sizing=SizingConfig(mode="risk"))


def test_an_approved_signal_becomes_a_risk_sized_entry_with_its_plan_id() -> None:
    r, strategies, decisions = _engine_with(RISK)
    r.feed(flat_bar(0, 100.0))
    strategies["AAA"].go = True
    r.feed(flat_bar(1, 100.0), flat_bar(2, 100.0))
    assert len(decisions) == 1 and decisions[0].approved
    # 0.5% of 100,000 = 500 at risk; 2.00 per share to the stop -> 250 shares.
    assert decisions[0].qty == 250
    entry = next(o for o in r.engine.orders.orders.values() if o.tag == "ENTRY")
    assert decisions[0].plan_id in entry.client_order_id and entry.filled_qty == 250
    assert {o.tag for o in r.engine.orders.working_orders()} == {"STOP", "TP1"}


def test_a_blocked_signal_lists_every_reason_and_sends_nothing() -> None:
    r, strategies, decisions = _engine_with(RISK)
    r.feed(flat_bar(0, 100.0))
    r.engine.pause("test")
    r.engine.state.engage_kill_switch("test")
    strategies["AAA"].go = True
    r.feed(flat_bar(1, 100.0), flat_bar(2, 100.0))
    assert not decisions[0].approved
    assert {"PAUSED", "KILL_SWITCH"} <= set(decisions[0].reasons)
    assert r.engine.orders.orders == {}
    assert r.engine.pipeline.blocked["PAUSED"] == 1


def test_exits_are_still_managed_while_paused() -> None:
    r, strategies, _ = _engine_with(RISK)
    r.feed(flat_bar(0, 100.0))
    strategies["AAA"].go = True
    r.feed(flat_bar(1, 100.0), flat_bar(2, 100.0))
    r.engine.pause("test")
    r.feed(bar(T0 + 3 * MINUTE, 100, 100, 97, 97.5))  # through the stop at 98
    assert r.engine.open_strategy_positions() == []
    assert r.engine.portfolio.realized_pnl == D(-500)


def test_the_ranker_keeps_the_top_n_of_a_cycle_and_records_the_rest() -> None:
    ranking = RankingConfig(weights={"momentum": 1.0}, top_n=1)
    r, strategies, decisions = _engine_with(RISK, "AAA", "BBB", ranking=ranking)
    r.feed(flat_bar(0, 100.0, "AAA"), flat_bar(0, 100.0, "BBB"))
    strategies["AAA"].go = strategies["BBB"].go = True
    r.feed(flat_bar(1, 100.0, "AAA"), flat_bar(1, 100.0, "BBB"), flat_bar(2, 100.0, "AAA"))
    assert sorted(d.approved for d in decisions) == [False, True]
    dropped = next(d for d in decisions if not d.approved)
    assert dropped.reasons == ("RANKING",) and dropped.signal.symbol == "BBB"  # tie -> by symbol


def test_a_protection_lock_is_a_recorded_block() -> None:
    protections = ({"method": "CooldownPeriod", "stop_duration_minutes": 60},)
    r, strategies, decisions = _engine_with(RISK, protections=protections)
    r.feed(flat_bar(0, 100.0))
    strategies["AAA"].go = True
    r.feed(flat_bar(1, 100.0), flat_bar(2, 100.0), bar(T0 + 3 * MINUTE, 100, 105, 100, 104.5))
    assert len(r.engine.closed_trades) == 1 and r.engine.closed_trades[0].exit_reason == "target"
    strategies["AAA"].go = True
    r.feed(flat_bar(4, 104.0), flat_bar(5, 104.0))
    assert decisions[-1].reasons == ("PROTECTION",)


def test_live_mode_needs_the_exact_phrase_and_applies_day_one_caps() -> None:
    r, _, _ = _engine_with(RISK)
    with pytest.raises(ModeChangeRefused):
        r.engine.state.set_mode(Mode.LIVE, "confirm live trading")
    assert r.engine.state.mode is Mode.PAPER
    r.engine.state.set_mode(Mode.LIVE, LIVE_CONFIRMATION)
    assert r.engine.state.mode is Mode.LIVE
    assert [c.action for c in r.engine.state.changes] == ["mode_refused", "mode"]
    live = RiskConfig().for_mode(Mode.LIVE)
    assert (live.max_risk_per_trade_pct, live.max_portfolio_heat_pct, live.max_daily_loss_pct) == (
        D("0.25"),
        D("1.0"),
        D("1.0"),
    )


def test_flatten_cancels_everything_closes_everything_and_is_idempotent() -> None:
    r, strategies, _ = _engine_with(RISK, "AAA", "BBB")
    r.feed(flat_bar(0, 100.0, "AAA"), flat_bar(0, 100.0, "BBB"))
    strategies["AAA"].go = strategies["BBB"].go = True
    r.feed(flat_bar(1, 100.0, "AAA"), flat_bar(1, 100.0, "BBB"))
    r.feed(flat_bar(2, 100.0, "AAA"), flat_bar(2, 100.0, "BBB"))
    assert len(r.engine.orders.working_orders()) == 4
    first = r.engine.flatten("test")
    second = r.engine.flatten("test again")
    assert (first.canceled, first.closing_orders) == (4, 2)
    assert (second.canceled, second.closing_orders) == (0, 0)  # the exits stay; nothing is resent
    r.feed(flat_bar(3, 100.0, "AAA"), flat_bar(3, 100.0, "BBB"))
    assert r.engine.open_strategy_positions() == [] and r.engine.orders.working_orders() == []
    assert r.engine.state.paused and first.duration_ns < 2_000_000_000


def test_nothing_creates_an_entry_except_the_pipeline_after_the_gate() -> None:
    # Static: the only call of OrderManager.enter in the product is the pipeline's _approve.
    callers = [
        f"{path.relative_to(SRC)}:{n}"
        for path in SRC.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\.enter\(", line)
    ]
    assert callers == ["engine/pipeline.py:" + str(_line_of("engine/pipeline.py", ".enter("))]
    body = (SRC / "engine/pipeline.py").read_text()
    approve = body[body.index("def _approve") : body.index("# -- helpers")]
    assert ".enter(" in approve
    assert body.count("self._approve(") == 1 and "if decision.approved:\n            self._approve" in body


def test_every_entry_in_the_event_log_follows_an_approved_decision_for_its_plan() -> None:
    r, strategies, _ = _engine_with(RISK, "AAA")
    for i in range(40):
        strategies["AAA"].go = i % 3 == 0
        r.feed(bar(T0 + i * MINUTE, 100 + (i % 5), 101 + (i % 5), 99 + (i % 5), 100 + (i % 5)))
    approved: set[str] = set()
    entries = 0
    for line in r.log.lines or []:
        words = line.split()
        if words[0] == "decision" and "approved" in words:
            approved.add(words[1])
        if words[0] == "submit" and words[-2] == "ENTRY":
            entries += 1
            assert any(plan in words[1] for plan in approved), line
    assert entries >= 3


def _line_of(relative: str, needle: str) -> int:
    return next(n for n, line in enumerate((SRC / relative).read_text().splitlines(), 1) if needle in line)


def test_a_signal_is_refused_when_the_symbol_has_no_price_yet() -> None:
    r, _, decisions = _engine_with(RISK)
    r.engine.submit_signal(Signal("OnCue", "AAA", Side.BUY, T0, stop=D(95)))
    r.engine.end_cycle()
    assert decisions and not decisions[0].approved
