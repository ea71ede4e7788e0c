"""deploy/: the Prometheus scrape config and the Grafana dashboard match the metrics we export."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from kit import rig
from quantdesk.telemetry import TraderMetrics

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
METRIC = re.compile(r"\btrader_[a-z_]+\b")


def exported_names() -> set[str]:
    """Every sample name a freshly attached TraderMetrics exposes (e.g. `trader_x_total`, `_bucket`)."""
    metrics = TraderMetrics()
    metrics.attach(rig().engine)
    text = metrics.render().decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DEPLOY / "grafana" / "quantdesk-dashboard.json").read_text())
    return loaded


def test_prometheus_scrapes_the_node_metrics_endpoint_on_localhost() -> None:
    text = (DEPLOY / "prometheus.yml").read_text()
    assert "--port of `quantdesk paper`" in text
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:  # PyYAML is not a dependency of ours: check the lines themselves
        assert "metrics_path: /metrics" in text and 'targets: ["127.0.0.1:8000"]' in text
        return
    [job] = yaml.safe_load(text)["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8000"]


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    queried = {
        name
        for panel in dashboard()["panels"]
        for target in panel["targets"]
        for name in METRIC.findall(target["expr"])
    }
    exported = exported_names()
    assert queried - exported == set()
    # The panels the desk reads every day are all there.
    for name in (
        "trader_signals_total",
        "trader_decisions_total",
        "trader_risk_blocks_total",
        "trader_orders_placed_total",
        "trader_orders_filled_total",
        "trader_positions_open",
        "trader_portfolio_heat",
        "trader_daily_pnl",
        "trader_tick_to_decision_ms_bucket",
        "trader_order_latency_ms_bucket",
        "trader_store_queue_depth",
        "trader_throttler_waits_total",
    ):
        assert name in queried


def test_the_dashboard_is_a_well_formed_grafana_dashboard() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    [variable] = board["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        assert [t["refId"] for t in panel["targets"]] == [chr(65 + i) for i in range(len(panel["targets"]))]
    quantiles = [
        t["expr"] for p in board["panels"] for t in p["targets"] if t["expr"].startswith("histogram_quantile")
    ]
    assert any("0.5," in q and "tick_to_decision" in q for q in quantiles)
    assert any("0.99," in q and "tick_to_decision" in q for q in quantiles)
