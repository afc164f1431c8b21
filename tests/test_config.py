"""Settings: one documented defaults file, overridden by a user file, CALLREVIEW_* variables and
flags, read once into frozen typed records; mistakes are refused with a clear reason."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from pipeline import config as cfg


def test_defaults_load_into_typed_frozen_records():
    c = cfg.default_config()
    assert c.tone.dead_air_min_s == 2.5 and isinstance(c.asr.batch_size, int)
    assert c.asr.fallback_temperatures == (0.2, 0.4, 0.6, 0.8, 1.0)
    assert "我已经说过了" in c.lexicon.phrase_list("impatience")
    assert "原路退回" in c.lexicon.jargon and c.asr.hallucinations
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.tone.dead_air_min_s = 3.0  # type: ignore[misc]


def test_every_knob_in_the_defaults_file_is_a_field_and_the_reverse():
    """The defaults file documents every knob once: no field without an entry, no dead entry."""
    with open(cfg.DEFAULTS_FILE, "rb") as f:
        raw = tomllib.load(f)
    c = cfg.default_config()
    for section, values in raw.items():
        if section in ("lexicon", "agitation"):  # file paths, read into their own records
            continue
        fields = {f.name for f in dataclasses.fields(getattr(c, section))}
        fields -= {"hallucinations", "redaction"}  # filled from [lexicon]; redact.py defaults
        assert set(values) == fields, section


def test_user_file_then_environment_then_flags(tmp_path):
    user = tmp_path / "callreview.toml"
    user.write_text(
        '[tone]\ndead_air_min_s = 3.0\novertalk_min_s = 0.5\n[run]\ndb = "x.duckdb"\n',
        encoding="utf-8",
    )
    assert cfg.find_config_file(tmp_path, {}) == user
    env = {
        "CALLREVIEW_TONE__OVERTALK_MIN_S": "0.7",
        "CALLREVIEW_DEVICE": "cpu",
        "CALLREVIEW_UNRELATED": "ignored",
    }
    c = cfg.load_config(user, env, {"run": {"device": None, "model": "small"}}, cwd=tmp_path)
    assert c.tone.dead_air_min_s == 3.0  # file
    assert c.tone.overtalk_min_s == 0.7  # environment beats the file
    assert c.run.device == "cpu" and c.run.model == "small"  # None flag keeps; flag wins
    assert c.run.db == tmp_path / "x.duckdb"
    assert c.tone.interrupt_min_s == 1.0  # untouched default


def test_word_list_paths_are_read_against_the_file_that_names_them(tmp_path):
    (tmp_path / "mine.txt").write_text("专属术语\n# a comment\n", encoding="utf-8")
    user = tmp_path / "callreview.toml"
    user.write_text('[lexicon]\njargon = "mine.txt"\n', encoding="utf-8")
    c = cfg.load_config(user, {}, cwd=Path("/"))
    assert c.lexicon.jargon == ("专属术语",)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[tone]\nnope = 1\n", "unknown key 'nope' in [tone]"),
        ("[nosuch]\na = 1\n", "unknown section [nosuch]"),
        ("[tone]\ndead_air_min_s = 'long'\n", "tone.dead_air_min_s"),
        ("[tone\n", "not valid TOML"),
    ],
)
def test_mistakes_are_refused_with_the_reason(tmp_path, text, message):
    user = tmp_path / "callreview.toml"
    user.write_text(text, encoding="utf-8")
    with pytest.raises(cfg.ConfigError, match=re.escape(message)):
        cfg.load_config(user, {}, cwd=tmp_path)


def test_missing_word_list_is_a_clear_error(tmp_path):
    with pytest.raises(cfg.ConfigError, match="word list not found"):
        cfg.load_config(None, {"CALLREVIEW_JARGON": str(tmp_path / "none.txt")}, cwd=tmp_path)
