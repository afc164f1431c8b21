"""Stage A, per call: split a mono call's speech windows into two voices."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from pipeline.speakers.options import (
    EMBED_DIM,
    FRAME_S,
    CallVoices,
    CallWindows,
    SpeakerOptions,
    VoiceTurn,
    unit,
)

# ----------------------------------------------------------------------------- stage A split


def _kmeans2(x: np.ndarray, n_init: int, seed: int = 0) -> np.ndarray:
    """Two-means with k-means++ starts; the labelling of lowest inertia (deterministic)."""
    rng = np.random.default_rng(seed)
    best, best_cost = np.zeros(len(x), int), np.inf
    for _ in range(n_init):
        c0 = x[rng.integers(len(x))]
        d = ((x - c0) ** 2).sum(1)
        p = d / d.sum() if d.sum() > 0 else None
        c1 = x[rng.choice(len(x), p=p)]
        centres = np.stack([c0, c1])
        labels = np.zeros(len(x), int)
        for _ in range(100):
            dist = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
            new = dist.argmin(1)
            if (new == labels).all() and _ > 0:
                break
            labels = new
            for k in (0, 1):
                if (labels == k).any():
                    centres[k] = x[labels == k].mean(0)
        cost = float(((x - centres[labels]) ** 2).sum())
        if cost < best_cost and 0 < labels.sum() < len(labels):
            best, best_cost = labels.copy(), cost
    return best


def _discriminant_space(w: CallWindows, options: SpeakerOptions) -> np.ndarray:
    """Window embeddings projected on directions of large call-wide but small local variation."""
    e = w.embeddings.astype(np.float64)
    step = max(1, int(round(options.pair_gap_s / options.hop_s)))
    same = w.span_index[:-step] == w.span_index[step:] if len(e) > step else np.zeros(0, bool)
    diffs = (e[:-step] - e[step:])[same] if same.any() else np.zeros((0, e.shape[1]))
    if len(diffs) >= 2:
        norms = np.linalg.norm(diffs, axis=1)
        diffs = diffs[norms <= np.quantile(norms, options.pair_quantile)]
    centred = e - e.mean(0)
    total = centred.T @ centred / len(e)
    within = diffs.T @ diffs / (2 * len(diffs)) if len(diffs) >= 2 else total.copy()
    ridge = max(float(np.trace(within)) / len(within), 1e-9)  # floor: identical windows
    within = (1 - options.shrinkage) * within + options.shrinkage * ridge * np.eye(len(within))
    d = len(total)
    _, vecs = scipy.linalg.eigh(total, within, subset_by_index=[d - options.n_dims, d - 1])
    return centred @ vecs[:, ::-1]


def _frame_labels(
    w: CallWindows, score: np.ndarray, options: SpeakerOptions
) -> tuple[np.ndarray, np.ndarray]:
    """Per 10 ms frame: voice 0/1 (-1 outside speech) from triangular-weighted window scores."""
    n = int(np.ceil(w.duration_s / FRAME_S)) + 1
    acc = np.zeros(n)
    weight = np.zeros(n)
    for a, b, s in zip(w.starts_s, w.ends_s, score, strict=True):
        fa, fb = int(a / FRAME_S), max(int(a / FRAME_S) + 1, int(b / FRAME_S))
        tri = 1.0 - np.abs(np.linspace(-1, 1, fb - fa)) * 0.9
        acc[fa:fb] += s * tri
        weight[fa:fb] += tri
    speech = np.zeros(n, bool)
    for a, b in w.spans:
        speech[int(a / FRAME_S) : int(b / FRAME_S)] = True
    labels = np.full(n, -1)
    covered = speech & (weight > 0)
    labels[covered] = (acc[covered] / weight[covered] < 0).astype(int)
    # Speech no window covers (spans shorter than min_window_s, edges): nearest labelled frame.
    todo = speech & ~covered
    if todo.any() and covered.any():
        idx = np.flatnonzero(covered)
        for f in np.flatnonzero(todo):
            j = np.searchsorted(idx, f)
            cand = [idx[k] for k in (j - 1, j) if 0 <= k < len(idx)]
            labels[f] = labels[min(cand, key=lambda c: abs(c - f))]
    return labels, speech


def _runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, end, label) runs of equal labels."""
    if len(labels) == 0:
        return []
    change = np.flatnonzero(np.diff(labels)) + 1
    bounds = np.concatenate([[0], change, [len(labels)]])
    return [(int(a), int(b), int(labels[a])) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _smooth(labels: np.ndarray, min_frames: int) -> np.ndarray:
    """Merge voice runs shorter than min_frames into the neighbouring voice within speech."""
    out = labels.copy()
    for _ in range(3):
        runs = _runs(out)
        changed = False
        for i, (a, b, v) in enumerate(runs):
            if v < 0 or b - a >= min_frames:
                continue
            left = runs[i - 1] if i > 0 else None
            right = runs[i + 1] if i + 1 < len(runs) else None
            neighbours = [r for r in (left, right) if r is not None and r[2] >= 0]
            if neighbours:
                out[a:b] = max(neighbours, key=lambda r: r[1] - r[0])[2]
                changed = True
        if not changed:
            break
    return out


def _turns(labels: np.ndarray) -> tuple[VoiceTurn, ...]:
    return tuple(
        VoiceTurn(round(a * FRAME_S, 3), round(b * FRAME_S, 3), v)
        for a, b, v in _runs(labels)
        if v >= 0
    )


def _two_way_split(w: CallWindows, options: SpeakerOptions) -> tuple[np.ndarray, float] | None:
    """Window scores (> 0: voice 0, < 0: voice 1, group means at +1 / -1) and the split's d';
    None where there is nothing to split."""
    if len(w.embeddings) < 4:
        return None
    proj = _discriminant_space(w, options)
    labels = _kmeans2(proj, options.n_init)
    if labels.min() == labels.max():
        return None
    if options.one_voice_cosine < 1.0:  # 1.0: never one voice (cosines of means stay below)
        c0 = unit(w.embeddings[labels == 0].mean(0))
        c1 = unit(w.embeddings[labels == 1].mean(0))
        if float(c0 @ c1) > options.one_voice_cosine:
            return None
    m0, m1 = proj[labels == 0].mean(0), proj[labels == 1].mean(0)
    t = proj @ ((m0 - m1) / max(float(np.linalg.norm(m0 - m1)), 1e-12))
    a, b = t[labels == 0], t[labels == 1]
    pooled = np.sqrt((a.var() * len(a) + b.var() * len(b)) / len(t))
    half = max((a.mean() - b.mean()) / 2, 1e-12)
    return (t - (a.mean() + b.mean()) / 2) / half, float(2 * half / max(pooled, 1e-12))


def split_voices(w: CallWindows, options: SpeakerOptions) -> CallVoices:
    """Stage A, part 2: one call's speech split into two voices (or one), with their centroids."""
    if len(w.embeddings) == 0:
        return CallVoices(w.call_id, np.zeros((0, EMBED_DIM), np.float32), (), (), 0.0)
    split = _two_way_split(w, options)
    score, separation = split if split is not None else (np.ones(len(w.embeddings)), 0.0)
    labels, _ = _frame_labels(w, score, options)
    labels = _smooth(labels, int(round(options.min_turn_s / FRAME_S)))
    n_voices = 2 if split is not None and (labels == 1).any() and (labels == 0).any() else 1
    if n_voices == 1:  # one voice (or smoothing swallowed the other)
        labels[labels >= 0] = 0
        separation = 0.0
    centroids, speech = [], []
    for v in range(n_voices):
        frames = labels == v
        # The voice's print: windows lying (mostly) inside its frames, else all scored for it.
        keep = [
            i
            for i, (a, b) in enumerate(zip(w.starts_s, w.ends_s, strict=True))
            if frames[int(a / FRAME_S) : max(int(a / FRAME_S) + 1, int(b / FRAME_S))].mean() > 0.8
        ]
        if not keep:
            keep = list(np.flatnonzero(score < 0 if v else score >= 0)) or list(range(len(score)))
        centroids.append(unit(w.embeddings[keep].mean(0)))
        speech.append(round(float(frames.sum()) * FRAME_S, 3))
    return CallVoices(w.call_id, np.stack(centroids), tuple(speech), _turns(labels), separation)
