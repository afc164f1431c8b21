"""What a run tells the people who watch it: the summary the CLI prints and the markdown artifact
each run publishes in the Prefect UI (the same figures, the same top drift list)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from pipeline.records import Failure

ARTIFACT_KEY = "callreview-run"  # one artifact key: the UI shows its history run by run


@dataclass
class RunSummary:
    run_id: str | None  # None: nothing was read (the manifest was still being written)
    db: str
    n_inputs: int
    n_ok: int
    n_skipped: int
    failures: list[Failure] = field(default_factory=list)
    unsettled: list[tuple[str, str]] = field(default_factory=list)  # (call_id, why): next run
    n_hashed: int = 0  # stored calls whose file had to be read (size or mtime changed)
    n_remasked: int = 0  # stored calls whose text was masked again under new PII rules
    n_reprocessed: int = 0  # stored calls transcribed again: an older transcription made them
    derived_rows: dict[str, int] = field(default_factory=dict)
    derived_agents: list[str] | None = None  # agents whose derived rows were recomputed; None: all
    top_drift: pd.DataFrame | None = None
    seconds: float = 0.0
    audio_s: float = 0.0  # audio reviewed in this run (processed calls)
    processed: list[str] = field(default_factory=list)  # call_ids stored ok by this run
    reports: str | None = None  # the team report site, when [run] reports_dir rebuilt it
    note: str | None = None  # why the run read nothing, when it did not


def failure_place(f: Failure) -> str:
    return ", ".join(
        part
        for part in (
            f"line {f.row}" if f.row else "",
            f"call {f.call_id!r}" if f.call_id else "",
            f"path {f.path!r}" if f.path else "",
        )
        if part
    )


def state_message(summary: RunSummary) -> str:
    """The flow run's state message: what an automation alerting on runs needs in one line."""
    if summary.note:
        return summary.note
    parts = [f"{summary.n_ok} processed", f"{summary.n_skipped} already done"]
    if summary.unsettled:
        parts.append(f"{len(summary.unsettled)} not settled (left for the next run)")
    if summary.failures:
        parts.append(f"{len(summary.failures)} input(s) failed: see the callreview-run artifact")
    return ", ".join(parts)


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _scope(agents: list[str] | None) -> str:
    if agents is None:
        return "every agent"
    return f"{len(agents)} agent(s)" if agents else "no agent (no call changed)"


def summary_markdown(summary: RunSummary) -> str:
    """The run's Prefect artifact: counts, failures with reasons, throughput, top drift,
    where the database and the reports are."""
    hours = summary.audio_s / 3600
    speed = summary.audio_s / summary.seconds if summary.seconds else 0.0
    lines = [
        f"# callreview run {summary.run_id or '(nothing read)'}",
        "",
        "| | |",
        "|---|---|",
        f"| inputs (manifest rows) | {summary.n_inputs} |",
        f"| calls processed | {summary.n_ok} |",
        f"| already done (skipped) | {summary.n_skipped} |",
        f"| not settled (next run) | {len(summary.unsettled)} |",
        f"| failed | {len(summary.failures)} |",
        f"| audio reviewed | {hours:.2f} h in {summary.seconds:.0f} s ({speed:.0f}x realtime) |",
        f"| stored files re-read to check them | {summary.n_hashed} |",
        f"| stored calls masked again under new PII rules | {summary.n_remasked} |",
        f"| stored calls transcribed again (older transcription) | {summary.n_reprocessed} |",
        f"| derived tables recomputed for | {_scope(summary.derived_agents)} |",
        f"| database | `{summary.db}` |",
    ]
    if summary.reports:
        lines.append(f"| team reports | `{summary.reports}` |")
    if summary.note:
        lines += ["", f"**{_cell(summary.note)}**"]
    if summary.failures:
        lines += ["", "## Failed inputs", "", "| where | stage | reason |", "|---|---|---|"]
        lines += [
            f"| {_cell(failure_place(f))} | {f.stage} | {_cell(f.reason)} |"
            for f in summary.failures
        ]
    if summary.unsettled:
        lines += ["", "## Not settled (left for the next run)", "", "| call | why |", "|---|---|"]
        lines += [f"| {_cell(c)} | {_cell(why)} |" for c, why in summary.unsettled]
    if summary.processed:
        lines += ["", "## Processed calls", "", ", ".join(f"`{c}`" for c in summary.processed)]
    top = summary.top_drift
    if top is not None and len(top):
        lines += [
            "",
            "## Top drifting agents (agitation early -> current)",
            "",
            "| agent | agitation Δ | speech rate Δ (字/分钟) | impatience Δ | confirmations Δ "
            "| early/current calls |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {_cell(r.agent_id)} | {r.agitation_delta:+.2f} | {r.speech_rate_delta_cpm:+.0f} "
            f"| {r.impatience_delta:+.1f} | {r.confirmation_delta:+.1f} "
            f"| {r.n_early}/{r.n_current} |"
            for r in top.itertuples()
        ]
    return "\n".join(lines) + "\n"
