"""`callreview calibrate`: import evaluators' exported score files, and summarise a session's
agreement (docs/CONTRACTS.md, "Calibration sessions").

The commands are built by `make_app`, which the main CLI calls with its own settings reader and
error exit, so both share one way of reading settings and failing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline.config import Config

if TYPE_CHECKING:  # the heavy imports wait until a command runs
    import pandas as pd

    from pipeline.agreement import Summary
    from pipeline.rubric import Rubric

console = Console()

ConfigFor = Callable[..., Config]  # cli._config: (config_file, **flags) -> Config
Fail = Callable[[str], None]  # cli._fail: prints the error and exits

RubricOption = Annotated[
    Path | None,
    typer.Option("--rubric", help="Rubric file (default: pipeline/data/rubric.toml)."),
]


def _rubric(path: Path | None, fail: Fail) -> Rubric:
    from pipeline.rubric import DEFAULT_RUBRIC, RubricError, load_rubric

    try:
        return load_rubric(path or DEFAULT_RUBRIC)
    except RubricError as e:
        fail(str(e))
        raise  # unreachable: fail exits


def _day(text: str, fail: Fail) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"--date {text!r} is not a date (YYYY-MM-DD)")
        raise  # unreachable: fail exits


def print_outcomes(frame: pd.DataFrame) -> None:
    """An agent's coaching outcomes, one line per event and figure."""
    from pipeline.report import fmt

    t = Table(title="Coaching outcomes (after - before, minus uncoached agents' change)")
    for col in ("agent", "event", "figure", "before", "after", "calls", "did", "interval", "d"):
        t.add_column(col)
    t.add_column("verdict")
    for r in frame.itertuples():
        t.add_row(
            escape(str(r.agent_id)),
            str(r.event_date),
            str(r.figure),
            fmt.num(r.before_mean),
            fmt.num(r.after_mean),
            f"{r.n_before}/{r.n_after}",
            fmt.num(r.did, signed=True),
            f"{fmt.num(r.ci_low, signed=True)} .. {fmt.num(r.ci_high, signed=True)}",
            fmt.num(r.effect_size, signed=True),
            str(r.verdict),
        )
    console.print(t)


def print_fit(ranks: list, rules: list) -> None:
    """`calibrate fit`'s two tables: figures against scores, thresholds against verdicts."""
    from pipeline.report import fmt

    t = Table(
        title="Figures against evaluators' scores, all sessions (Spearman, 95% CI over pairs)"
    )
    for col in ("item", "figure", "rubric expects", "rho", "interval", "answers", "pairs"):
        t.add_column(col)
    for r in ranks:
        interval = (
            f"{fmt.num(r.low, signed=True)} .. {fmt.num(r.high, signed=True)}"
            if r.low is not None
            else fmt.MISSING
        )
        expects = {1: "+", -1: "-", None: ""}[r.expected]
        t.add_row(r.item, r.figure, expects, fmt.num(r.rho, signed=True), interval,
                  str(r.n_answers), str(r.n_pairs))  # fmt: skip
    console.print(t)
    t = Table(title="Rule thresholds against drifted current calls (suggestions, not applied)")
    for col in ("rule", "metric", "in force", "agreement", "suggested", "cv agreement", "cv kappa"):
        t.add_column(col)
    t.add_column("calls (drifted)")
    for f in rules:
        suggested = fmt.MISSING if f.suggested is None else f"{f.op} {fmt.num(f.suggested)}"
        t.add_row(
            f"{f.rule} {escape(f.label)}",
            f.metric,
            f"{f.op} {fmt.num(f.in_force)}",
            fmt.num(f.agreement_in_force),
            suggested,
            fmt.num(f.agreement_suggested),
            fmt.num(f.kappa_suggested, signed=True),
            f"{f.n_calls} ({f.n_drifted}){' ' + f.note if f.note else ''}",
        )
    console.print(t)
    console.print(
        "agreement: balanced accuracy (1.0 perfect, 0.5 chance) of the flag against the calls "
        "most evaluators found drifted; cv: the threshold chosen on 4/5 of the calls, scored "
        "on the rest"
    )


def print_summary(summary: Summary, rubric: Rubric) -> None:
    from pipeline.report import fmt
    from pipeline.report.calibration import SIDE_LABEL

    console.rule(f"[bold]calibration session {escape(summary.session)}")
    console.print(
        f"{len(summary.evaluators)} evaluators ({escape(', '.join(summary.evaluators))}), "
        f"{summary.n_pairs} aligned answer pairs scored"
    )
    t = Table(title="Inter-rater agreement per item (Krippendorff's alpha)")
    for col in ("item", "alpha", "level", "answers", "evaluators", "mean spread", "note"):
        t.add_column(col)
    for i in summary.items:
        alpha = fmt.num(i.alpha) if i.alpha is not None else fmt.MISSING
        t.add_row(
            i.label,
            alpha,
            i.level,
            str(i.n_units),
            str(i.n_evaluators),
            fmt.num(i.mean_spread),
            i.note,
        )
    console.print(t)
    keys = list(rubric.keys)
    t = Table(title="Each evaluator's offset from the rest of the group (score points)")
    t.add_column("evaluator")
    for k in keys:
        t.add_column(k)
    by = {(o.evaluator, o.item): o.offset for o in summary.offsets}
    for e in summary.evaluators:
        t.add_row(escape(e), *(fmt.num(by.get((e, k)), signed=True) for k in keys))
    console.print(t)
    if summary.widest:
        t = Table(title="Widest spread: discuss these first")
        for col in ("pair", "answer", "item", "spread", "scores"):
            t.add_column(col)
        for s in summary.widest:
            t.add_row(
                f"{s.pair_id} #{s.early_utterance_id}/#{s.current_utterance_id}",
                SIDE_LABEL.get(s.side, s.side),
                s.item,
                fmt.num(s.spread),
                escape(", ".join(f"{e} {v}" for e, v in s.scores)),
            )
        console.print(t)
    if summary.pairs_to_discuss:
        console.print("pairs by mean spread over items and sides:")
        for p, e, c, v in summary.pairs_to_discuss:
            console.print(f"  {p} #{e}/#{c}: {v:.2f}")
    t = Table(title="Group scores vs callreview's figures (Spearman rank correlation)")
    for col in ("item", "figure", "expected", "rho", "p", "answers", "as expected"):
        t.add_column(col)
    for f in summary.figures:
        ok = {True: "yes", False: "NO", None: "–"}[f.as_expected]
        t.add_row(
            f.item,
            f.figure,
            "+" if f.expected > 0 else "-",
            fmt.num(f.rho, signed=True),
            fmt.MISSING if f.p_value is None else f"{f.p_value:.2g}",
            str(f.n_units),
            ok,
        )
    console.print(t)


def make_app(config_for: ConfigFor, fail: Fail) -> typer.Typer:
    app = typer.Typer(
        help="Calibration sessions: import evaluators' scores, summarise their agreement.",
        no_args_is_help=True,
    )

    @app.command("import")
    def import_scores(
        files: Annotated[list[Path], typer.Argument(help="Exported score files (JSON or CSV).")],
        db: Annotated[Path | None, typer.Option("--db", help="DuckDB file.")] = None,
        rubric_file: RubricOption = None,
        config_file: Annotated[Path | None, typer.Option("--config")] = None,
        when: Annotated[
            str | None,
            typer.Option(
                "--date",
                help="The day the session was held (YYYY-MM-DD); needed when the session's "
                "name does not begin with a date.",
            ),
        ] = None,
    ) -> None:
        """Load evaluators' exported score files into calibration_scores.

        A malformed file is refused with its reason (nothing of it is stored); a file imported
        before is skipped. Each agent scored gets a coaching event on the session's date.
        Exit status 1 when any file was refused."""
        from pipeline.calibration import import_file
        from pipeline.coaching.refresh import refresh_outcomes
        from pipeline.store import StoreLockedError, connect

        config = config_for(config_file, run={"db": db})
        rubric = _rubric(rubric_file, fail)
        held = _day(when, fail) if when else None
        try:
            con = connect(config.run.db)
        except StoreLockedError as e:
            fail(str(e))
            return
        refused, coached = 0, set()
        try:
            for path in files:
                r = import_file(con, path, rubric, held)
                colour = {"imported": "green", "refused": "red"}.get(r.status, "yellow")
                console.print(f"[{colour}]{r.status}[/] {escape(r.path)}: {escape(r.detail)}")
                refused += r.status == "refused"
                coached |= set(r.agents)
                if r.agents:
                    console.print(
                        f"  coaching event on {r.event_date}: {escape(', '.join(r.agents))}"
                    )
            if coached:
                refresh_outcomes(con, config.coaching, sorted(coached))
        finally:
            con.close()
        if refused:
            raise typer.Exit(1)

    @app.command("session")
    def session(
        agent: Annotated[str, typer.Option("--agent", help="The agent who was coached.")],
        when: Annotated[str, typer.Option("--date", help="The day of the session (YYYY-MM-DD).")],
        name: Annotated[
            str | None, typer.Option("--session", help="A name for it (default: none).")
        ] = None,
        db: Annotated[Path | None, typer.Option("--db", help="DuckDB file.")] = None,
        config_file: Annotated[Path | None, typer.Option("--config")] = None,
    ) -> None:
        """Record a coaching event (a calibration session, a one-to-one) for an agent on a day,
        and show its outcomes so far (docs/METRICS.md, "Coaching outcomes")."""
        from pipeline.coaching.records import CoachingEvent
        from pipeline.coaching.refresh import refresh_outcomes
        from pipeline.store import StoreLockedError, connect
        from pipeline.store import coaching as db_coaching

        config = config_for(config_file, run={"db": db})
        day = _day(when, fail)
        try:
            con = connect(config.run.db)
        except StoreLockedError as e:
            fail(str(e))
            return
        try:
            if not db_coaching.has_agent(con, agent):
                fail(f"no calls of agent {agent!r} in {config.run.db}")
            new = db_coaching.save_events(
                con, [CoachingEvent(agent, day, "command", name, datetime.now())]
            )
            console.print(
                f"{'recorded' if new else 'already recorded'}: coaching event for "
                f"{escape(agent)} on {day}"
            )
            print_outcomes(refresh_outcomes(con, config.coaching, [agent]))
        finally:
            con.close()

    @app.command("fit")
    def fit(
        db: Annotated[Path | None, typer.Option("--db", help="DuckDB file.")] = None,
        rubric_file: RubricOption = None,
        config_file: Annotated[Path | None, typer.Option("--config")] = None,
    ) -> None:
        """Over every imported session: which figures agree with the evaluators' scores, and
        the rule-flag thresholds that best separate the calls they found drifted. Printed as
        suggestions beside the thresholds in force; nothing is applied."""
        from pipeline.fit.ranks import rank_fits
        from pipeline.fit.thresholds import drifted_calls, fit_rules
        from pipeline.store import StoreLockedError, connect
        from pipeline.store import calibration as db_calibration

        config = config_for(config_file, run={"db": db})
        rubric = _rubric(rubric_file, fail)
        try:
            con = connect(config.run.db, read_only=True)
        except (StoreLockedError, FileNotFoundError) as e:
            fail(str(e))
            return
        try:
            if db_calibration.sessions(con).empty:
                fail("no calibration scores imported yet: `callreview calibrate import FILE`")
            ranks = rank_fits(db_calibration.all_agreement(con), rubric)
            labels = drifted_calls(db_calibration.drift_verdicts(con))
            rules = config.lexicon.rules
            values = db_calibration.call_values(con, list(labels.index), [r.metric for r in rules])
        finally:
            con.close()
        print_fit(ranks, fit_rules(labels, values, rules))

    @app.command("summary")
    def summary(
        session: Annotated[
            str | None, typer.Option("--session", help="Session name (default: the latest).")
        ] = None,
        agent: Annotated[str | None, typer.Option("--agent", help="Only this agent.")] = None,
        db: Annotated[Path | None, typer.Option("--db", help="DuckDB file.")] = None,
        rubric_file: RubricOption = None,
        config_file: Annotated[Path | None, typer.Option("--config")] = None,
    ) -> None:
        """Agreement of a session: alpha per item, evaluator offsets, what to discuss first,
        and how the scores line up with callreview's figures."""
        from pipeline.report.calibration import summarise_session
        from pipeline.store import StoreLockedError, connect
        from pipeline.store import calibration as db_calibration

        config = config_for(config_file, run={"db": db})
        rubric = _rubric(rubric_file, fail)
        try:
            con = connect(config.run.db, read_only=True)
        except (StoreLockedError, FileNotFoundError) as e:
            fail(str(e))
            return
        try:
            known = db_calibration.sessions(con, agent)
            if known.empty:
                fail("no calibration scores imported yet: `callreview calibrate import FILE`")
            name = session or str(known["session"].iloc[0])
            if name not in set(known["session"]):
                fail(f"unknown session {name!r}; known: {', '.join(known['session'])}")
            print_summary(summarise_session(con, name, rubric, agent), rubric)
        finally:
            con.close()

    return app
