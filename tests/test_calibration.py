"""Calibration sessions: importing evaluators' exported files, agreement, the report's scoring
parts, the team overview and muted clips, on the small database of tests/test_report.py.

Score files are crafted here in the exact format the report page exports (scoring.js; the
browser test in tests/test_browser.py exports real ones through the page and imports them).
The expected agreement is computed independently: the reliability matrix is built from the
crafted scores themselves and handed to the `krippendorff` package.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import krippendorff
import numpy as np
import pytest

from pipeline import store
from pipeline.calibration import FORMAT, VERSION, import_file
from pipeline.report import build_report
from pipeline.report.calibration import summarise_session
from pipeline.report.index import MIN_COHORT_CALLS, page_name, write_all
from pipeline.rubric import load_rubric
from tests.test_report import AGENT, ALIGNED, CONFIG, build_db, without_clips

RUBRIC = load_rubric()
SESSION = "2026-Q4 校准"
HELD = date(2026, 11, 20)  # the session's day: its name is not a date
# (pair_id, early uid, current uid, early call, current call): the aligned answers of the db
UNITS = [
    (pair, e[0], c[0], *pair.split("~")) for pair, e, c in ALIGNED
]  # e1~c1 #1/#1, e1~c1 #3/#3, e2~c2 #1/#1
# evaluator -> unit index -> side -> item -> score; and the verdicts
SCORES = {
    "王芳": {
        0: {"early": dict(patience=5, clarity=4, politeness=5, checks_understanding=4),
            "current": dict(patience=2, clarity=3, politeness=2, checks_understanding=1)},
        1: {"early": dict(patience=4, clarity=4, politeness=4, checks_understanding=5),
            "current": dict(patience=1, clarity=2, politeness=2, checks_understanding=1)},
        2: {"early": dict(patience=5, clarity=5, politeness=5, checks_understanding=4),
            "current": dict(patience=1, clarity=3, politeness=1, checks_understanding=2)},
    },
    "李强": {
        0: {"early": dict(patience=4, clarity=4, politeness=5, checks_understanding=4),
            "current": dict(patience=3, clarity=3, politeness=3, checks_understanding=2)},
        1: {"early": dict(patience=4, clarity=5, politeness=4, checks_understanding=4),
            "current": dict(patience=2, clarity=2, politeness=1, checks_understanding=1)},
        2: {"early": dict(patience=5, clarity=4, politeness=4, checks_understanding=5),
            "current": dict(patience=1, clarity=2, politeness=2, checks_understanding=1)},
    },
    "张敏": {  # scores one answer high on everything: the one to discuss
        0: {"early": dict(patience=5, clarity=5, politeness=5, checks_understanding=5),
            "current": dict(patience=5, clarity=4, politeness=5, checks_understanding=3)},
        1: {"early": dict(patience=5, clarity=4, politeness=5, checks_understanding=4),
            "current": dict(patience=2, clarity=3, politeness=2, checks_understanding=2)},
        2: {"early": dict(patience=4, clarity=5, politeness=5, checks_understanding=5)},
    },
}  # fmt: skip
VERDICTS = {"王芳": [True, True, True], "李强": [False, True, True], "张敏": [False, True, None]}


def exported(evaluator: str, stamp: str = "2026-11-20T02:00:00.000Z") -> dict:
    """One evaluator's file, as scoring.js writes it."""
    entries = []
    for n, (pair, e_uid, c_uid, e_call, c_call) in enumerate(UNITS):
        ratings = SCORES[evaluator].get(n, {})
        entries.append(
            {
                "pair_id": pair,
                "early_call_id": e_call,
                "early_utterance_id": e_uid,
                "current_call_id": c_call,
                "current_utterance_id": c_uid,
                "early": dict(ratings.get("early", {})),  # copies: tests edit them
                "current": dict(ratings.get("current", {})),
                "drifted": VERDICTS[evaluator][n],
                "comment": "语气生硬" if n == 1 else "",
                "scored_at": stamp,
            }
        )
    return {
        "format": FORMAT,
        "version": VERSION,
        "session": SESSION,
        "evaluator": evaluator,
        "agent_id": AGENT,
        "report_generated_at": "2026-11-20 09:00 CST",
        "exported_at": stamp,
        "rubric": {"low": 1, "high": 5, "items": list(RUBRIC.keys)},
        "scores": entries,
    }


def write_json(folder: Path, doc: dict, name: str | None = None) -> Path:
    path = folder / (name or f"calibration-{doc['evaluator']}.json")
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def expected_alpha(item: str) -> float:
    """Krippendorff's alpha straight from the crafted scores: evaluators x (answer, side)."""
    units = [(n, side) for n in range(len(UNITS)) for side in ("early", "current")]
    matrix = [
        [SCORES[e].get(n, {}).get(side, {}).get(item, np.nan) for n, side in units]
        for e in sorted(SCORES)
    ]
    return krippendorff.alpha(
        reliability_data=np.array(matrix, dtype=float),
        level_of_measurement="ordinal",
        value_domain=[1, 2, 3, 4, 5],
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return build_db(tmp_path)


@pytest.fixture
def imported(db: Path, tmp_path: Path) -> Path:
    con = store.connect(db)
    for evaluator in SCORES:
        result = import_file(con, write_json(tmp_path, exported(evaluator)), RUBRIC, HELD)
        assert result.status == "imported", result.detail
    con.close()
    return db


def n_scores(db: Path) -> int:
    con = store.connect(db, read_only=True)
    try:
        return con.execute("SELECT count(*) FROM calibration_scores").fetchone()[0]
    finally:
        con.close()


def test_agreement_matches_the_library_computed_independently(imported: Path) -> None:
    con = store.connect(imported, read_only=True)
    summary = summarise_session(con, SESSION, RUBRIC)
    con.close()
    assert summary.evaluators == tuple(sorted(SCORES))
    assert summary.n_pairs == len(UNITS)
    alphas = {i.item: i for i in summary.items}
    for item in RUBRIC.keys:
        assert alphas[item].alpha == pytest.approx(expected_alpha(item), abs=1e-9), item
        assert alphas[item].level == "ordinal"
    verdicts = np.array(
        [[np.nan if v is None else float(v) for v in VERDICTS[e]] for e in sorted(SCORES)]
    )
    assert alphas["drifted"].alpha == pytest.approx(
        krippendorff.alpha(reliability_data=verdicts, level_of_measurement="nominal")
    )
    # 张敏 rated e1~c1's current answer 5 on patience where the others gave 2 and 3
    top = summary.widest[0]
    assert (top.pair_id, top.side, top.spread) == ("e1~c1", "current", 3.0)
    offsets = {(o.evaluator, o.item): o.offset for o in summary.offsets}
    assert offsets[("张敏", "patience")] > 0.5 > offsets[("王芳", "patience")]
    assert summary.pairs_to_discuss[0][:3] == ("e1~c1", 1, 1)


def test_scores_line_up_with_the_figures(imported: Path) -> None:
    con = store.connect(imported, read_only=True)
    summary = summarise_session(con, SESSION, RUBRIC)
    con.close()
    fits = {(f.item, f.figure): f for f in summary.figures}
    # the current answers carry the impatience phrases and were scored least patient
    patience = fits[("patience", "impatience_hits")]
    assert patience.n_units == 6 and patience.rho is not None and patience.rho < 0
    assert patience.as_expected is True


def test_reimporting_adds_no_rows_and_a_newer_export_replaces(db: Path, tmp_path: Path) -> None:
    con = store.connect(db)
    first = write_json(tmp_path, exported("王芳"))
    assert import_file(con, first, RUBRIC, HELD).status == "imported"
    con.close()
    n = n_scores(db)
    assert n == 3 * 8 + 3  # 8 item scores and one verdict row per answer pair

    con = store.connect(db)
    again = import_file(con, first, RUBRIC, HELD)
    copy = tmp_path / "copy.json"
    copy.write_bytes(first.read_bytes())
    same_content = import_file(con, copy, RUBRIC, HELD)
    later = exported("王芳", stamp="2026-11-21T02:00:00Z")
    later["scores"][0]["current"]["patience"] = 3  # changed their mind the next day
    newer = import_file(con, write_json(tmp_path, later, "later.json"), RUBRIC, HELD)
    older = exported("王芳", stamp="2026-11-19T02:00:00Z")
    older["scores"][0]["current"]["patience"] = 1
    stale = import_file(con, write_json(tmp_path, older, "older.json"), RUBRIC, HELD)
    patience = con.execute(
        "SELECT score FROM calibration_scores WHERE pair_id = 'e1~c1' AND early_utterance_id = 1 "
        "AND side = 'current' AND item = 'patience'"
    ).fetchall()
    con.close()
    assert again.status == same_content.status == "already imported"
    assert newer.status == stale.status == "imported"
    assert n_scores(db) == n
    assert patience == [(3,)]  # the newer score, once


BAD = {
    "not_json": (b"{ not json", "not valid JSON"),
    "not_ours": (json.dumps({"format": "other"}).encode(), "not a callreview calibration file"),
    "no_evaluator": (None, "evaluator must be a non-empty name"),
    "score_out_of_scale": (None, r"scores\[0\]\.current\.patience: score 7 is not a whole number"),
    "unknown_item": (None, r"current/empathy is not in the rubric"),
    "unknown_pair": (None, r"no aligned pair e9~c9 #1/#1 in this database"),
    "bad_time": (None, r"scores\[0\]\..*isoformat|Invalid isoformat"),
    "binary": (b"\xff\xfe\x00garbage", "not UTF-8"),
    "csv_without_columns": (b"session,evaluator\nS,E\n", "CSV header lacks"),
}


def _bad_file(kind: str, folder: Path) -> Path:
    raw, _ = BAD[kind]
    if raw is not None:
        path = folder / f"{kind}.json"
        path.write_bytes(raw)
        return path
    doc = exported("王芳")
    if kind == "no_evaluator":
        doc["evaluator"] = "  "
    elif kind == "score_out_of_scale":
        doc["scores"][0]["current"]["patience"] = 7
    elif kind == "unknown_item":
        doc["scores"][1]["current"]["empathy"] = 3
    elif kind == "unknown_pair":
        doc["scores"][2]["pair_id"] = "e9~c9"
    elif kind == "bad_time":
        doc["scores"][0]["scored_at"] = "yesterday"
    return write_json(folder, doc, f"{kind}.json")


@pytest.mark.parametrize("kind", sorted(BAD))
def test_malformed_file_is_refused_with_its_reason(db: Path, tmp_path: Path, kind: str) -> None:
    con = store.connect(db)
    result = import_file(con, _bad_file(kind, tmp_path), RUBRIC, HELD)
    con.close()
    assert result.status == "refused"
    assert __import__("re").search(BAD[kind][1], result.detail), result.detail
    assert n_scores(db) == 0


def test_csv_export_imports_like_json(db: Path, tmp_path: Path) -> None:
    doc = exported("李强")
    lines = [
        "session,evaluator,agent_id,pair_id,early_call_id,early_utterance_id,current_call_id,"
        "current_utterance_id,side,item,score,comment,scored_at"
    ]
    for e in doc["scores"]:
        base = f"{SESSION},李强,{AGENT},{e['pair_id']},{e['early_call_id']},"
        base += f"{e['early_utterance_id']},{e['current_call_id']},{e['current_utterance_id']}"
        for side in ("early", "current"):
            for item, score in e[side].items():
                lines.append(f"{base},{side},{item},{score},,{e['scored_at']}")
        verdict = "" if e["drifted"] is None else int(e["drifted"])
        lines.append(f'{base},pair,drifted,{verdict},"{e["comment"]}, 一句",{e["scored_at"]}')
    path = tmp_path / "calibration.csv"
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    con = store.connect(db)
    result = import_file(con, path, RUBRIC, HELD)
    comments = con.execute(
        "SELECT comment FROM calibration_scores WHERE item = 'drifted' ORDER BY pair_id"
    ).fetchall()
    con.close()
    assert result.status == "imported" and result.n_scores == 3 * 8 + 3
    assert (", 一句",) in comments


def test_agreement_view_lists_spread_next_to_the_figures(imported: Path) -> None:
    con = store.connect(imported, read_only=True)
    rows = con.execute(
        "SELECT n_evaluators, min_score, max_score, spread, call_id, utterance_id, "
        "impatience_hits FROM calibration_agreement WHERE session = ? AND pair_id = 'e1~c1' "
        "AND early_utterance_id = 3 AND side = 'current' AND item = 'patience'",
        [SESSION],
    ).fetchall()
    con.close()
    assert rows == [(3, 1, 2, 1, "c1", 3, 1)]


def test_report_has_scoring_forms_and_the_agreement_section(imported: Path) -> None:
    con = store.connect(imported, read_only=True)
    html = build_report(con, AGENT, CONFIG, session="S1")
    con.close()
    page = without_clips(html)
    assert page.count('<form class="score"') == len(ALIGNED)
    assert page.count('class="play-both"') == len(ALIGNED)
    assert page.count('type="radio"') == len(ALIGNED) * (2 * len(RUBRIC.keys) * 5 + 2)
    agreement = page.split('id="agreement"', 1)[1]
    assert SESSION in agreement and "张敏" in agreement
    assert f"{expected_alpha('patience'):.2f}" in agreement
    assert '"session": "S1"' in page  # the page's own session for new scores


def test_cli_imports_and_summarises(db: Path, tmp_path: Path) -> None:
    files = [str(write_json(tmp_path, exported(e))) for e in SCORES]
    bad = _bad_file("score_out_of_scale", tmp_path)
    cli = [sys.executable, "-m", "callreview.cli", "calibrate"]
    out = subprocess.run(
        [*cli, "import", *files, str(bad), "--db", str(db), "--date", HELD.isoformat()],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 1, out.stdout + out.stderr  # one file refused
    assert out.stdout.count("imported ") == 3 and "refused" in out.stdout
    assert "score 7 is not a whole number" in out.stdout
    summary = subprocess.run(
        [*cli, "summary", "--session", SESSION, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "COLUMNS": "200"},
    )
    assert summary.returncode == 0, summary.stderr
    assert f"{expected_alpha('clarity'):.2f}" in summary.stdout
    assert "Widest spread" in summary.stdout and "张敏" in summary.stdout


def test_overview_lists_every_agent_and_marks_thin_cohorts(db: Path, tmp_path: Path) -> None:
    paths = write_all(db, tmp_path / "site", CONFIG)
    names = sorted(p.name for p in paths)
    assert names == ["A007.html", "B001.html", "index.html"]
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert 'href="A007.html"' in index and 'href="B001.html"' in index
    assert f"early 0 &lt; {MIN_COHORT_CALLS}" in index  # B001: shown, marked, not hidden
    assert index.count('<svg class="spark"') == 2
    assert "+1.5" in index  # A007's agitation delta (-0.05 -> 1.45)
    assert "http://" not in index and "https://" not in index
    agent_page = (tmp_path / "site" / "A007.html").read_text(encoding="utf-8")
    assert 'href="index.html"' in agent_page


def test_page_names_are_safe_and_unique() -> None:
    taken: set[str] = set()
    assert page_name("A01", taken) == "A01.html"
    assert page_name("a01", taken) == "a01-2.html"  # case-insensitive file systems
    assert page_name("../x/y", taken) == "x_y.html"
    assert page_name("index", taken) == "index-2.html"


def test_cli_report_all_writes_the_overview(db: Path, tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "callreview.cli", "report"]
    out = subprocess.run(
        [*cli, "--all", "--out", str(tmp_path / "site"), "--db", str(db), "--session", "S9"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "2 reports and the overview" in out.stdout
    assert (tmp_path / "site" / "index.html").is_file()
    assert '"session": "S9"' in (tmp_path / "site" / "A007.html").read_text(encoding="utf-8")
    both = subprocess.run(
        [*cli, "--all", "--agent", AGENT, "--db", str(db)], capture_output=True, text=True
    )
    assert both.returncode == 1 and "either --agent ID or --all" in both.stderr
