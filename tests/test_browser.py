"""The calibration report and the team overview in a real browser: headless Chromium (Debian's
package, scripts/setup.sh installs it) driven by Playwright, opening the pages from disk.

Checked like a QA lead would use them: no console error, no request leaves the page, every clip
player loads and seeks to its utterance, "play early, then current" plays both in turn, three
evaluators score through the forms and export their files, which `callreview calibrate import`
then loads and whose agreement matches the library's own figure. Screenshots go to
test-artifacts/ (gitignored). Skipped, with the reason, where no browser can be started.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from datetime import date
from pathlib import Path

import pytest

from pipeline import store
from pipeline.calibration import import_file
from pipeline.coaching.refresh import refresh_outcomes
from pipeline.report import write_report
from pipeline.report.calibration import summarise_session
from pipeline.report.clips import CLIP_PAD_S
from pipeline.report.index import write_all
from tests.conftest import ROOT, require
from tests.test_calibration import (
    HELD,
    RUBRIC,
    SCORES,
    UNITS,
    VERDICTS,
    expected_alpha,
    exported,
    write_json,
)
from tests.test_report import AGENT, ALIGNED, CALL_S, CONFIG, build_db

ARTIFACTS = ROOT / "test-artifacts"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SESSION = "browser-session"


def _chromium() -> str:
    path = os.environ.get("CALLREVIEW_TEST_CHROMIUM") or next(
        (p for p in map(shutil.which, BROWSERS) if p), None
    )
    require(
        path is not None and Path(path).exists(),
        "no Chromium on this machine (scripts/setup.sh installs Debian's `chromium`; "
        "or set CALLREVIEW_TEST_CHROMIUM)",
    )
    return path


@pytest.fixture(scope="module")
def playwright():
    require(
        importlib.util.find_spec("playwright") is not None,
        "the playwright package is not installed (.[dev] extra)",
    )
    import playwright.sync_api as sync

    with sync.sync_playwright() as p:
        yield p


class Page:
    """One browser with a fresh profile, recording console errors and every request."""

    def __init__(self, playwright, profile: Path, downloads: Path) -> None:  # noqa: ANN001
        try:
            self.context = playwright.chromium.launch_persistent_context(
                str(profile),
                executable_path=_chromium(),
                headless=True,
                args=FLAGS,
                accept_downloads=True,
                downloads_path=str(downloads),
                viewport={"width": 1280, "height": 900},
                locale="zh-CN",
            )
        except Exception as e:  # a browser that cannot start is the machine's, not the page's
            require(False, f"Chromium could not be started: {str(e).splitlines()[0]}")
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def open(self, path: Path) -> None:
        self.page.goto(path.as_uri())
        self.page.wait_for_load_state("load")

    def outside_requests(self) -> list[str]:
        """Requests for anything but the opened files and the page's own data: clips."""
        return [u for u in self.requests if not u.startswith(("file://", "data:", "blob:"))]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, Path]:
    db = build_db(tmp_path)
    write_all(db, tmp_path / "site", CONFIG, session=SESSION)
    return db, tmp_path / "site"


def _score_through_the_page(page, evaluator: str, out: Path) -> Path:  # noqa: ANN001
    """Enter `evaluator`'s SCORES and VERDICTS in the forms and export them as JSON."""
    page.once("dialog", lambda d: d.accept(evaluator))  # the name is asked at the first score
    forms = page.locator("form.score")
    assert forms.count() == len(UNITS)
    for n, (pair, e_uid, c_uid, *_) in enumerate(UNITS):
        form = page.locator(
            f'form.score[data-pair="{pair}"][data-early-uid="{e_uid}"][data-current-uid="{c_uid}"]'
        )
        for side, ratings in SCORES[evaluator].get(n, {}).items():
            for item, score in ratings.items():
                form.locator(f'input[name="{side}.{item}"][value="{score}"] + span').click()
        if VERDICTS[evaluator][n] is not None:
            form.locator(
                f'input[name="drifted"][value="{"yes" if VERDICTS[evaluator][n] else "no"}"]'
            ).check()
        if n == 1:
            form.locator("textarea").fill("语气生硬，打断客户")
    assert page.locator("#cr-evaluator").input_value() == evaluator
    with page.expect_download() as download:
        page.locator("#cr-export-json").click()
    path = out / download.value.suggested_filename
    download.value.save_as(path)
    return path


def test_agent_page_in_a_real_browser(playwright, site, tmp_path: Path) -> None:
    db, folder = site
    ARTIFACTS.mkdir(exist_ok=True)
    b = Page(playwright, tmp_path / "profile-0", tmp_path)
    try:
        b.open(folder / f"{AGENT}.html")
        page = b.page
        assert "坐席校准报告" in page.title()
        # every clip player loads, lasts its utterance plus lead-in and tail, and seeks to it
        players = page.locator("audio.clip")
        assert players.count() == 2 * len(ALIGNED)
        page.wait_for_function(
            "[...document.querySelectorAll('audio.clip')].every(a => a.readyState >= 1)"
        )
        clips = page.evaluate(
            """async () => {
                 const out = [];
                 for (const a of document.querySelectorAll('audio.clip')) {
                   const lead = Number(a.dataset.lead);
                   const seeked = new Promise(r => a.addEventListener('seeked', r, {once: true}));
                   a.currentTime = lead;
                   await seeked;
                   out.push({duration: a.duration, at: a.currentTime, lead,
                             start: Number(a.dataset.start), end: Number(a.dataset.end),
                             clock: a.parentNode.querySelector('.at').textContent});
                 }
                 return out;
               }"""
        )
        for c in clips:
            want = min(c["end"] + CLIP_PAD_S, CALL_S) - max(c["start"] - CLIP_PAD_S, 0.0)
            assert c["duration"] == pytest.approx(want, abs=0.1)
            assert c["at"] == pytest.approx(c["lead"], abs=0.05)
            minutes, seconds = divmod(c["start"], 60)
            assert c["clock"] == f"▸ {int(minutes)}:{seconds:04.1f}"  # the utterance's call time
        # "play early, then current": the early clip plays, and when it ends the current one
        turn = page.locator("ol.turns > li").first
        turn.locator("button.play-both").click()
        page.wait_for_function(
            "() => { const a = document.querySelector('ol.turns > li audio.clip.early');"
            " return !a.paused && a.currentTime > 0; }"
        )
        page.evaluate(
            "() => { const a = document.querySelector('ol.turns > li audio.clip.early');"
            " a.currentTime = a.duration - 0.05; }"
        )
        page.wait_for_function(
            "() => { const li = document.querySelector('ol.turns > li');"
            " const c = li.querySelector('audio.clip.current');"
            " return li.querySelector('audio.clip.early').ended && !c.paused && c.currentTime > 0; }"
        )
        page.evaluate("() => document.querySelectorAll('audio').forEach(a => a.pause())")

        # one evaluator scores; the scores survive a reload; the export is a file
        exported = _score_through_the_page(page, "王芳", tmp_path)
        assert (
            page.locator("#cr-progress").text_content()
            == f"已评分 {len(UNITS)} / {len(UNITS)} scored"
        )
        page.locator("form.score").nth(1).scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "report-scoring.png"))
        page.reload()
        assert page.locator("form.score.done").count() == len(UNITS)
        assert (
            page.locator("form.score").nth(1).locator("textarea").input_value()
            == "语气生硬，打断客户"
        )
        with page.expect_download() as csv_download:
            page.locator("#cr-export-csv").click()
        csv_path = tmp_path / csv_download.value.suggested_filename
        csv_download.value.save_as(csv_path)
        page.evaluate("window.scrollTo(0, 0)")  # the sticky scoring bar back at the top
        page.screenshot(path=str(ARTIFACTS / "report-full.png"), full_page=True)
        assert b.errors == [] and b.outside_requests() == []
    finally:
        b.close()
    assert exported.name == f"calibration-{SESSION}-{AGENT}-王芳.json"
    con = store.connect(db)
    try:
        for path in (exported, csv_path):
            result = import_file(con, path, RUBRIC, HELD)
            assert result.status == "imported", result.detail
        assert result.n_scores == 0  # the CSV repeats the JSON's scores: nothing new
        n = con.execute("SELECT count(*) FROM calibration_scores").fetchone()[0]
    finally:
        con.close()
    assert n == sum(len(r) for v in SCORES["王芳"].values() for r in v.values()) + len(UNITS)


def test_three_evaluators_score_through_the_page(playwright, site, tmp_path: Path) -> None:
    db, folder = site
    files = []
    for n, evaluator in enumerate(SCORES):
        b = Page(playwright, tmp_path / f"profile-{n + 1}", tmp_path)
        try:
            b.open(folder / f"{AGENT}.html")
            files.append(_score_through_the_page(b.page, evaluator, tmp_path))
            assert b.errors == [] and b.outside_requests() == []
        finally:
            b.close()
    con = store.connect(db)
    try:
        for path in files:
            assert import_file(con, path, RUBRIC, HELD).status == "imported"
        assert all(import_file(con, p, RUBRIC, HELD).status == "already imported" for p in files)
        summary = summarise_session(con, SESSION, RUBRIC)
    finally:
        con.close()
    alphas = {i.item: i.alpha for i in summary.items}
    for item in RUBRIC.keys:
        assert alphas[item] == pytest.approx(expected_alpha(item), abs=1e-9)
    # the report written now shows the session's agreement
    page_path = write_report(db, AGENT, tmp_path / "after.html", CONFIG, session=SESSION)
    b = Page(playwright, tmp_path / "profile-4", tmp_path)
    try:
        b.open(page_path)
        section = b.page.locator("#agreement")
        assert f"{expected_alpha('patience'):.2f}" in section.inner_text()
        section.scroll_into_view_if_needed()
        section.screenshot(path=str(ARTIFACTS / "report-agreement.png"))
        assert b.errors == [] and b.outside_requests() == []
    finally:
        b.close()


def test_team_overview_in_a_real_browser(playwright, site, tmp_path: Path) -> None:
    _, folder = site
    ARTIFACTS.mkdir(exist_ok=True)
    b = Page(playwright, tmp_path / "profile-5", tmp_path)
    try:
        b.open(folder / "index.html")
        page = b.page
        rows = page.locator("#agents tbody tr")
        assert rows.count() == 2
        assert "too few calls: early 0 < 2, current 0 < 2" in rows.nth(1).inner_text()
        agitation = page.locator("#agents thead tr:last-child th").nth(5)
        agitation.click()  # ascending: B001 has no figures and sorts last either way
        agitation.click()
        assert agitation.get_attribute("aria-sort") == "descending"
        assert rows.first.locator("td").first.inner_text().startswith(AGENT)
        page.screenshot(path=str(ARTIFACTS / "team-overview.png"), full_page=True)
        page.locator(f'a[href="{AGENT}.html"]').click()
        page.wait_for_load_state("load")
        assert page.url.endswith(f"/{AGENT}.html")
        assert b.errors == [] and b.outside_requests() == []
    finally:
        b.close()


def test_agent_page_shows_the_coaching_timeline_with_its_windows(
    playwright, tmp_path: Path
) -> None:
    """A session held between the agent's current calls: its page shows each outcome figure
    over the calendar with the event marked and the early, before and after windows shaded
    where the outcome's windows are, each call's dot inside its window; the overview lists the
    outcome in its sortable column."""
    db = build_db(tmp_path)
    held = date(2024, 12, 8)  # between current calls c1 (12-01) and c2 (12-15)
    con = store.connect(db)
    try:
        for evaluator in SCORES:
            path = write_json(tmp_path, exported(evaluator))
            assert import_file(con, path, RUBRIC, held).status == "imported"
        refresh_outcomes(con, CONFIG.coaching)
    finally:
        con.close()
    write_all(db, tmp_path / "site", CONFIG)
    ARTIFACTS.mkdir(exist_ok=True)
    b = Page(playwright, tmp_path / "profile-c", tmp_path)
    try:
        b.open(tmp_path / "site" / f"{AGENT}.html")
        chart = b.page.locator('#coaching svg.timeline[data-figure="agitation"]')
        chart.scroll_into_view_if_needed()
        assert chart.is_visible()
        shapes = chart.evaluate(
            """svg => ({
                 bands: [...svg.querySelectorAll('rect.band')].map(r => {
                   const b = r.getBoundingClientRect();
                   return {cls: r.getAttribute('class'), first: r.dataset.first,
                           last: r.dataset.last, left: b.left, right: b.right, width: b.width};
                 }),
                 events: [...svg.querySelectorAll('line.event')].map(l => ({
                   date: l.dataset.date, x: l.getBoundingClientRect().left})),
                 dots: [...svg.querySelectorAll('circle')].map(c => ({
                   call: c.querySelector('title').textContent.split(' ')[0],
                   x: c.getBoundingClientRect().left + c.getBoundingClientRect().width / 2})),
               })"""
        )
        bands = {s["cls"].split()[-1]: s for s in shapes["bands"]}
        assert (bands["band-early"]["first"], bands["band-early"]["last"]) == (
            "2024-01-20",
            "2024-02-10",
        )
        assert (bands["band-before"]["first"], bands["band-before"]["last"]) == (
            "2024-11-08",
            "2024-12-07",
        )
        assert (bands["band-after"]["first"], bands["band-after"]["last"]) == (
            "2024-12-09",
            "2025-01-07",
        )
        assert all(s["width"] > 1 for s in shapes["bands"])
        (event,) = shapes["events"]
        assert event["date"] == str(held)
        assert bands["band-before"]["right"] <= event["x"] + 1 <= bands["band-after"]["left"] + 2
        dots = {d["call"]: d["x"] for d in shapes["dots"]}
        for call, band in (("e1", "early"), ("e2", "early"), ("c1", "before"), ("c2", "after")):
            assert (
                bands[f"band-{band}"]["left"] - 4
                <= dots[call]
                <= bands[f"band-{band}"]["right"] + 4
            )
        row = b.page.locator("#coaching table.outcomes tr", has_text="激动度 agitation")
        cells = row.locator("td").all_inner_texts()  # event, figure, early, before, after, ...
        assert cells[0] == str(held) and cells[3].endswith("(1)") and cells[4].endswith("(1)")
        assert cells[-1] == "too few calls yet"  # one call a window: no verdict yet
        b.page.locator("#coaching").screenshot(path=str(ARTIFACTS / "report-coaching.png"))
        assert b.errors == [] and b.outside_requests() == []
        # the overview: the coaching column sorts, blanks (uncoached agents) last
        b.open(tmp_path / "site" / "index.html")
        head = b.page.locator("#agents thead th", has_text="coaching outcome")
        head.click()
        cells = b.page.locator("#agents tbody td.coaching").all_inner_texts()
        assert cells[0] == f"{held} · too few calls yet" and cells[-1] == "–"
        assert b.errors == [] and b.outside_requests() == []
    finally:
        b.close()
