"""Tests of the HTML backtest report: well-formed, offline, escaped, small on huge curves."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantdesk.backtest.report import (
    MAX_CHART_POINTS,
    MAX_TRADE_ROWS,
    minmax_indices,
    render_html,
    write_html,
)
from quantdesk.backtest.stats import EquityCurve, Stats, TradeRecord, compute_stats
from quantdesk.errors import UserError

T0 = pd.Timestamp("2024-03-04 14:30", tz="UTC").value
MINUTE = 60 * 10**9
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr", "source"}


class _TagChecker(HTMLParser):
    """Records open tags and complains about any end tag that does not close the last one."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.attributes: list[tuple[str, str, str | None]] = []
        self.counts: dict[str, int] = {}
        self.polylines: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._record(tag, attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._record(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def _record(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + 1
        self.attributes.extend((tag, name, value) for name, value in attrs)
        if tag == "polyline":
            self.polylines.append(dict(attrs)["points"] or "")


def _check(html: str) -> _TagChecker:
    checker = _TagChecker()
    checker.feed(html)
    checker.close()
    return checker


def _example(n_bars: int = 600, n_trades: int = 12) -> tuple[Stats, EquityCurve, list[TradeRecord]]:
    rng = np.random.default_rng(11)
    ts = T0 + np.arange(n_bars, dtype=np.int64) * 60 * MINUTE
    equity = 50_000 * np.exp(np.cumsum(rng.normal(0, 5e-4, n_bars)))
    curve = EquityCurve(ts, equity)
    trades = [
        TradeRecord(
            symbol="ESM4",
            side="LONG" if i % 2 else "SHORT",
            qty=Decimal(2),
            entry_time=int(ts[(i * 7) % n_bars]),
            exit_time=int(ts[(i * 7) % n_bars]) + 5 * MINUTE,
            entry_price=Decimal("5201.25"),
            exit_price=Decimal("5203.50") if i % 3 else Decimal("5199.00"),
            pnl=Decimal("220.00") if i % 3 else Decimal("-230.00"),
            fees=Decimal("4.30"),
            strategy="orb",
        )
        for i in range(n_trades)
    ]
    stats = compute_stats(
        curve,
        trades,
        starting_cash=Decimal("50000.00"),
        exposure=np.arange(n_bars) % 3 == 0,
    )
    return stats, curve, trades


META = {
    "strategy": "orb",
    "params": "range=15m, target=2R",
    "data source": "data/ES_1m.parquet",
    "instrument": "ESM4 tick 0.25, multiplier 50 (from instruments.toml)",
    "fill model": "next trade, 1 tick slippage",
    "event log SHA-256": "9c1d…",
}


def _render(**overrides: object) -> str:
    stats, curve, trades = _example()
    kwargs: dict[str, object] = {
        "title": "ORB on ES",
        "stats": stats,
        "equity": curve,
        "trades": trades,
        "meta": META,
    }
    kwargs.update(overrides)
    return render_html(**kwargs)  # type: ignore[arg-type]


def test_report_tags_are_balanced() -> None:
    checker = _check(_render(extra_tables={"Sessions": [{"day": "Mon", "pnl": "12.5"}]}))
    assert checker.errors == []
    assert checker.stack == []
    assert checker.counts["svg"] == 2
    assert checker.counts["table"] >= 5  # meta, three stat panels, extra, trades


def test_report_shows_the_stats_values_and_meta() -> None:
    stats, curve, trades = _example()
    html = render_html(title="ORB", stats=stats, equity=curve, trades=trades, meta=META)
    assert format(stats.net_pnl, ",f") in html
    assert format(stats.final_equity, ",f") in html
    assert f"{stats.sharpe:.3f}" in html
    assert f"{stats.max_drawdown_pct:,.2f} %" in html
    assert f"{stats.win_rate_pct:,.2f} %" in html
    assert f"{stats.profit_factor:.3f}" in html
    assert "ESM4 tick 0.25, multiplier 50 (from instruments.toml)" in html
    assert "2024-03-04 14:30" in html  # chart axis and header use dates


def test_report_loads_nothing_from_outside() -> None:
    html = _render()
    checker = _check(html)
    linking = [
        (tag, name, value)
        for tag, name, value in checker.attributes
        if name in {"src", "href", "xlink:href", "srcset", "action"}
    ]
    assert linking == []
    assert "http://" not in html
    assert "https://" not in html
    assert "<script" not in html
    assert "url(" not in html
    assert "@import" not in html


def test_malicious_text_is_escaped() -> None:
    evil = '<script>alert("x")</script>'
    stats, curve, trades = _example(n_trades=1)
    trades = [
        TradeRecord(
            symbol="<img src=x onerror=alert(1)>",
            side="LONG",
            qty=Decimal(1),
            entry_time=T0,
            exit_time=T0 + MINUTE,
            entry_price=Decimal(1),
            exit_price=Decimal(2),
            pnl=Decimal(1),
            fees=Decimal(0),
            strategy=evil,
        )
    ]
    html = render_html(
        title=evil,
        stats=stats,
        equity=curve,
        trades=trades,
        meta={evil: '" onmouseover="alert(1)'},
        extra_tables={evil: [{evil: evil}]},
    )
    assert "<script" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    checker = _check(html)
    assert checker.errors == []
    assert not any(name.startswith("on") for _, name, _ in checker.attributes)


def test_million_bar_curve_renders_thinned_and_fast() -> None:
    n = 1_000_000
    rng = np.random.default_rng(5)
    ts = T0 + np.arange(n, dtype=np.int64) * MINUTE
    curve = EquityCurve(ts, 1e6 * np.exp(np.cumsum(rng.normal(0, 1e-4, n))))
    stats = compute_stats(curve, [], starting_cash=Decimal(1_000_000), exposure=np.zeros(n, dtype=bool))
    started = time.perf_counter()
    html = render_html(title="big", stats=stats, equity=curve, trades=[], meta={})
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0
    checker = _check(html)
    assert len(checker.polylines) == 2
    for points in checker.polylines:
        assert 1_000 < len(points.split()) <= MAX_CHART_POINTS
    assert len(html) < 250_000


def test_thinning_keeps_spikes_and_both_ends() -> None:
    values = np.zeros(1_000_000)
    values[123_457] = 9.0
    values[876_543] = -4.0
    kept = minmax_indices(values, MAX_CHART_POINTS)
    assert len(kept) <= MAX_CHART_POINTS
    assert {0, 123_457, 876_543, 999_999} <= set(kept.tolist())
    assert np.all(np.diff(kept) > 0)


def test_short_series_is_drawn_whole() -> None:
    assert minmax_indices(np.arange(10.0), MAX_CHART_POINTS).tolist() == list(range(10))


def test_trades_table_stops_at_the_limit_and_counts_the_rest() -> None:
    stats, curve, trades = _example(n_trades=MAX_TRADE_ROWS + 120)
    html = render_html(title="many", stats=stats, equity=curve, trades=trades, meta={})
    trades_table = html.split('<table class="trades">', 1)[1].split("</table>", 1)[0]
    assert len(re.findall("<tr>", trades_table)) == MAX_TRADE_ROWS + 1  # plus header row
    assert "120 more trades omitted" in html


def test_report_without_trades_says_so() -> None:
    html = _render(trades=[])
    assert "No closed trades." in html
    assert _check(html).errors == []


def test_write_html_creates_folders(tmp_path: Path) -> None:
    target = write_html(tmp_path / "runs" / "r1" / "report.html", "<p>é</p>")
    assert target.read_text(encoding="utf-8") == "<p>é</p>"


def test_write_html_into_a_file_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot write report"):
        write_html(blocker / "report.html", "<p></p>")
