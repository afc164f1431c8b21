"""Importing evaluators' exported score files (docs/CONTRACTS.md, "Calibration sessions").

The calibration report lets each evaluator score the aligned answer pairs in the browser and
export one file: JSON (the page's own format, FORMAT below) or CSV (one row per score, the
calibration_scores columns). A file is checked whole before anything is stored: a malformed
one is refused with the first problems found and where they are, and nothing of it is kept.
The same file imported twice adds nothing (its content hash is remembered).

A session is a coaching event for each agent it scored (docs/CONTRACTS.md, "Coaching
outcomes"), on the session's date: the name's when it begins with one (2026-11-20, 2026-11-20
团队A), else the date given on import; a file of a session without a date is refused.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from pipeline.coaching.records import CoachingEvent
from pipeline.records import CalibrationImport, CalibrationScore
from pipeline.rubric import VERDICT, Rubric
from pipeline.store import calibration as db
from pipeline.store import coaching as coaching_db

FORMAT = "callreview-calibration"
VERSION = 1
CSV_COLUMNS = (
    "session",
    "evaluator",
    "agent_id",
    "pair_id",
    "early_call_id",
    "early_utterance_id",
    "current_call_id",
    "current_utterance_id",
    "side",
    "item",
    "score",
    "comment",
    "scored_at",
)
MAX_NAME = 200  # session and evaluator names are labels, not documents
SHOWN_PROBLEMS = 5


class CalibrationFileError(ValueError):
    """An exported file that cannot be imported; the message says why and where."""


@dataclass(frozen=True)
class ImportResult:
    path: str
    status: str  # imported | already imported | refused
    detail: str
    n_scores: int = 0
    agents: tuple[str, ...] = ()  # agents scored, each with a coaching event on event_date
    event_date: date | None = None


@dataclass(frozen=True)
class Draft:
    """One score as read from a file, before it is checked against the rubric and database."""

    where: str  # position in the file, for error messages
    pair_id: str
    early_utterance_id: Any
    current_utterance_id: Any
    side: str
    item: str
    score: Any
    comment: str | None
    scored_at: Any


def _name(value: Any, what: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > MAX_NAME:
        raise CalibrationFileError(f"{what} must be a non-empty name of at most {MAX_NAME} chars")
    return text


def _json_drafts(raw: dict[str, Any]) -> tuple[str, str, list[Draft]]:
    if raw.get("format") != FORMAT:
        raise CalibrationFileError(
            f'not a callreview calibration file (needs "format": "{FORMAT}")'
        )
    if raw.get("version") != VERSION:
        raise CalibrationFileError(f"unsupported version {raw.get('version')!r}; need {VERSION}")
    session, evaluator = (
        _name(raw.get("session"), "session"),
        _name(raw.get("evaluator"), "evaluator"),
    )
    entries = raw.get("scores")
    if not isinstance(entries, list):
        raise CalibrationFileError('"scores" must be a list')
    drafts = []
    for n, e in enumerate(entries):
        if not isinstance(e, dict):
            raise CalibrationFileError(f"scores[{n}] must be an object")
        base = {
            "pair_id": e.get("pair_id"),
            "early_utterance_id": e.get("early_utterance_id"),
            "current_utterance_id": e.get("current_utterance_id"),
            "scored_at": e.get("scored_at"),
        }
        for side in ("early", "current"):
            ratings = e.get(side) or {}
            if not isinstance(ratings, dict):
                raise CalibrationFileError(f"scores[{n}].{side} must be an object")
            for item, score in ratings.items():
                drafts.append(
                    Draft(
                        f"scores[{n}].{side}.{item}",
                        **base,
                        side=side,
                        item=item,
                        score=score,
                        comment=None,
                    )
                )
        verdict, comment = e.get(VERDICT), e.get("comment") or None
        if verdict is not None and not isinstance(verdict, bool):
            raise CalibrationFileError(f"scores[{n}].{VERDICT} must be true, false or null")
        if comment is not None and not isinstance(comment, str):
            raise CalibrationFileError(f"scores[{n}].comment must be text")
        if verdict is not None or comment:
            score = None if verdict is None else int(verdict)
            drafts.append(
                Draft(
                    f"scores[{n}]", **base, side="pair", item=VERDICT, score=score, comment=comment
                )
            )
    return session, evaluator, drafts


def _csv_drafts(text: str) -> tuple[str, str, list[Draft]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = set(CSV_COLUMNS) - set(reader.fieldnames or ())
    if missing:
        raise CalibrationFileError(f"CSV header lacks {', '.join(sorted(missing))}")
    rows = list(reader)
    names = {(r["session"].strip(), r["evaluator"].strip()) for r in rows}
    if len(names) != 1:
        raise CalibrationFileError("a CSV file holds exactly one session and one evaluator")
    session, evaluator = next(iter(names))
    drafts = [
        Draft(
            where=f"line {n + 2}",
            pair_id=r["pair_id"],
            early_utterance_id=r["early_utterance_id"],
            current_utterance_id=r["current_utterance_id"],
            side=r["side"],
            item=r["item"],
            score=r["score"] or None,
            comment=r["comment"] or None,
            scored_at=r["scored_at"],
        )
        for n, r in enumerate(rows)
    ]
    return _name(session, "session"), _name(evaluator, "evaluator"), drafts


def read_file(data: bytes) -> tuple[str, str, list[Draft]]:
    """(session, evaluator, drafts) of an exported file; CalibrationFileError when unreadable."""
    try:
        text = data.decode("utf-8-sig")  # the page writes CSV with a BOM, for Excel
    except UnicodeDecodeError:
        raise CalibrationFileError("not UTF-8 text") from None
    if text.lstrip().startswith("{"):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise CalibrationFileError(f"not valid JSON: {e}") from None
        session, evaluator, drafts = _json_drafts(raw)
    else:
        session, evaluator, drafts = _csv_drafts(text)
    if not drafts:
        raise CalibrationFileError("the file holds no scores")
    return session, evaluator, drafts


def _timestamp(value: Any) -> datetime:
    """ISO 8601; an aware time (the page writes UTC) becomes local time like every stored time."""
    stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return stamp.astimezone().replace(tzinfo=None) if stamp.tzinfo else stamp


def _score(d: Draft, rubric: Rubric) -> int | None:
    low, high = (0, 1) if d.item == VERDICT else (rubric.low, rubric.high)
    if d.score is None:
        if d.item == VERDICT:
            return None
        raise ValueError("no score")
    value = float(d.score)
    if not value.is_integer() or not low <= value <= high:
        raise ValueError(f"score {d.score!r} is not a whole number from {low} to {high}")
    return int(value)


def check(
    drafts: Iterable[Draft],
    session: str,
    evaluator: str,
    sha: str,
    rubric: Rubric,
    con: duckdb.DuckDBPyConnection,
) -> list[CalibrationScore]:
    """Drafts -> score records, every problem collected; CalibrationFileError naming the first."""
    drafts = list(drafts)
    known = db.aligned_keys(con, sorted({str(d.pair_id) for d in drafts}))
    pairs = {
        (r.pair_id, int(r.early_utterance_id), int(r.current_utterance_id)): r
        for r in known.itertuples()
    }
    sides = {"early": set(rubric.keys), "current": set(rubric.keys), "pair": {VERDICT}}
    problems, out, seen = [], [], set()
    for d in drafts:
        try:
            key = (str(d.pair_id), int(d.early_utterance_id), int(d.current_utterance_id))
            if key not in pairs:
                raise ValueError(f"no aligned pair {key[0]} #{key[1]}/#{key[2]} in this database")
            if d.side not in sides or d.item not in sides[d.side]:
                raise ValueError(f"{d.side}/{d.item} is not in the rubric ({rubric.source})")
            if (*key, d.side, d.item) in seen:
                raise ValueError("scored twice in this file")
            seen.add((*key, d.side, d.item))
            p = pairs[key]
            out.append(
                CalibrationScore(
                    session=session,
                    evaluator=evaluator,
                    agent_id=p.agent_id,
                    pair_id=key[0],
                    early_call_id=p.early_call_id,
                    early_utterance_id=key[1],
                    current_call_id=p.current_call_id,
                    current_utterance_id=key[2],
                    side=d.side,  # type: ignore[arg-type]
                    item=d.item,
                    score=_score(d, rubric),
                    comment=d.comment,
                    scored_at=_timestamp(d.scored_at),
                    source_sha256=sha,
                )
            )
        except (TypeError, ValueError) as e:
            problems.append(f"{d.where}: {e}")
    if problems:
        more = len(problems) - SHOWN_PROBLEMS
        tail = f"; and {more} more" if more > 0 else ""
        raise CalibrationFileError("; ".join(problems[:SHOWN_PROBLEMS]) + tail)
    return out


def session_date(session: str) -> date | None:
    """The date a session's name begins with (YYYY-MM-DD), or None."""
    try:
        return date.fromisoformat(session.strip()[:10])
    except ValueError:
        return None


def import_file(
    con: duckdb.DuckDBPyConnection, path: Path, rubric: Rubric, held: date | None = None
) -> ImportResult:
    """Check and store one exported file, and a coaching event for each agent it scored on the
    session's date (`held`, else the date the session's name begins with); never raises for a
    bad file, says why instead."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return ImportResult(str(path), "refused", f"cannot read: {e.strerror or e}")
    sha = hashlib.sha256(data).hexdigest()
    when = db.imported_at(con, sha)
    if when is not None:
        return ImportResult(str(path), "already imported", f"same content imported at {when}")
    try:
        session, evaluator, drafts = read_file(data)
        event_date = held or session_date(session)
        if event_date is None:
            raise CalibrationFileError(
                f"session {session!r} is not a date (YYYY-MM-DD): give the day it was held "
                "with --date, so its coaching outcomes can be measured"
            )
        scores = check(drafts, session, evaluator, sha, rubric, con)
    except CalibrationFileError as e:
        return ImportResult(str(path), "refused", str(e))
    now = datetime.now()
    record = CalibrationImport(sha, Path(path).name, session, evaluator, len(scores), now)
    agents = tuple(sorted({s.agent_id for s in scores}))
    written = db.save_import(con, record, scores)
    coaching_db.save_events(
        con, [CoachingEvent(a, event_date, "session", session, now) for a in agents]
    )
    kept = (
        f", {len(scores) - written} already stored (same or newer)" if written < len(scores) else ""
    )
    detail = f"session {session!r}, evaluator {evaluator!r}: {written} scores{kept}"
    return ImportResult(str(path), "imported", detail, written, agents, event_date)
