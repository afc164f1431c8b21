"""What `callreview run` shows on the terminal: one progress display and the run's summary;
Prefect's own log lines only with --verbose."""

from __future__ import annotations

import logging
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flows.summary import RunSummary, failure_place


class _NoTraceback(logging.Formatter):
    """Prefect logs a failed task's traceback on the console. A bad recording is an expected
    outcome whose reason the run summary lists, so the console shows the one-line message; the
    Prefect API's run logs keep the whole record."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


def quiet_prefect_console(verbose: bool) -> None:
    """The console shows one progress display and the summary; Prefect's per-task lines (and
    its failed-task tracebacks) only with --verbose. The Prefect API keeps every log line."""
    import os

    from prefect.logging.handlers import PrefectConsoleHandler

    if not verbose:  # processes this one starts (a local Dask cluster's workers) read this
        os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "CRITICAL"

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            handler.setLevel(logging.INFO if verbose else logging.CRITICAL)
            if not isinstance(handler.formatter, _NoTraceback):
                handler.setFormatter(_NoTraceback(handler.formatter))


def print_summary(console: Console, summary: RunSummary) -> None:
    console.rule("[bold]callreview run")
    if summary.note:
        console.print(escape(summary.note))
        return
    console.print(
        f"run {summary.run_id} in {summary.seconds:.0f} s, {summary.n_inputs} inputs: "
        f"{summary.n_ok} calls processed, {summary.n_skipped} already done, "
        f"{len(summary.unsettled)} not settled, {len(summary.failures)} failed"
    )
    for f in summary.failures:
        console.print(f"  [red]failed[/] {escape(failure_place(f))}: {escape(f.reason)}")
    for call_id, why in summary.unsettled:
        console.print(f"  [yellow]left for the next run[/] call {call_id!r}: {escape(why)}")
    if summary.n_remasked:
        console.print(f"{summary.n_remasked} stored calls masked again under new PII rules")
    if summary.n_reprocessed:
        console.print(
            f"{summary.n_reprocessed} stored calls transcribed again: an older transcription "
            "made them"
        )
    console.print(f"database: [bold]{escape(str(Path(summary.db).resolve()))}[/]")
    if summary.reports:
        console.print(f"team reports: [bold]{escape(summary.reports)}[/]")
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
                escape(str(r.agent_id)),
                f"{r.agitation_delta:+.2f}",
                f"{r.speech_rate_delta_cpm:+.0f}",
                f"{r.impatience_delta:+.1f}",
                f"{r.confirmation_delta:+.1f}",
                f"{r.n_early}/{r.n_current}",
            )
        console.print(table)
    console.print(
        f"next: callreview report --db {escape(summary.db)} --agent <agent_id> --out report.html"
    )
