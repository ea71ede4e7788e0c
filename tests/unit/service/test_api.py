"""Every endpoint of the control plane against a real engine: reads, commands, auth, the LIVE gate."""

from __future__ import annotations

from decimal import Decimal

import pytest
from conftest import AUTH, Api
from prometheus_client.parser import text_string_to_metric_families

from quantdesk.risk.kill_switch import LIVE_CONFIRMATION


def test_health_state_and_status_describe_the_running_engine(api: Api) -> None:
    api.feed(0, 10)
    health = api.client.get("/health").json()
    assert health["status"] == "ok" and health["mode"] == "BACKTEST"
    state = api.client.get("/state").json()
    assert state == {
        "mode": "BACKTEST",
        "paused": False,
        "kill_switch": False,
        "entries_allowed": True,
        "last_change": None,
    }
    status = api.client.get("/status").json()
    orders = api.rig.engine.orders.orders.values()
    assert status["orders"]["working"] == len(api.rig.engine.orders.working_orders()) > 0
    assert sum(status["orders"]["by_status"].values()) == len(orders)
    assert status["clock"]["ts"] == api.rig.clock.now_ns()


def test_positions_orders_signals_and_risk_match_the_engine(api: Api) -> None:
    api.feed(0, 9)
    engine = api.rig.engine
    positions = api.client.get("/positions").json()
    expected = engine.open_strategy_positions()
    assert [(p["strategy"], p["symbol"], Decimal(p["qty"])) for p in positions] == expected
    assert all(p["stop"] is not None for p in positions)  # each position has its protective stop
    orders = api.client.get("/orders").json()
    working = {o.client_order_id for o in engine.orders.working_orders()}
    assert {o["client_order_id"] for o in orders["working"]} == working
    assert len(orders["recent"]) == len(engine.orders.orders)
    signals = api.client.get("/signals").json()
    assert [s["plan_id"] for s in signals] == [d.plan_id for d in reversed(engine.pipeline.decisions)]
    risk = api.client.get("/risk").json()
    assert Decimal(risk["cash"]) == engine.portfolio.account.cash
    assert risk["open_positions"] == len(expected)
    assert risk["limits"]["max_open_positions"] == engine.pipeline.risk.max_open_positions


def test_metrics_are_prometheus_text_of_what_happened(api: Api) -> None:
    api.feed(0, 14)
    response = api.client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert families["trader_signals"].samples[0].value == api.rig.engine.signals > 0


@pytest.mark.parametrize("path", ["/pause", "/resume", "/flatten", "/mode"])
def test_every_command_needs_the_token(api: Api, path: str) -> None:
    body = {"mode": "PAPER"} if path == "/mode" else {}
    assert api.client.post(path, json=body).status_code == 401
    wrong = api.client.post(path, json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert api.client.post(path, json=body, headers={"Authorization": "Basic abc"}).status_code == 401
    assert api.rig.engine.state.changes == []  # nothing changed


def test_pause_and_resume_are_audited_with_the_api_as_actor(api: Api) -> None:
    paused = api.client.post("/pause", json={"reason": "lunch"}, headers=AUTH)
    assert paused.status_code == 200 and paused.json()["paused"] is True
    api.feed(0, 14)
    assert api.rig.engine.pipeline.approved == 0  # no entry while paused
    resumed = api.client.post("/resume", headers=AUTH)
    assert resumed.json()["entries_allowed"] is True
    changes = [(c.action, c.actor, c.reason) for c in api.rig.engine.state.changes]
    assert changes == [("pause", "api", "lunch"), ("resume", "api", "resumed from the API")]


def test_flatten_closes_everything_and_answers_with_its_duration(api: Api) -> None:
    api.feed(0, 9)
    assert api.rig.engine.open_strategy_positions()
    response = api.client.post("/flatten", headers=AUTH)
    assert response.status_code == 200
    result = response.json()
    assert result["done"] is True and 0 <= result["duration_ms"] < 2_000
    assert result["open_positions"] == 0 and result["working_orders"] == 0
    assert result["canceled"] >= 1 and result["closing_orders"] >= 1
    assert api.rig.engine.open_strategy_positions() == []


def test_live_needs_the_exact_phrase_and_every_refusal_is_audited(api: Api) -> None:
    wrong = api.client.post("/mode", json={"mode": "LIVE", "confirm": "yes please"}, headers=AUTH)
    assert wrong.status_code == 400 and "CONFIRM LIVE TRADING" in wrong.json()["detail"]
    right = api.client.post("/mode", json={"mode": "LIVE", "confirm": LIVE_CONFIRMATION}, headers=AUTH)
    assert right.status_code == 409 and "no live venue" in right.json()["detail"]
    assert api.rig.engine.state.mode.value == "BACKTEST"
    refusals = [c for c in api.rig.engine.state.changes if c.action == "mode_refused"]
    assert [c.actor for c in refusals] == ["api", "api"]
    paper = api.client.post("/mode", json={"mode": "PAPER"}, headers=AUTH)
    assert paper.status_code == 200 and paper.json()["mode"] == "PAPER"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"mode": "LIVE", ', 422),  # malformed JSON
        (b'{"mode": "PAPER", "force": true}', 422),  # unknown field
        (b'{"mode": 7}', 422),  # wrong type
        (b'{"mode": "SIDEWAYS"}', 422),  # not a mode
        (b"[]", 422),
        (b'{"mode": "PAPER", "confirm": "' + b"x" * 70_000 + b'"}', 413),  # huge
    ],
)
def test_bad_input_is_a_4xx_with_a_message_and_changes_nothing(api: Api, body: bytes, status: int) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    response = api.client.post("/mode", content=body, headers=headers)
    assert response.status_code == status
    assert response.json()["detail"]
    assert api.rig.engine.state.changes == []


def test_a_huge_body_is_refused_on_every_command(api: Api) -> None:
    body = {"reason": "x" * 70_000}
    assert api.client.post("/pause", json=body, headers=AUTH).status_code == 413
    assert api.client.post("/pause", json={"reason": "x", "extra": 1}, headers=AUTH).status_code == 422
    assert api.rig.engine.state.paused is False


def test_the_websocket_streams_the_engines_events(api: Api) -> None:
    with api.client.websocket_connect("/ws") as ws:
        api.feed(0, 9)
        channels = []
        while len(channels) < 12:
            message = ws.receive_json()
            channels.append(message["channel"])
            if message["channel"] == "fills":
                assert Decimal(message["data"]["qty"]) > 0
    assert {"decisions", "orders", "fills", "positions"} <= set(channels)


def test_the_openapi_schema_lists_every_endpoint(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {"/health", "/state", "/risk", "/positions", "/orders", "/signals", "/status", "/metrics"} <= paths
    assert {"/pause", "/resume", "/flatten", "/mode"} <= paths
    assert "ModeRequest" in schema["components"]["schemas"]
