"""Speaker attribution for mono calls (both sides mixed on one channel).

Each VAD segment is described by its mean MFCCs and median pitch, the segments are split into
two voices with k-means, and the voice that speaks first is taken to be the agent: inbound
service calls open with the agent's greeting. Documented as a heuristic in docs/METRICS.md;
stereo recordings (one channel per side) need none of this and are always preferred.
"""

from __future__ import annotations

import librosa
import numpy as np
from scipy.cluster.vq import kmeans2, whiten

from pipeline.config import DiarizeOptions
from pipeline.records import CallAudio, Segment
from pipeline.tone import hz_to_st


def _features(x: np.ndarray, sr: int) -> np.ndarray:
    mfcc = librosa.feature.mfcc(y=x, sr=sr, n_mfcc=13).mean(axis=1)
    f0 = librosa.yin(x, fmin=65, fmax=500, sr=sr, frame_length=1024)
    return np.append(mfcc[1:], hz_to_st(float(np.median(f0))))  # c0 is loudness, not voice


def attribute_mono(
    audio: CallAudio, spans: list[tuple[float, float]], options: DiarizeOptions
) -> list[Segment]:
    clips = [audio.clip("agent", a, b) for a, b in spans]
    min_len = int(options.min_segment_s * audio.sr)
    usable = [i for i, c in enumerate(clips) if len(c) >= min_len]
    if len(usable) < options.min_segments:  # too little to tell two voices apart: all agent
        return [Segment(a, b, "agent") for a, b in spans]
    feats = whiten(np.stack([_features(clips[i], audio.sr) for i in usable]))
    _, labels = kmeans2(feats, 2, minit="++", seed=0)
    label_of = dict(zip(usable, labels, strict=True))
    agent_label = label_of[usable[0]]
    out = []
    for i, (a, b) in enumerate(spans):
        label = label_of.get(i, agent_label)
        out.append(Segment(a, b, "agent" if label == agent_label else "customer"))
    return out
