"""Early vs current: pair an agent's early calls with current calls on the same question, then
line up, within a pair, the agent turns that answer the same customer question.

Pairing: one-to-one, best total similarity (Hungarian, scipy's linear_sum_assignment). Calls
with a `topic` only pair within the same topic; similarity is TF-IDF cosine of the calls'
words (jieba), so with or without topics the pair asks the same question.
Utterance alignment: in order (a monotone alignment, Needleman-Wunsch style), scoring each
agent turn by its own text and the customer question it answers (character-bigram TF-IDF). A
short customer turn without a question (好的，麻烦你了 / 尾号是三七五二) is a back-channel: the
agent's next turn still answers the question before it, so that stays the turn's context. Else
an early "let me check" turn and the explanation after it would compete for the current call's
first answer, and the explanation would lose its partner.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import linear_sum_assignment

from pipeline.config import AlignOptions
from pipeline.rows import AlignedRow, PairRow
from pipeline.text import char_ngrams, words


@dataclass(frozen=True)
class CallDoc:
    call_id: str
    topic: str | None
    text: str  # the call's transcript, both speakers


@dataclass(frozen=True)
class CallPair:
    early_call_id: str
    current_call_id: str
    topic: str | None
    similarity: float


@dataclass(frozen=True)
class Turn:
    """An agent utterance with the customer turn it answers (empty when none precedes it)."""

    utterance_id: int
    text: str
    context: str


@dataclass(frozen=True)
class AlignedTurn:
    early_utterance_id: int
    current_utterance_id: int
    similarity: float


def tfidf(docs: list[list[str]]) -> sparse.csr_array:
    """L2-normalised TF-IDF rows (smooth idf), sparse: a turn holds a few dozen of the thousands
    of n-grams of two calls, and dense products over them were most of aligning a pair."""
    vocab: dict[str, int] = {}
    rows, cols, counts = [], [], []
    for r, d in enumerate(docs):
        for t, c in Counter(d).items():
            rows.append(r)
            cols.append(vocab.setdefault(t, len(vocab)))
            counts.append(c)
    if not vocab:
        return sparse.csr_array((len(docs), 1))
    tf = sparse.csr_array(
        (np.array(counts, dtype=np.float64), (rows, cols)), shape=(len(docs), len(vocab))
    )
    df = np.bincount(cols, minlength=len(vocab))
    m = tf.multiply(np.log((1 + len(docs)) / (1 + df)) + 1).tocsr()
    norm = np.sqrt(np.asarray(m.multiply(m).sum(axis=1))).ravel()
    return sparse.diags_array(1 / np.where(norm > 0, norm, 1)) @ m


def pair_calls(
    early: list[CallDoc], current: list[CallDoc], jargon: tuple[str, ...]
) -> list[CallPair]:
    tokens = {d.call_id: words(d.text, jargon) for d in early + current}
    return pair_tokens(
        [(d.call_id, d.topic) for d in early], [(d.call_id, d.topic) for d in current], tokens
    )


def pair_tokens(
    early: Sequence[tuple[str, str | None]],
    current: Sequence[tuple[str, str | None]],
    tokens: Mapping[str, Sequence[str]],
) -> list[CallPair]:
    """pair_calls on calls already cut into words: (call_id, topic) of each side and each
    call's words (the derive stage keeps them across runs in `call_words`)."""
    if not early or not current:
        return []
    vecs = tfidf([list(tokens[c]) for c, _ in [*early, *current]])
    sim = (vecs[: len(early)] @ vecs[len(early) :].T).toarray()
    allowed = np.array([[e is None or c is None or e == c for _, c in current] for _, e in early])
    cost = np.where(allowed, -sim, 1e6)  # a forbidden cell costs more than any real pairing
    rows, cols = linear_sum_assignment(cost)
    pairs = []
    for r, c in zip(rows, cols, strict=True):
        if not allowed[r, c]:
            continue
        (e, e_topic), (k, k_topic) = early[r], current[c]
        pairs.append(CallPair(e, k, e_topic or k_topic, round(float(sim[r, c]), 4)))
    return pairs


def call_tokens(
    utts: pd.DataFrame, call_ids: pd.Series, kept: pd.DataFrame | None, jargon: tuple[str, ...]
) -> dict[str, list[str]]:
    """call_id -> pairing words (align.words of the call's whole transcript) of the cohort
    calls: as stored for the calls whose text is unchanged (`kept`, call_words rows), cut with
    jieba for the others. Cutting every cohort call again was a third of a night's derive."""
    stored = (
        {}
        if kept is None or kept.empty
        else dict(zip(kept["call_id"], kept["words"].str.split(), strict=True))
    )
    out = {c: stored[c] for c in call_ids if c in stored}
    todo = [c for c in call_ids if c not in out]
    mine = utts[utts["call_id"].isin(todo)].sort_values(["call_id", "utterance_id"])
    text = mine.groupby("call_id")["text"].agg(lambda t: "".join(t.fillna("")))
    for c in todo:
        out[c] = words(text.get(c, ""), jargon)
    return {c: out[c] for c in call_ids}


# Marks of a question in a customer turn: question marks, sentence-final 吗/呢, question words.
_QUESTION = re.compile(r"[？?吗呢几哪]|什么|怎么|多少|是不是|能不能|有没有")
_NOT_SPOKEN = re.compile(r"[\W_]+")


def is_backchannel(text: str, max_chars: int) -> bool:
    """A short customer turn that asks nothing: an acknowledgement or a requested detail."""
    return len(_NOT_SPOKEN.sub("", text)) <= max_chars and not _QUESTION.search(text)


def agent_turns(utts: list[tuple[int, str, str]], backchannel_max_chars: int = 8) -> list[Turn]:
    """(utterance_id, speaker, text) in call order -> agent turns with the customer question
    each answers (the last customer turn that is not a back-channel; empty before any)."""
    turns: list[Turn] = []
    context = ""
    for uid, speaker, text in utts:
        if speaker == "customer":
            if not context or not is_backchannel(text, backchannel_max_chars):
                context = text
        else:
            turns.append(Turn(uid, text, context))
    return turns


def _dp_moves(sim: np.ndarray, gap: float) -> list[list[int]]:
    """The best move into each cell of the alignment grid (0 diagonal, 1 up, 2 left), ties to
    the first of those, a row at a time in numpy: the cell left of a cell is the only chain, and
    max(best[j], here[j-1] - gap) unrolls to a running maximum of best[k] + gap * k."""
    rows, cols = sim.shape
    move = np.zeros((rows + 1, cols + 1), dtype=np.int8)
    move[1:, 0], move[0, 1:] = 1, 2
    above = -gap * np.arange(cols + 1, dtype=np.float64)
    ramp = gap * np.arange(1, cols + 1, dtype=np.float64)
    for i in range(1, rows + 1):
        diag, up = above[:-1] + sim[i - 1], above[1:] - gap
        best = np.maximum(diag, up)
        start = -gap * i  # the cell in column 0
        here = np.maximum.accumulate(np.maximum(best + ramp, start)) - ramp
        left = np.concatenate([[start], here[:-1]]) - gap
        move[i, 1:] = np.where(left > best, 2, np.where(diag >= up, 0, 1))
        above = np.concatenate([[start], np.maximum(best, left)])
    return move.tolist()


def align_turns(early: list[Turn], current: list[Turn], options: AlignOptions) -> list[AlignedTurn]:
    """Monotone alignment maximising total similarity; weak matches are left unaligned."""
    if not early or not current:
        return []
    n = len(early)
    vec_text = tfidf([char_ngrams(t.text) for t in early + current])
    vec_ctx = tfidf([char_ngrams(t.context) for t in early + current])
    w = options.context_weight
    sim = (1 - w) * (vec_text[:n] @ vec_text[n:].T).toarray() + w * (
        vec_ctx[:n] @ vec_ctx[n:].T
    ).toarray()
    gap = options.gap_penalty
    rows, cols = sim.shape
    move = _dp_moves(sim, gap)
    s = sim.tolist()
    out: list[AlignedTurn] = []
    i, j = rows, cols
    while i > 0 and j > 0:
        if move[i][j] == 0:
            sv = s[i - 1][j - 1]
            if sv >= options.min_similarity:
                out.append(
                    AlignedTurn(
                        early[i - 1].utterance_id, current[j - 1].utterance_id, round(sv, 4)
                    )
                )
            i, j = i - 1, j - 1
        elif move[i][j] == 1:
            i -= 1
        else:
            j -= 1
    return out[::-1]


def aligned_rows(
    pair: PairRow, by_call: Mapping[str, Mapping[int, Mapping[str, object]]], options: AlignOptions
) -> list[AlignedRow]:
    """The aligned agent turns of a pair, with their texts, clip times and figure deltas
    (`aligned_utterances`); by_call: call_id -> utterance_id -> stored row, in call order."""
    early, current = by_call[pair.early_call_id], by_call[pair.current_call_id]
    backchannel = options.backchannel_max_chars
    e_turns = agent_turns(
        [(i, str(r["speaker"]), r["text"]) for i, r in early.items()], backchannel
    )
    c_turns = agent_turns(
        [(i, str(r["speaker"]), r["text"]) for i, r in current.items()], backchannel
    )
    context = {("e", t.utterance_id): t.context for t in e_turns} | {
        ("c", t.utterance_id): t.context for t in c_turns
    }

    def delta(col: str, e: Mapping[str, object], c: Mapping[str, object]) -> float | None:
        a, b = e.get(col), c.get(col)
        return None if pd.isna(a) or pd.isna(b) else float(b - a)  # type: ignore[operator]

    rows = []
    for m in align_turns(e_turns, c_turns, options):
        e, c = early[m.early_utterance_id], current[m.current_utterance_id]
        rows.append(
            AlignedRow(
                pair_id=pair.pair_id,
                agent_id=pair.agent_id,
                early_call_id=pair.early_call_id,
                current_call_id=pair.current_call_id,
                early_utterance_id=m.early_utterance_id,
                current_utterance_id=m.current_utterance_id,
                similarity=m.similarity,
                early_customer_text=context[("e", m.early_utterance_id)],
                early_text=e["text"],
                current_customer_text=context[("c", m.current_utterance_id)],
                current_text=c["text"],
                early_start_s=e["start_s"],
                early_end_s=e["end_s"],
                current_start_s=c["start_s"],
                current_end_s=c["end_s"],
                delta_speech_rate_cpm=delta("speech_rate_cpm", e, c),
                delta_pitch_vs_baseline_st=delta("pitch_vs_baseline_st", e, c),
                delta_loudness_db=delta("loudness_dbfs", e, c),
                delta_agitation=delta("agitation", e, c),
            )
        )
    return rows


# the utterance columns aligned_rows reads
_ALIGNED_COLUMNS = (
    "call_id",
    "utterance_id",
    "speaker",
    "text",
    "start_s",
    "end_s",
    "speech_rate_cpm",
    "pitch_vs_baseline_st",
    "loudness_dbfs",
    "agitation",
)


def align_pairs(
    pairs: Sequence[PairRow],
    utts: pd.DataFrame,
    options: AlignOptions,
    kept: pd.DataFrame | None = None,
    steady: Container[str] = (),
) -> pd.DataFrame:
    """The aligned_utterances rows of the pairs, from the utterances (with their derived
    figures). `kept`: stored rows of pairs whose two calls are unchanged since they were aligned
    (store.load_history); a pair of a `steady` agent (baselines as stored, so the deltas too) is
    taken from them as stored, and only the others are aligned."""
    if kept is not None and len(kept):
        ids = {p.pair_id for p in pairs}
        kept = kept[kept["agent_id"].map(lambda a: a in steady) & kept["pair_id"].isin(ids)]
    done = set(kept["pair_id"]) if kept is not None else set()
    todo = [p for p in pairs if p.pair_id not in done]
    # each paired call's utterances, grouped once (not filtered out of the history per pair), as
    # plain dicts (utterance_id -> row, in call order): a pandas row lookup per aligned turn cost
    # more than the alignment
    paired = {c for p in todo for c in (p.early_call_id, p.current_call_id)}
    by_call: dict[str, dict[int, dict]] = {}
    columns = [c for c in utts.columns if c in _ALIGNED_COLUMNS]  # one to_dict, not one a call
    mine = utts.loc[utts["call_id"].isin(paired), columns]
    for r in mine.sort_values(["call_id", "utterance_id"]).to_dict("records"):
        by_call.setdefault(r["call_id"], {})[r["utterance_id"]] = r
    rows = pd.DataFrame([vars(a) for p in todo for a in aligned_rows(p, by_call, options)])
    if not done:
        return rows
    return pd.concat([kept, rows], ignore_index=True) if len(rows) else kept.reset_index(drop=True)
