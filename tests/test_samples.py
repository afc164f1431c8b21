"""The committed sample calls: format per the brief, and their generator's scripts match them."""

import csv
import json
import tomllib

import soundfile as sf

from tests.conftest import ROOT, SAMPLES


def test_sample_calls_are_stereo_8k_one_to_two_minutes():
    with open(SAMPLES / "manifest.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert (
        len(rows) == 18
        and len({r["agent_id"] for r in rows}) == 3
        and len({r["topic"] for r in rows}) == 3
    )
    for r in rows:
        info = sf.info(SAMPLES / r["path"])
        assert (info.channels, info.samplerate) == (2, 8000)
        assert 55 <= info.duration <= 120, (r["path"], info.duration)
    assert sum(p.stat().st_size for p in SAMPLES.iterdir()) < 30 * 2**20


def test_dialogue_scripts_match_the_ground_truth_of_the_committed_audio():
    truth = json.loads((SAMPLES / "ground_truth.json").read_text(encoding="utf-8"))
    with open(ROOT / "scripts" / "sample_dialogues.toml", "rb") as f:
        scripts = {c["call_id"]: [t[1] for t in c["turns"]] for c in tomllib.load(f)["calls"]}
    for call in truth["calls"]:
        assert [t["text"] for t in call["turns"]] == scripts[call["call_id"]], call["call_id"]
