"""The metric catalogue (pipeline/data/metrics.toml) held against the code and the docs, so
neither `CallFigures` nor docs/METRICS.md can silently drift away from it."""

from __future__ import annotations

import re
import types
import typing
from dataclasses import fields
from pathlib import Path

import pytest

from pipeline.behaviours.tables import CALL_METRICS as BEHAVIOUR_METRICS
from pipeline.catalogue import DEFAULT_PATH, CatalogueError, MetricInfo, load_catalogue, lookup
from pipeline.records import CallFigures

DOCS = Path(__file__).resolve().parents[1] / "docs" / "METRICS.md"
# Call metrics computed in pipeline/derive.py from the agent's baseline, not in CallFigures.
DERIVED_CALL_METRICS = {
    "agitation",
    "agitation_high_share",
    "agent_pitch_vs_baseline_st",
    "customer_agitation",
} | set(BEHAVIOUR_METRICS)  # service behaviours, from stored text (pipeline/behaviours/tables.py)


@pytest.fixture(scope="module")
def catalogue() -> dict[str, MetricInfo]:
    return load_catalogue(DEFAULT_PATH)


def numeric_call_figures() -> set[str]:
    hints = typing.get_type_hints(CallFigures)
    numeric = set()
    for f in fields(CallFigures):
        hint = hints[f.name]
        kinds = set(typing.get_args(hint)) if isinstance(hint, types.UnionType) else {hint}
        if kinds - {types.NoneType} <= {int, float}:
            numeric.add(f.name)
    return numeric


def test_call_figures_fields_are_found() -> None:
    names = numeric_call_figures()
    assert "call_id" not in names
    assert {"agent_speech_rate_cpm", "dead_air_count", "agent_repeat_count"} <= names


def test_every_call_metric_has_an_entry(catalogue: dict[str, MetricInfo]) -> None:
    missing = (numeric_call_figures() | DERIVED_CALL_METRICS) - set(catalogue)
    assert not missing, f"add to {DEFAULT_PATH.name}: {sorted(missing)}"


def test_every_call_entry_is_a_call_metric(catalogue: dict[str, MetricInfo]) -> None:
    call_entries = {name for name, info in catalogue.items() if info.level == "call"}
    unknown = call_entries - numeric_call_figures() - DERIVED_CALL_METRICS
    assert not unknown, f"not a CallFigures field or derived call metric: {sorted(unknown)}"


def test_docs_mention_every_entry(catalogue: dict[str, MetricInfo]) -> None:
    documented = set(re.findall(r"`([A-Za-z0-9_]+)`", DOCS.read_text(encoding="utf-8")))
    missing = set(catalogue) - documented
    assert not missing, f"document in docs/METRICS.md: {sorted(missing)}"


def test_entries_are_filled_in(catalogue: dict[str, MetricInfo]) -> None:
    for name, info in catalogue.items():
        assert info.name == name
        assert info.label and info.doc, name
        assert "\n" not in info.doc, name


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "metrics.toml"
    path.write_text(body, encoding="utf-8")
    return path


GOOD = 'label = "激动度"\nunit = "σ"\nlevel = "call"\ndoc = "x"\n'


def test_load_reads_an_entry(tmp_path: Path) -> None:
    loaded = load_catalogue(write(tmp_path, f"[agitation]\n{GOOD}direction = 1\n"))
    assert loaded == {"agitation": MetricInfo("agitation", "激动度", "σ", 1, "call", "x")}


@pytest.mark.parametrize(
    "body",
    [
        f"[m]\n{GOOD}direction = 2\n",  # not -1, 0 or +1
        f"[m]\n{GOOD}direction = true\n",  # a bool is not a direction
        f"[m]\n{GOOD}",  # direction missing
        f"[m]\n{GOOD}direction = 0\nworse = 1\n",  # unknown key
        f"[m]\n{GOOD.replace('call', 'agent')}direction = 0\n",  # unknown level
        f'[m]\n{GOOD}direction = 0\nkind = "codec"\n',  # not behaviour or recording
        "m = 1\n",  # not a table
        "[m\n",  # not TOML
    ],
)
def test_load_rejects_a_bad_file(tmp_path: Path, body: str) -> None:
    with pytest.raises(CatalogueError, match="metrics.toml"):
        load_catalogue(write(tmp_path, body))


def test_raw_loudness_and_coverage_are_recording_properties_and_never_judged(
    catalogue: dict[str, MetricInfo],
) -> None:
    recording = {name for name, info in catalogue.items() if info.kind == "recording"}
    assert {"agent_loudness_dbfs", "customer_loudness_dbfs", "agent_asr_coverage"} <= recording
    assert not any(catalogue[name].judged for name in recording)
    robust = catalogue["agent_loudness_vs_customer_db"]
    assert robust.kind == "behaviour"
    assert catalogue["agent_speech_rate_cpm"].judged


def test_lookup_falls_back_to_the_column_name(catalogue: dict[str, MetricInfo]) -> None:
    assert lookup(catalogue, "agitation").label == "激动度"
    assert lookup(catalogue, "new_figure") == MetricInfo("new_figure", "new_figure", "")
