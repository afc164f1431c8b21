"""The service-behaviour settings, read once from the files [lexicon] names: the patterns, the
reciting exemption list and the optional knowledge-base folder of the centre's scripts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.behaviours.recite import ReciteOptions, read_exempt
from pipeline.behaviours.spec import BehaviourSpec, BehaviourSpecError, load_behaviours


@dataclass(frozen=True)
class BehaviourSettings:
    spec: BehaviourSpec
    recite_exempt: tuple[str, ...]  # fixed wording cut out before reciting is measured
    knowledge_base: str | None  # a folder of .txt/.md scripts; None: other calls only
    recite: ReciteOptions


def load_behaviour_settings(lexicon: Mapping[str, Any]) -> BehaviourSettings:
    """From the [lexicon] keys behaviours, recite_exempt, knowledge_base, recite_ngram (paths
    resolved). Raises BehaviourSpecError (file:line) for a wrong pattern file, a missing file or
    folder."""
    patterns, recite_exempt = lexicon["behaviours"], lexicon["recite_exempt"]
    knowledge_base = lexicon["knowledge_base"]
    try:
        recite_ngram = int(lexicon["recite_ngram"])
    except ValueError:
        raise BehaviourSpecError("[lexicon] recite_ngram: not a whole number") from None
    try:
        exempt = read_exempt(Path(recite_exempt))
    except FileNotFoundError:
        raise BehaviourSpecError(f"{recite_exempt}:0: reciting exemption list not found") from None
    if knowledge_base and not Path(knowledge_base).is_dir():
        raise BehaviourSpecError(f"{knowledge_base}:0: knowledge-base folder not found")
    if recite_ngram < 4:
        raise BehaviourSpecError("[lexicon] recite_ngram: at least 4 characters")
    return BehaviourSettings(
        spec=load_behaviours(Path(patterns)),
        recite_exempt=exempt,
        knowledge_base=knowledge_base or None,
        recite=ReciteOptions(n=recite_ngram),
    )
