// Calibration scoring and playback for the calibration report (pipeline/report/__init__.py).
// Inlined into the page: no network, no libraries. Scores stay in this browser (localStorage,
// keyed by session and agent) until the evaluator exports them as one JSON or CSV file, which
// `callreview calibrate import` loads (format: pipeline/calibration.py).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("cr-data").textContent);
  var NAME_KEY = "callreview.evaluator";
  var memory = {}; // used when the browser refuses localStorage for files opened from disk
  var byId = function (id) { return document.getElementById(id); };
  var nameInput = byId("cr-evaluator");
  var sessionInput = byId("cr-session");
  var forms = Array.prototype.slice.call(document.querySelectorAll("form.score"));

  function storageGet(key) {
    try { return window.localStorage.getItem(key); } catch (e) { return memory[key] || null; }
  }
  function storageSet(key, value) {
    try { window.localStorage.setItem(key, value); } catch (e) { memory[key] = value; }
  }
  function session() { return sessionInput.value.trim() || data.session; }
  function scoresKey() { return "callreview.scores." + session() + "." + data.agent_id; }
  function loadScores() {
    try { return JSON.parse(storageGet(scoresKey()) || "{}"); } catch (e) { return {}; }
  }
  function saveScores(scores) { storageSet(scoresKey(), JSON.stringify(scores)); }
  function say(text) { byId("cr-message").textContent = text; }

  function unitKey(form) {
    return form.dataset.pair + "|" + form.dataset.earlyUid + "|" + form.dataset.currentUid;
  }
  function hasContent(entry) {
    return Object.keys(entry.early).length + Object.keys(entry.current).length > 0 ||
      entry.drifted !== null || entry.comment !== "";
  }

  // The evaluator's name is asked once, at the first score, and remembered; exporting without
  // one asks again.
  var asked = false;
  function evaluator(ask, again) {
    var name = nameInput.value.trim();
    if (!name && ask && (again || !asked)) {
      asked = true;
      name = (window.prompt("评分人姓名 Your name (evaluator):") || "").trim();
      nameInput.value = name;
      if (name) { storageSet(NAME_KEY, name); }
    }
    return name;
  }

  function readForm(form) {
    var entry = {
      pair_id: form.dataset.pair,
      early_call_id: form.dataset.earlyCall,
      early_utterance_id: Number(form.dataset.earlyUid),
      current_call_id: form.dataset.currentCall,
      current_utterance_id: Number(form.dataset.currentUid),
      early: {}, current: {}, drifted: null, comment: form.elements.comment.value.trim()
    };
    data.rubric.items.forEach(function (item) {
      ["early", "current"].forEach(function (side) {
        var checked = form.querySelector('input[name="' + side + "." + item.key + '"]:checked');
        if (checked) { entry[side][item.key] = Number(checked.value); }
      });
    });
    var verdict = form.querySelector('input[name="drifted"]:checked');
    if (verdict) { entry.drifted = verdict.value === "yes"; }
    return entry;
  }

  function fillForm(form, entry) {
    form.reset();
    if (!entry) { return; }
    ["early", "current"].forEach(function (side) {
      Object.keys(entry[side] || {}).forEach(function (key) {
        var input = form.querySelector(
          'input[name="' + side + "." + key + '"][value="' + entry[side][key] + '"]');
        if (input) { input.checked = true; }
      });
    });
    if (entry.drifted !== null && entry.drifted !== undefined) {
      form.querySelector('input[name="drifted"][value="' + (entry.drifted ? "yes" : "no") + '"]')
        .checked = true;
    }
    form.elements.comment.value = entry.comment || "";
  }

  function markForm(form, entry) {
    var n = entry ? Object.keys(entry.early).length + Object.keys(entry.current).length : 0;
    var total = 2 * data.rubric.items.length;
    var done = entry && n === total && entry.drifted !== null;
    form.classList.toggle("done", Boolean(done));
    form.querySelector(".status").textContent =
      done ? "✓ 已评分 scored" : n ? "评了 " + n + " / " + total + " 项 partly scored" : "";
  }

  function refresh() {
    var scores = loadScores();
    var done = 0;
    forms.forEach(function (form) {
      var entry = scores[unitKey(form)];
      fillForm(form, entry);
      markForm(form, entry);
      if (form.classList.contains("done")) { done += 1; }
    });
    byId("cr-progress").textContent = "已评分 " + done + " / " + forms.length + " scored";
  }

  function onChange(event) {
    var form = event.target.form;
    if (!form || !form.classList.contains("score")) { return; }
    if (!evaluator(true, false)) {
      say("请先填写评分人 Enter your name first: scores are exported under it.");
    }
    var scores = loadScores();
    var entry = readForm(form);
    entry.scored_at = new Date().toISOString();
    if (hasContent(entry)) { scores[unitKey(form)] = entry; } else { delete scores[unitKey(form)]; }
    saveScores(scores);
    markForm(form, entry);
    var done = forms.filter(function (f) { return f.classList.contains("done"); }).length;
    byId("cr-progress").textContent = "已评分 " + done + " / " + forms.length + " scored";
  }

  function entries() {
    var scores = loadScores();
    return Object.keys(scores).sort().map(function (k) { return scores[k]; }).filter(hasContent);
  }

  function csvCell(value) {
    var text = value === null || value === undefined ? "" : String(value);
    return /[",\n\r]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  function asCsv(name, list) {
    var head = ["session", "evaluator", "agent_id", "pair_id", "early_call_id",
      "early_utterance_id", "current_call_id", "current_utterance_id", "side", "item", "score",
      "comment", "scored_at"];
    var rows = [head];
    list.forEach(function (e) {
      var base = [session(), name, data.agent_id, e.pair_id, e.early_call_id,
        e.early_utterance_id, e.current_call_id, e.current_utterance_id];
      ["early", "current"].forEach(function (side) {
        Object.keys(e[side]).sort().forEach(function (key) {
          rows.push(base.concat([side, key, e[side][key], "", e.scored_at]));
        });
      });
      if (e.drifted !== null || e.comment) {
        var verdict = e.drifted === null ? "" : e.drifted ? 1 : 0;
        rows.push(base.concat(["pair", "drifted", verdict, e.comment, e.scored_at]));
      }
    });
    return "\ufeff" + rows.map(function (r) { return r.map(csvCell).join(","); }).join("\r\n") +
      "\r\n";
  }

  function download(kind) {
    var name = evaluator(true, true);
    if (!name) { say("导出前请填写评分人 Enter your name to export."); return; }
    var list = entries();
    if (!list.length) { say("还没有评分 Nothing scored yet."); return; }
    var body, type;
    if (kind === "csv") {
      body = asCsv(name, list);
      type = "text/csv;charset=utf-8";
    } else {
      body = JSON.stringify({
        format: data.format, version: data.version, session: session(), evaluator: name,
        agent_id: data.agent_id, report_generated_at: data.generated_at,
        exported_at: new Date().toISOString(),
        rubric: { low: data.rubric.low, high: data.rubric.high,
          items: data.rubric.items.map(function (i) { return i.key; }) },
        scores: list
      }, null, 1);
      type = "application/json";
    }
    var safe = function (s) { return s.replace(/[^\w\u4e00-\u9fff.-]+/g, "_"); };
    var link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([body], { type: type }));
    link.download = "calibration-" + safe(session()) + "-" + safe(data.agent_id) + "-" +
      safe(name) + "." + kind;
    document.body.appendChild(link);
    link.click();
    link.remove();
    say("已导出 exported " + list.length + " 对 pairs → " + link.download);
  }

  // Playback: every clip shows where it is in the call; "play early, then current" plays the
  // early answer from its lead-in, then the current one.
  function callClock(seconds) {
    var m = Math.floor(seconds / 60);
    var s = (seconds - 60 * m).toFixed(1);
    return m + ":" + (s.length < 4 ? "0" + s : s);
  }
  function showTime(audio) {
    var at = audio.parentNode.querySelector(".at");
    if (at) {
      at.textContent = "▸ " + callClock(Number(audio.dataset.clipStart) + audio.currentTime);
    }
  }
  function stopAll(except) {
    Array.prototype.forEach.call(document.querySelectorAll("audio"), function (a) {
      if (except.indexOf(a) < 0) { a.pause(); }
    });
  }
  function playBoth(button) {
    var turn = button.closest("li");
    var early = turn.querySelector("audio.clip.early");
    var current = turn.querySelector("audio.clip.current");
    stopAll([early, current].filter(Boolean));
    var startCurrent = function () {
      if (current) { current.currentTime = 0; current.play(); }
    };
    if (!early) { startCurrent(); return; }
    early.addEventListener("ended", startCurrent, { once: true });
    early.currentTime = 0;
    early.play();
  }

  document.addEventListener("change", onChange);
  document.addEventListener("input", function (event) {
    if (event.target.name === "comment") { onChange(event); }
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.play-both");
    if (button) { playBoth(button); }
  });
  Array.prototype.forEach.call(document.querySelectorAll("audio.clip"), function (audio) {
    audio.addEventListener("timeupdate", function () { showTime(audio); });
    audio.addEventListener("seeked", function () { showTime(audio); });
  });
  nameInput.addEventListener("change", function () {
    storageSet(NAME_KEY, nameInput.value.trim());
    say("");
  });
  sessionInput.addEventListener("change", refresh);
  byId("cr-export-json").addEventListener("click", function () { download("json"); });
  byId("cr-export-csv").addEventListener("click", function () { download("csv"); });
  byId("cr-clear").addEventListener("click", function () {
    if (window.confirm("清除本页全部评分？ Clear every score of this page in this browser?")) {
      saveScores({});
      refresh();
    }
  });
  nameInput.value = storageGet(NAME_KEY) || "";
  refresh();
  window.callreviewScoring = { entries: entries, session: session }; // for tests and the console
})();
