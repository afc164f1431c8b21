"""The [coaching] settings: how a coaching event's outcome is measured (docs/METRICS.md,
"Coaching outcomes"). Light on purpose (pydantic only): pipeline.config imports it."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass as settings


@settings(config=ConfigDict(extra="forbid", frozen=True))
class CoachingOptions:
    """[coaching] of callreview.toml, which documents each knob and its default."""

    window_days: Annotated[int, Field(ge=1)] = 30  # before and after windows, in days
    min_calls: Annotated[int, Field(ge=2)] = 90  # calls a window needs for a verdict
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.97  # of the bootstrap interval
    resamples: Annotated[int, Field(ge=100)] = 2000  # bootstrap resamples
    seed: int = 17  # the bootstrap's random seed: the same data gives the same interval
    figures: tuple[str, ...] = (
        "agitation",
        "agent_speech_rate_cpm",
        "agent_impatience_per_min",
        "agent_politeness_per_min",
        "agent_confirmation_count",
        "customer_confusion_count",
        "agent_interruptions",
    )
