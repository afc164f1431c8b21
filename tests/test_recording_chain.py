"""Only the agent's drift is called drift: the same calls stored through two recording chains
(an old PBX's G.711 at 8 kHz, 6 dB down; a newer chain's 16 kHz FLAC, 8 dB louder, brighter,
limited) as one agent's early and current calls, through `callreview run`. The chain moves raw
loudness by a huge effect; no figure the drift table judges as behaviour moves by a medium
effect (|d| >= 0.5). scripts/chain_check.py builds the calls and prints the whole table."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from chain_check import build_folder, drift, run  # noqa: E402

sys.path.pop(0)

N_CALLS = 4  # sample calls, each stored through both chains: 8 calls transcribed


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    work = tmp_path_factory.mktemp("chain")
    build_folder(work / "calls", N_CALLS)
    run(work / "calls", work / "chain.duckdb")
    return {m.metric: m for m in drift(work / "chain.duckdb")}


def test_the_chain_change_is_real_raw_loudness_moves_by_a_huge_effect(moved):
    loud = moved["agent_loudness_dbfs"]
    assert loud.delta > 10 and loud.effect_size > 2, loud
    assert loud.kind == "recording"


def test_no_figure_judged_as_behaviour_moves_by_a_medium_effect(moved):
    judged = [m for m in moved.values() if m.kind == "behaviour" and m.direction != 0]
    assert len(judged) > 30
    assert all(m.effect_size is not None for m in judged if m.metric == "agitation")
    medium = [m for m in judged if m.effect_size is not None and abs(m.effect_size) >= 0.5]
    assert not medium, medium


def test_loudness_against_the_customer_holds(moved):
    robust = moved["agent_loudness_vs_customer_db"]
    assert abs(robust.delta) < 1.5 and abs(robust.effect_size) < 0.5, robust
