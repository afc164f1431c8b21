"""`callreview report` and `report --all` run as a user runs them (subprocess) on a real run's
database, and the figures each page shows read back and compared with the database."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "callreview.cli"]
DRIFT_ROW = re.compile(
    r'<tr class="v-[a-z]+ l-[a-z]+">\s*<td>.*?<code>(?P<metric>[a-z0-9_]+)</code>.*?</td>\s*'
    r'<td class="num">(?P<early>[^<]*)</td>\s*<td class="num">(?P<current>[^<]*)</td>\s*'
    r'<td class="num"><span class="arrow [a-z]+">[^<]*</span>\s*(?P<delta>[^<]*)</td>\s*'
    r'<td class="num">(?P<d>[^<]*)</td>\s*<td class="num">(?P<n>[^<]*)</td>',
    re.DOTALL,
)


def _shown(text: str) -> tuple[float, float] | None:
    """A figure as printed, and half a unit of its last printed digit (its rounding)."""
    text = html.unescape(text).strip()
    if not re.fullmatch(r"[+-]?\d+(\.\d+)?", text):
        return None
    decimals = len(text.partition(".")[2])
    return float(text), 0.5 * 10**-decimals + 1e-9


def _close(text: str, value: float | None) -> bool:
    shown = _shown(text)
    if value is None or value != value:  # missing in the database: shown as a placeholder
        return shown is None
    return shown is not None and abs(shown[0] - value) <= shown[1]


def _report(args: list[str], db: Path, cwd: Path) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [*CLI, "report", "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def test_the_agent_page_shows_the_databases_drift_figures(flow_run, db_con, tmp_path):
    page = tmp_path / "A01.html"
    _report(["--agent", "A01", "--out", str(page)], flow_run[2], tmp_path)
    rows = {m["metric"]: m for m in DRIFT_ROW.finditer(page.read_text(encoding="utf-8"))}
    drift = {
        r[0]: r[1:]
        for r in db_con.execute(
            "SELECT metric, early_mean, current_mean, delta, effect_size, n_early, n_current "
            "FROM agent_drift WHERE agent_id = 'A01'"
        ).fetchall()
    }
    assert set(rows) == set(drift)  # every drift figure is on the page, and nothing else
    for metric, (early, current, delta, d, n_early, n_current) in drift.items():
        row = rows[metric]
        assert _close(row["early"], early), (metric, row["early"], early)
        assert _close(row["current"], current), (metric, row["current"], current)
        assert _close(row["delta"], delta), (metric, row["delta"], delta)
        assert _close(row["d"], d), (metric, row["d"], d)
        assert row["n"].strip() == f"{n_early} / {n_current}", metric
    # the ordering promise: the first row is a change in the concerning direction
    first = next(iter(DRIFT_ROW.finditer(page.read_text(encoding="utf-8"))))
    assert 'class="v-worse' in first.group(0)


def test_the_team_overview_counts_each_agents_calls_as_the_database_does(
    flow_run, db_con, tmp_path
):
    out = tmp_path / "site"
    _report(["--all", "--out", str(out)], flow_run[2], tmp_path)
    index = (out / "index.html").read_text(encoding="utf-8")
    expected = db_con.execute(
        "SELECT agent_id, count(*) FILTER (status = 'ok'), count(*) FILTER (cohort = 'early'), "
        "count(*) FILTER (cohort = 'current') FROM calls WHERE agent_id LIKE 'A0%' GROUP BY 1"
    ).fetchall()
    assert expected
    for agent, n_ok, n_early, n_current in expected:
        row = re.search(
            rf'<a href="[^"]*">{agent}</a>.*?<td class="num" data-sort="(\d+)">.*?'
            rf'<td class="num" data-sort="(\d+)">.*?<td class="num" data-sort="(\d+)">',
            index,
            re.DOTALL,
        )
        assert row, agent
        assert tuple(map(int, row.groups())) == (n_ok, n_early, n_current), agent
        assert (out / f"{agent}.html").is_file() or any(out.glob(f"*{agent}*.html"))


@pytest.mark.parametrize("agent", ["A01"])
def test_a_report_for_an_unknown_agent_is_refused_in_one_line(flow_run, tmp_path, agent):
    out = subprocess.run(
        [*CLI, "report", "--db", str(flow_run[2]), "--agent", agent + "-nobody"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:"), out.stderr


def test_the_agent_page_warns_of_uncertain_speakers_and_mixed_transcriptions(flow_run, tmp_path):
    """A mono call whose agent and customer may be swapped (speaker_attribution.low_confidence)
    is named on the agent page, and a drift table made from calls transcribed by different
    versions is said to be so; the real run's page says neither where the database does not."""
    import shutil

    import duckdb

    clean = tmp_path / "clean.html"
    _report(["--agent", "A01", "--out", str(clean)], flow_run[2], tmp_path)
    db = tmp_path / "marked.duckdb"
    shutil.copy(flow_run[2], db)
    con = duckdb.connect(str(db))
    flagged_before = con.execute(
        "SELECT count(*) FROM speaker_attribution a JOIN calls c USING (call_id) "
        "WHERE c.agent_id = 'A01' AND a.low_confidence"
    ).fetchone()[0]
    mixed_before = con.execute(
        "SELECT count(*) FROM agent_drift WHERE agent_id = 'A01' AND mixed_versions"
    ).fetchone()[0]
    (call_id,) = con.execute(
        "SELECT min(call_id) FROM calls WHERE agent_id = 'A01' AND status = 'ok'"
    ).fetchone()
    con.execute("UPDATE speaker_attribution SET low_confidence = true WHERE call_id = ?", [call_id])
    con.execute("UPDATE agent_drift SET mixed_versions = true WHERE agent_id = 'A01'")
    con.close()
    marked = tmp_path / "marked.html"
    _report(["--agent", "A01", "--out", str(marked)], db, tmp_path)

    page = marked.read_text(encoding="utf-8")
    warning = re.search(r'<p class="warn" id="uncertain-speakers">(.*?)</p>', page, re.DOTALL)
    assert warning is not None and call_id in warning.group(1)
    assert 'id="mixed-versions"' in page
    clean_page = clean.read_text(encoding="utf-8")
    assert ('id="uncertain-speakers"' in clean_page) == (flagged_before > 0)
    assert ('id="mixed-versions"' in clean_page) == (mixed_before > 0)
