"""The `quantdesk` command: thin wrappers that parse flags and call one library function each."""

from __future__ import annotations

import sys
from datetime import date
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from quantdesk.errors import QuantdeskError, UserError
from quantdesk.store.database import safe_url

app = typer.Typer(
    name="quantdesk",
    help="Intraday algorithmic trading: backtest, replay, paper and live on one engine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(soft_wrap=True)
errors = Console(stderr=True)

_DB_HELP_PAPER = "Store URL (default: QUANTDESK_DB_URL, else SQLite in VAR_DIR/quantdesk.db)."

# Progress is drawn only for runs long enough to need it.
_PROGRESS_MIN_BARS = 200_000


def _fail(error: Exception) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {error}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code=2)


@app.command()
def backtest(
    strategy: Annotated[str, typer.Option(help="Strategy name (see `quantdesk strategies`).")],
    data: Annotated[str, typer.Option(help="CSV/Parquet file, or sample:NAME (see `quantdesk samples`).")],
    param: Annotated[
        list[str] | None, typer.Option(help="Strategy parameter NAME=VALUE, repeatable.")
    ] = None,
    symbol: Annotated[list[str] | None, typer.Option(help="Only these symbols of the data.")] = None,
    qty: Annotated[str, typer.Option(help="Order quantity when the strategy gives none.")] = "1",
    cash: Annotated[str, typer.Option(help="Starting cash.")] = "100000",
    fill: Annotated[str, typer.Option(help="Market fills: next_open or close.")] = "next_open",
    limit_fill: Annotated[str, typer.Option(help="Limit fills: touch or through.")] = "touch",
    fees: Annotated[str, typer.Option(help="none, us_equity or nse_equity_intraday.")] = "none",
    slippage_ticks: Annotated[int, typer.Option(help="Ticks of slippage on market and stop fills.")] = 0,
    instruments: Annotated[str | None, typer.Option(help="Instruments file (TOML/JSON/CSV).")] = None,
    tick_size: Annotated[str | None, typer.Option(help="Tick size (else inferred from the data).")] = None,
    lot_size: Annotated[str | None, typer.Option(help="Lot size (default 1).")] = None,
    currency: Annotated[str, typer.Option(help="Account currency.")] = "USD",
    calendar: Annotated[str | None, typer.Option(help="Exchange calendar, e.g. XNYS or XNSE.")] = None,
    config: Annotated[
        str | None, typer.Option(help="Risk limits, sizing, ranking, protections (TOML/JSON).")
    ] = None,
    json_out: Annotated[str | None, typer.Option("--json", help="Write the JSON summary here.")] = None,
    report: Annotated[str | None, typer.Option(help="Write the HTML report here.")] = None,
) -> None:
    """Backtest a strategy on historical bars and print a summary.

    Example: quantdesk backtest --strategy sma_cross --param fast=10 --param slow=20
    --data sample:GOOG --qty 100 --report out/goog.html
    """
    from quantdesk.backtest.job import BacktestJob, parse_decimal, parse_params, run_job

    try:
        job = BacktestJob(
            strategy=strategy,
            data=data,
            params=parse_params(param or []),
            symbols=tuple(symbol or ()),
            qty=parse_decimal(qty, "--qty"),
            cash=parse_decimal(cash, "--cash"),
            fill=fill,
            limit_fill=limit_fill,
            fees=fees,
            slippage_ticks=slippage_ticks,
            instruments_file=instruments,
            tick_size=parse_decimal(tick_size, "--tick-size") if tick_size else None,
            lot_size=parse_decimal(lot_size, "--lot-size") if lot_size else None,
            currency=currency,
            calendar=calendar,
            json_path=json_out,
            report_path=report,
            config_file=config,
        )
        with Progress(
            TextColumn("backtest"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=errors,
            transient=True,
            disable=not errors.is_terminal,
        ) as bar:
            task = bar.add_task("bars", total=None)

            def progress(done: int, total: int) -> None:
                if total >= _PROGRESS_MIN_BARS:
                    bar.update(task, completed=done, total=total)

            output = run_job(job, progress)
    except QuantdeskError as error:
        raise _fail(error) from None
    _print_summary(output.result)
    if output.json_path:
        console.print(f"JSON summary: {output.json_path}")
    if output.report_path:
        console.print(f"HTML report:  {output.report_path}")


def _print_summary(result: object) -> None:
    from quantdesk.backtest.runner import BacktestResult

    assert isinstance(result, BacktestResult)
    stats = result.stats
    table = Table(title=f"Backtest: {result.meta.get('strategy', '')} on {result.meta.get('symbols', '')}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows: list[tuple[str, str]] = [
        ("period", f"{stats.start[:10]} .. {stats.end[:10]} ({result.bars:,} bars)"),
        ("net P&L", f"{stats.net_pnl:,}"),
        ("realised P&L", f"{stats.realized_pnl:,}"),
        ("fees", f"{stats.total_fees:,}"),
        ("total return", f"{stats.total_return_pct:.2f}%"),
        ("CAGR", f"{stats.cagr_pct:.2f}%"),
        ("Sharpe", f"{stats.sharpe:.2f}"),
        ("Sortino", f"{stats.sortino:.2f}"),
        ("max drawdown", f"{stats.max_drawdown_pct:.2f}%"),
        ("trades", f"{stats.trades}"),
        ("win rate", f"{stats.win_rate_pct:.1f}%"),
        ("profit factor", f"{stats.profit_factor:.2f}"),
        ("exposure", f"{stats.exposure_pct:.1f}%"),
        ("open positions", f"{len(result.open_positions)}"),
        ("signals", f"{result.signals}"),
        ("decisions approved / blocked", f"{result.approved} / {sum(result.blocked.values())}"),
        ("event log SHA-256", result.event_log_sha256[:16] + "…"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


@app.command()
def strategies() -> None:
    """List the registered strategies and their parameters."""
    from quantdesk.strategies import get_strategy, strategy_names

    table = Table(title="Strategies")
    table.add_column("name", no_wrap=True)
    table.add_column("parameters (defaults)")
    table.add_column("description")
    for name in strategy_names():
        cls = get_strategy(name)
        params = ", ".join(f"{k}={v}" for k, v in cls.parameters().items())
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        table.add_row(name, params, doc)
    console.print(table)


@app.command()
def samples() -> None:
    """List the bundled sample data sets (use as --data sample:NAME)."""
    from quantdesk.data.samples import sample_names

    for name in sample_names():
        console.print(f"sample:{name}")


@app.command()
def paper(
    data: Annotated[
        str | None, typer.Option(help="Bars to replay: CSV/Parquet or sample:NAME (default: synthetic).")
    ] = None,
    speed: Annotated[float, typer.Option(help="Replay speed, times real time.")] = 60.0,
    port: Annotated[int, typer.Option(help="API port (0: any free port).")] = 8000,
    host: Annotated[str, typer.Option(help="API address; keep 127.0.0.1 unless proxied.")] = "127.0.0.1",
    db: Annotated[str | None, typer.Option(help=_DB_HELP_PAPER)] = None,
    redis: Annotated[
        str | None, typer.Option(help="Redis URL for events (default: QUANTDESK_REDIS_URL, else none).")
    ] = None,
    strategy: Annotated[str, typer.Option(help="Strategy name (see `quantdesk strategies`).")] = (
        "vwap_mean_reversion"
    ),
    param: Annotated[
        list[str] | None, typer.Option(help="Strategy parameter NAME=VALUE, repeatable.")
    ] = None,
    config: Annotated[
        str | None, typer.Option(help="Risk limits, sizing, ranking, protections (TOML/JSON).")
    ] = None,
    cash: Annotated[str, typer.Option(help="Starting cash.")] = "100000",
    days: Annotated[int, typer.Option(help="Synthetic sessions to replay (without --data).")] = 1,
    calendar: Annotated[str, typer.Option(help="Exchange calendar: XNYS or XNSE.")] = "XNYS",
    var_dir: Annotated[str, typer.Option(help="Where the SQLite store, token and logs live.")] = "var",
    exit_at_end: Annotated[bool, typer.Option(help="Stop when the replay ends.")] = False,
    skip_closed: Annotated[
        bool, typer.Option(help="Jump over closed hours between sessions instead of sleeping through them.")
    ] = False,
    flatten_on_stop: Annotated[bool, typer.Option(help="Flatten everything on shutdown.")] = True,
    exit_policy: Annotated[
        str,
        typer.Option(help="both_resting (stop and targets rest), stop_resting (Alpaca: targets held here)."),
    ] = "both_resting",
    engine_cpu: Annotated[
        int | None,
        typer.Option(
            help="Linux: run the engine's thread on this CPU alone, the store's writer process on the others."
        ),
    ] = None,
    engine_spin: Annotated[
        bool,
        typer.Option(
            help="With --engine-cpu: the engine's loop polls instead of sleeping (ticks are seen "
            "within microseconds; that CPU stays busy)."
        ),
    ] = False,
) -> None:
    """Paper-trade: replay a session through the live path into the simulated venue, with the API.

    Stops cleanly on Ctrl+C or SIGTERM (pause, flatten, stop the feed, flush the store).
    """
    import asyncio
    import os

    from quantdesk.backtest.job import parse_decimal, parse_params
    from quantdesk.engine.runtime import spinning_event_loop
    from quantdesk.node import NodeConfig, PaperNode

    try:
        settings = NodeConfig(
            data=data,
            speed=speed,
            port=port,
            host=host,
            db_url=db,
            redis_url=redis or os.environ.get("QUANTDESK_REDIS_URL") or None,
            strategy=strategy,
            params=parse_params(param or []) if param else NodeConfig().params,
            config_file=config,
            cash=parse_decimal(cash, "--cash"),
            days=days,
            calendar=calendar,
            var_dir=var_dir,  # type: ignore[arg-type]
            exit_at_end=exit_at_end,
            skip_closed=skip_closed,
            flatten_on_stop=flatten_on_stop,
            exit_policy=exit_policy,  # type: ignore[arg-type]
            engine_cpu=engine_cpu,
            engine_spin=engine_spin,
        )
        with asyncio.Runner(loop_factory=spinning_event_loop if engine_spin else None) as runner:
            runner.run(PaperNode(settings, on_started=_announce).run())
    except QuantdeskError as error:
        raise _fail(error) from None
    except ValidationError as error:
        first = error.errors()[0]
        raise _fail(UserError(f"--{first['loc'][0]}: {first['msg']}")) from None


def _announce(node: Any) -> None:
    parts = node.parts
    console.print(
        f"[bold]quantdesk paper[/] {parts.data_label} at {node.config.speed:g}x\n"
        f"  API    {node.api_url}   (docs: {node.api_url}/docs)\n"
        f"  token  {parts.token}   (stored in {node.config.token_path})\n"
        f"  store  {safe_url(parts.db_url)}\n"
        "  Ctrl+C stops: pause, flatten, stop the feed, flush the store.",
        highlight=False,
    )


db_app = typer.Typer(help="The store: migrations of the audit-chain database.", no_args_is_help=True)
app.add_typer(db_app, name="db")

_DB_HELP = "Database URL (default: QUANTDESK_DB_URL, else SQLite in ./var/quantdesk.db)."


@db_app.command("upgrade")
def db_upgrade(
    db: Annotated[str | None, typer.Option(help=_DB_HELP)] = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Create or migrate the database schema to the latest revision."""
    from quantdesk.store import current_revision, database_url, safe_url, upgrade

    try:
        url = database_url(db)
        upgrade(url, revision)
        console.print(f"{safe_url(url)}: at revision {current_revision(url)}")
    except QuantdeskError as error:
        raise _fail(error) from None


@db_app.command("downgrade")
def db_downgrade(
    db: Annotated[str | None, typer.Option(help=_DB_HELP)] = None,
    revision: Annotated[str, typer.Option(help="Target revision (base removes every table).")] = "base",
) -> None:
    """Migrate the schema down (to base: drop every table quantdesk created)."""
    from quantdesk.store import current_revision, database_url, downgrade, safe_url

    try:
        url = database_url(db)
        downgrade(url, revision)
        console.print(f"{safe_url(url)}: at revision {current_revision(url) or 'base'}")
    except QuantdeskError as error:
        raise _fail(error) from None


@db_app.command("current")
def db_current(db: Annotated[str | None, typer.Option(help=_DB_HELP)] = None) -> None:
    """Show the schema revision of the database."""
    from quantdesk.store import current_revision, database_url, head_revision, safe_url

    try:
        url = database_url(db)
        current = current_revision(url)
        console.print(f"{safe_url(url)}: revision {current or 'none'} (head {head_revision()})")
    except QuantdeskError as error:
        raise _fail(error) from None


report_app = typer.Typer(help="Reports from the store.", no_args_is_help=True)
app.add_typer(report_app, name="report")
burnin_app = typer.Typer(help="Burn-in acceptance of a paper day.", no_args_is_help=True)
app.add_typer(burnin_app, name="burnin")


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise QuantdeskError(f"--date {text!r}: expected YYYY-MM-DD") from None


@report_app.command("daily")
def report_daily(
    date_: Annotated[str | None, typer.Option("--date", help="Day (YYYY-MM-DD); default: newest.")] = None,
    db: Annotated[str | None, typer.Option(help=_DB_HELP)] = None,
    tz: Annotated[str, typer.Option(help="Time zone of the day.")] = "UTC",
    html: Annotated[str | None, typer.Option(help="Also write the report as HTML here.")] = None,
) -> None:
    """Signals, decisions, orders, fills, P&L, blocks by reason, OCO lifecycles, flattens of a day."""
    from quantdesk.store.burnin import report_daily as run_report

    try:
        run_report(db, _day(date_), tz, html, console=console)
    except QuantdeskError as error:
        raise _fail(error) from None


@burnin_app.command("check")
def burnin_check(
    date_: Annotated[str | None, typer.Option("--date", help="Day (YYYY-MM-DD); default: newest.")] = None,
    db: Annotated[str | None, typer.Option(help=_DB_HELP)] = None,
    tz: Annotated[str, typer.Option(help="Time zone of the day.")] = "UTC",
) -> None:
    """Evaluate a paper day's acceptance criteria; exit 0 only when every one passes."""
    from quantdesk.store.burnin import burnin_check_command

    try:
        code = burnin_check_command(db, _day(date_), tz, console=console)
    except QuantdeskError as error:
        raise _fail(error) from None
    raise typer.Exit(code)


def main() -> None:
    try:
        app()
    except QuantdeskError as error:  # pragma: no cover - commands catch their own
        errors.print(f"error: {error}")
        sys.exit(2)


__all__ = ["app", "main"]
