"""Agitation on labelled real speech (CASIA, ../shared/eval/emotion): for the same speaker and
the same sentence, the angry reading must score above the neutral one."""

import importlib.util

import pytest

from tests.conftest import EVAL, ROOT, require

EMOTION = EVAL / "emotion"


@pytest.fixture(autouse=True)
def _emotion_data():
    require((EMOTION / "manifest.tsv").is_file(), "evaluation data ../shared/eval/emotion absent")


def _validator():
    spec = importlib.util.spec_from_file_location(
        "validate_agitation", ROOT / "scripts" / "validate_agitation.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_angry_scores_above_neutral_for_the_same_sentence():
    v = _validator()
    scored = v.score(v.features(EMOTION, emotions=("angry", "neutral"), max_sentences=20))
    for speaker, g in scored.groupby("agent_id"):
        angry = g[g.emotion == "angry"].set_index("sentence")["agitation"]
        neutral = g[g.emotion == "neutral"].set_index("sentence")["agitation"]
        accuracy = (angry > neutral.reindex(angry.index)).mean()
        assert accuracy >= 0.9, (speaker, accuracy)
        assert v.auc(angry.dropna().to_numpy(), neutral.dropna().to_numpy()) >= 0.9
