"""ASR benchmark: callreview's transcription stage against open peers, same weights, one run.

Every system runs Whisper *base* (multilingual) with the same tensors: our converted openai
checkpoint (models/whisper-base.pt) or the CTranslate2 folder it was converted from
(models/whisper-base-ct2). Each system runs in its own subprocess (this script re-invoked with
--worker SYSTEM), so model load, warm-up and peak memory never leak from one system to the next.

    plan (parent) -> one worker per system -> hypotheses + timings (JSON) -> CER (parent)
                                                                          -> table + JSON file

Data, read from ../shared/eval/asr and sample_audio/ (skipped with a message when absent):
- "call-like channels": eval clips concatenated, 10 per channel, with 1-3 s gaps of -60 dBFS
  noise before, between and after them (fixed seed), separately for read speech (AISHELL) and
  customer-service speech (Magic Data). Reference: the clips' transcripts joined.
- the sample calls: each stereo call's agent and customer channels, against the scripted turns.
- 20 s of line noise (white noise + 50 Hz hum, -60 dBFS each): every character output is
  invented.

Run from the repo root (see benchmarks/README.md):
    .venv/bin/python scripts/benchmark.py                      # everything, all systems
    .venv/bin/python scripts/benchmark.py --limit 10 --systems callreview,fw-int8
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EVAL_DIR = ROOT.parent / "shared" / "eval" / "asr"
SAMPLES_DIR = ROOT / "sample_audio"
RESULTS_DIR = ROOT / "benchmarks" / "results"

SR = 16_000
CLIPS_PER_CHANNEL = 10
GAP_RANGE_S = (1.0, 3.0)
NOISE_DBFS = -60.0
NOISE_TEST_S = 20.0
WARMUP_S = 10.0
CHUNK_CALLS = 16  # calls transcribed together by systems that batch across calls (run.chunk_calls)
LOAD_WARNING = 2.5  # 1-minute load average above this: timings are not trustworthy

DOMAINS = ("read", "customer_service", "sample_calls")
DOMAIN_LABELS = {
    "read": "CER read",
    "customer_service": "CER customer-service",
    "sample_calls": "CER sample calls",
}


def models_dir() -> Path:
    """Where the weights are: the user's settings, read the way the CLI reads them."""
    from pipeline.config import find_config_file, load_config

    return load_config(find_config_file(Path.cwd(), os.environ), os.environ).run.models_dir


# --------------------------------------------------------------------------------------------
# Systems
# --------------------------------------------------------------------------------------------


class Transcriber(Protocol):
    def load(self) -> None: ...

    def transcribe(self, channels: dict[str, np.ndarray]) -> dict[str, str]:
        """One call: {speaker: 16 kHz float32 mono channel} -> {speaker: text}."""
        ...


def transcribe_each(t: Transcriber, calls: list[dict[str, np.ndarray]]) -> list[dict[str, str]]:
    """Systems without cross-call batching take a chunk one call at a time."""
    return [t.transcribe(c) for c in calls]


class Callreview:
    """Our transcription stage, as a run does it: silero VAD per channel, each speaker's speech
    packed into 30 s windows, the windows of a whole chunk of calls decoded in shared batches."""

    def __init__(self, threads: int, compute: str | None = None) -> None:
        self.threads = threads
        self.compute = compute  # None: the [asr] compute setting in force

    def load(self) -> None:
        import torch

        torch.set_num_threads(self.threads)  # pipeline.vad keeps the count it finds at import
        from types import SimpleNamespace

        import pipeline.transcribe
        from pipeline.asr import load_asr_runtime
        from pipeline.config import default_config
        from pipeline.vad import find_segments, load_vad_model

        # Score the words, not the privacy rule: PII masking would turn a correctly heard
        # 7+ digit run into "<NUM>", which no reference contains. Nothing else changes.
        pipeline.transcribe.redact_utterances = lambda timed, options: [
            SimpleNamespace(text=u[3], spans=()) for u in timed
        ]
        self.config = default_config()
        self.find_segments = find_segments
        self.transcribe_calls = pipeline.transcribe.transcribe_calls
        self.vad = load_vad_model()
        self.model = load_asr_runtime(
            None, "cpu", models_dir(), self.compute or self.config.asr.compute
        )

    def transcribe(self, channels: dict[str, np.ndarray]) -> dict[str, str]:
        return self.transcribe_batch([channels])[0]

    def transcribe_batch(self, calls: list[dict[str, np.ndarray]]) -> list[dict[str, str]]:
        from pipeline.records import CallAudio

        empty = np.zeros(0, dtype=np.float32)  # a one-channel call: nothing on the other side
        items = []
        for i, channels in enumerate(calls):
            agent, customer = channels.get("agent", empty), channels.get("customer", empty)
            audio = CallAudio(
                sr=SR,
                duration_s=max(len(agent), len(customer)) / SR,
                source_sr=SR,
                n_channels=2,
                layout="agent_left",
                sha256="",
                tracks=(agent, customer),
            )
            segments = self.find_segments(audio, self.config.vad, self.vad)
            items.append((str(i), audio, segments))
        transcripts = self.transcribe_calls(self.model, items, self.config.asr)
        return [
            {
                speaker: "".join(
                    u.text for u in transcripts[str(i)].utterances if u.speaker == speaker
                )
                for speaker in channels
            }
            for i, channels in enumerate(calls)
        ]


class OpenaiTranscribe:
    """The naive baseline: openai-whisper's own transcribe() over each whole channel."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def load(self) -> None:
        import torch

        torch.set_num_threads(self.threads)
        from pipeline.asr import load_asr_model

        self.model = load_asr_model(None, "cpu", models_dir())

    def transcribe(self, channels: dict[str, np.ndarray]) -> dict[str, str]:
        out = {}
        for speaker, x in channels.items():
            result = self.model.transcribe(
                x, language="zh", condition_on_previous_text=False, fp16=False, verbose=None
            )
            out[speaker] = str(result["text"])
        return out


class FasterWhisper:
    """faster-whisper (CTranslate2) on the same weights; batched = BatchedInferencePipeline."""

    def __init__(self, threads: int, compute_type: str, beam_size: int, batched: bool) -> None:
        self.threads = threads
        self.compute_type = compute_type
        self.beam_size = beam_size
        self.batched = batched

    def load(self) -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        from pipeline.asr import prepare_ct2_dir

        model = WhisperModel(
            str(prepare_ct2_dir(models_dir())),
            device="cpu",
            compute_type=self.compute_type,
            cpu_threads=self.threads,
        )
        self.model = model
        self.pipeline = BatchedInferencePipeline(model) if self.batched else None

    def transcribe(self, channels: dict[str, np.ndarray]) -> dict[str, str]:
        out = {}
        for speaker, x in channels.items():
            if self.pipeline is not None:
                segments, _ = self.pipeline.transcribe(
                    x, language="zh", batch_size=8, beam_size=self.beam_size
                )
            else:
                segments, _ = self.model.transcribe(
                    x,
                    language="zh",
                    vad_filter=True,
                    condition_on_previous_text=False,
                    beam_size=self.beam_size,
                )
            out[speaker] = "".join(s.text for s in segments)  # a generator: decoding runs here
        return out


@dataclass(frozen=True)
class SystemInfo:
    label: str
    beam: int
    make: Callable[[int], Transcriber]  # threads -> transcriber


def _faster_whisper(compute: str, beam: int, batched: bool) -> SystemInfo:
    label = f"faster-whisper{' batched' if batched else ''} {compute}"
    return SystemInfo(label, beam, lambda t: FasterWhisper(t, compute, beam, batched=batched))


SYSTEMS: dict[str, SystemInfo] = {
    "callreview": SystemInfo(
        "callreview transcription (VAD + windows batched across calls)", 1, Callreview
    ),
    "callreview-fp32": SystemInfo(
        "callreview transcription, compute fp32 (the accuracy reference)",
        1,
        lambda t: Callreview(t, "fp32"),
    ),
    # Not a transcriber: `callreview run` end to end (sample calls only; run_e2e_worker).
    "callreview-run": SystemInfo("callreview run, end to end, fresh database", 1, Callreview),
    "callreview-run-mono": SystemInfo(
        "callreview run, the eval clips as mono calls (stored text)", 1, Callreview
    ),
    "callreview-run-stereo": SystemInfo(
        "callreview run, the eval clips as stereo calls (stored text)", 1, Callreview
    ),
    "openai-transcribe": SystemInfo("openai-whisper transcribe()", 1, OpenaiTranscribe),
    "fw-int8": _faster_whisper("int8", 1, batched=False),
    "fw-fp32": _faster_whisper("float32", 1, batched=False),
    "fw-batched-int8": _faster_whisper("int8", 1, batched=True),
    "fw-batched-fp32": _faster_whisper("float32", 1, batched=True),
    "fw-int8-beam5": _faster_whisper("int8", 5, batched=False),
    "fw-fp32-beam5": _faster_whisper("float32", 5, batched=False),
}


# --------------------------------------------------------------------------------------------
# The plan: which calls, built from which audio (made in the parent, read by every worker)
# --------------------------------------------------------------------------------------------


@dataclass
class CallPlan:
    """One unit of work: an eval channel built from clips, or a stereo sample call."""

    call_id: str
    domain: str  # read | customer_service | sample_calls | noise
    references: dict[str, str]  # speaker -> reference text
    clips: list[str] = field(default_factory=list)  # eval: clip files, joined with gaps
    gaps_s: list[float] = field(default_factory=list)  # before, between and after the clips
    seed: int = 0  # of the gap noise
    path: str | None = None  # sample call: the recording
    layout: str | None = None  # sample call: agent_left / agent_right


def read_eval_manifest() -> list[dict[str, str]]:
    with (EVAL_DIR / "manifest.tsv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def plan_eval_calls(limit: int | None, seed: int) -> list[CallPlan]:
    """Channels of CLIPS_PER_CHANNEL clips each, per domain, in a fixed shuffled order."""
    if not (EVAL_DIR / "manifest.tsv").is_file():
        print(
            f"[benchmark] {EVAL_DIR} not found: skipping read and customer-service speech",
            file=sys.stderr,
        )
        return []
    rows = read_eval_manifest()
    rng = np.random.default_rng(seed)
    calls: list[CallPlan] = []
    for domain in ("read", "customer_service"):
        picked = [r for r in rows if (r["domain"] == "read") == (domain == "read")]
        picked = [picked[i] for i in rng.permutation(len(picked))][:limit]
        for n, start in enumerate(range(0, len(picked), CLIPS_PER_CHANNEL)):
            group = picked[start : start + CLIPS_PER_CHANNEL]
            gaps = rng.uniform(*GAP_RANGE_S, size=len(group) + 1).round(3).tolist()
            calls.append(
                CallPlan(
                    call_id=f"{domain}-{n:02d}",
                    domain=domain,
                    references={"agent": "".join(r["text"] for r in group)},
                    clips=[str(EVAL_DIR / r["path"]) for r in group],
                    gaps_s=gaps,
                    seed=int(rng.integers(2**31)),
                )
            )
    return calls


def plan_sample_calls(samples_dir: Path, max_calls: int | None) -> list[CallPlan]:
    """The stereo sample calls, each channel against its speaker's scripted turns."""
    truth_file, manifest_file = samples_dir / "ground_truth.json", samples_dir / "manifest.csv"
    if not (truth_file.is_file() and manifest_file.is_file()):
        print(
            f"[benchmark] no ground_truth.json + manifest.csv in {samples_dir}: "
            "skipping the sample calls",
            file=sys.stderr,
        )
        return []
    truth = json.loads(truth_file.read_text(encoding="utf-8"))
    with manifest_file.open(encoding="utf-8") as f:
        rows = {r["call_id"]: r for r in csv.DictReader(f)}
    calls: list[CallPlan] = []
    for call in truth["calls"][:max_calls]:
        row = rows[call["call_id"]]
        references = {
            speaker: "".join(t["text"] for t in call["turns"] if t["speaker"] == speaker)
            for speaker in ("agent", "customer")
        }
        calls.append(
            CallPlan(
                call_id=call["call_id"],
                domain="sample_calls",
                references=references,
                path=str(samples_dir / row["path"]),
                layout=row.get("channels") or None,
            )
        )
    return calls


def noise_plan(seed: int) -> CallPlan:
    return CallPlan(call_id="line-noise", domain="noise", references={"agent": ""}, seed=seed)


def db_to_amplitude(dbfs: float) -> float:
    return float(10 ** (dbfs / 20))


def load_call_audio(plan: CallPlan) -> dict[str, np.ndarray]:
    """The call's channels as 16 kHz float32 arrays (built on demand, one call in memory)."""
    rng = np.random.default_rng(plan.seed)
    if plan.domain == "noise":
        t = np.arange(int(NOISE_TEST_S * SR)) / SR
        hum = np.sqrt(2) * db_to_amplitude(NOISE_DBFS) * np.sin(2 * np.pi * 50 * t)
        white = rng.normal(0.0, db_to_amplitude(NOISE_DBFS), t.size)
        return {"agent": (hum + white).astype(np.float32)}
    if plan.path is not None:
        from pipeline.audio import load_call

        audio = load_call(plan.path, plan.layout)  # type: ignore[arg-type]
        return {"agent": audio.samples("agent"), "customer": audio.samples("customer")}
    import soundfile as sf

    parts: list[np.ndarray] = []
    for i, gap in enumerate(plan.gaps_s):
        parts.append(rng.normal(0.0, db_to_amplitude(NOISE_DBFS), int(gap * SR)))
        if i < len(plan.clips):
            x, sr = sf.read(plan.clips[i], dtype="float32", always_2d=True)
            if sr != SR:
                raise ValueError(f"{plan.clips[i]}: {sr} Hz, expected {SR}")
            parts.append(x.mean(axis=1))
    return {"agent": np.concatenate(parts).astype(np.float32)}


# --------------------------------------------------------------------------------------------
# Worker: one system, in its own process
# --------------------------------------------------------------------------------------------


@dataclass
class CallResult:
    call_id: str
    domain: str
    audio_s: float  # channel-seconds: a stereo call counts both channels
    wall_s: float
    hypotheses: dict[str, str]


@dataclass
class WorkerResult:
    system: str
    threads: int
    load_s: float
    warmup_s: float
    audio_s: float
    wall_s: float
    peak_rss_before_load_mb: float
    peak_rss_mb: float
    noise_text: str
    noise_wall_s: float
    calls: list[CallResult]


def peak_rss_mb() -> float:
    """This process's peak resident memory.

    VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork + exec, so a worker
    would start at its parent's peak (the parent has imported torch to prepare the weights).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def chunked(calls: list[CallPlan], size: int) -> list[list[CallPlan]]:
    """Chunks of calls of one domain each (per-domain timings stay separable), like a run's."""
    out: list[list[CallPlan]] = []
    for call in calls:
        if out and len(out[-1]) < size and out[-1][0].domain == call.domain:
            out[-1].append(call)
        else:
            out.append([call])
    return out


def children_peak_rss_mb() -> float:
    """The largest peak resident memory of any finished child process (the run's own process;
    its Prefect server child is smaller)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux


def run_cli(folder: Path, db: Path, threads: int, **settings: str) -> tuple[float, float, str]:
    """`callreview run FOLDER` on a fresh database in a child process: (wall s, peak RSS MB of
    the child, console output). Called in a worker of its own, so the peak is the run's."""
    env = dict(os.environ, CALLREVIEW_DB=str(db), OMP_NUM_THREADS=str(threads))
    # The folder was written a moment ago: without this the run leaves every file (and the
    # manifest) for the next run as still being copied, and stores nothing.
    env["CALLREVIEW_RUN__SETTLE_S"] = "0"
    env.update({f"CALLREVIEW_RUN__{k.upper()}": v for k, v in settings.items()})
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "callreview.cli", "run", str(folder)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not db.exists():
        output = (proc.stdout + proc.stderr)[-2000:]
        raise RuntimeError(f"callreview run failed ({proc.returncode}, no database?): {output}")
    return wall, children_peak_rss_mb(), proc.stdout


def stored_texts(db: Path) -> tuple[dict[str, dict[str, str]], dict[str, float]]:
    """A run's stored transcripts: per call, the text per speaker and, under "all", every
    utterance in time order (what the eval clips' one reference is scored against); and each
    call's duration."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT call_id, speaker, text FROM utterances ORDER BY call_id, start_s, utterance_id"
    ).fetchall()
    durations = dict(con.execute("SELECT call_id, duration_s FROM calls").fetchall())
    con.close()
    texts: dict[str, dict[str, str]] = {}
    for call_id, speaker, text in rows:
        call = texts.setdefault(call_id, {"agent": "", "customer": "", "all": ""})
        call[speaker] += text
        call["all"] += text
    return texts, {k: float(v) for k, v in durations.items()}


def write_eval_calls(calls: list[CallPlan], folder: Path, layout: str) -> None:
    """The eval channels as recordings a call centre would hand over, with a manifest: `mono`
    (the speech alone on one channel) or `agent_left` (the speech on the agent's channel, the
    customer's channel an open line at the noise floor)."""
    import soundfile as sf

    folder.mkdir(parents=True)
    rows = []
    for n, call in enumerate(calls):
        x = load_call_audio(call)["agent"]
        if layout != "mono":
            line = np.random.default_rng(call.seed + 1).normal(
                0, db_to_amplitude(NOISE_DBFS), x.size
            )
            x = np.stack([x, line.astype(np.float32)], axis=1)
        sf.write(folder / f"{call.call_id}.flac", x, SR)
        day = 1 + n % 28
        rows.append(
            {
                "path": f"{call.call_id}.flac",
                "call_id": call.call_id,
                "agent_id": f"EVAL-{call.domain}",
                "recorded_at": f"2025-0{1 + n // 28}-{day:02d}T10:00:00",
                "agent_hired_at": "2024-12-01",
                "channels": layout,
                "topic": "eval",
            }
        )
    with (folder / "manifest.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def run_e2e_worker(system: str, plan: dict, result_file: Path, threads: int) -> None:
    """`callreview run` end to end on a fresh database; its stored transcripts are scored like
    every system's hypotheses. callreview-run: the sample calls' folder, per speaker.
    callreview-run-mono / -stereo: the eval channels written as mono or stereo calls, scored on
    all the stored text in time order (which voice it was given to is the attribution's
    business, measured by scripts/eval_mono.py)."""
    eval_layout = {"callreview-run-mono": "mono", "callreview-run-stereo": "agent_left"}
    with tempfile.TemporaryDirectory(prefix="callreview-e2e-") as tmp:
        work = Path(tmp) / "calls"
        if system in eval_layout:
            calls = [
                CallPlan(**c) for c in plan["calls"] if c["domain"] in ("read", "customer_service")
            ]
            if not calls:
                raise SystemExit(f"{system} needs the eval clips ({EVAL_DIR})")
            write_eval_calls(calls, work, eval_layout[system])
        else:
            calls = [CallPlan(**c) for c in plan["calls"] if c["domain"] == "sample_calls"]
            if not calls:
                raise SystemExit("callreview-run needs the sample calls")
            shutil.copytree(Path(calls[0].path).parent, work)
            ids = {c.call_id for c in calls}
            manifest = work / "manifest.csv"
            with manifest.open(encoding="utf-8") as f:
                rows = [r for r in csv.DictReader(f) if r["call_id"] in ids]
            with manifest.open("w", encoding="utf-8", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        db = Path(tmp) / "e2e.duckdb"
        wall, rss, _ = run_cli(work, db, threads)
        texts, durations = stored_texts(db)
    empty = {"agent": "", "customer": "", "all": ""}
    if system in eval_layout:
        hyps = {c.call_id: {"agent": texts.get(c.call_id, empty)["all"]} for c in calls}
        channels = 1 if system == "callreview-run-mono" else 2
    else:
        hyps = {
            c.call_id: {s: texts.get(c.call_id, empty)[s] for s in ("agent", "customer")}
            for c in calls
        }
        channels = 2
    audio = {c.call_id: channels * durations[c.call_id] for c in calls}  # channel-seconds
    total = sum(audio.values())
    results = [
        CallResult(
            c.call_id,
            c.domain,
            round(audio[c.call_id], 3),
            wall * audio[c.call_id] / total,
            hyps[c.call_id],
        )
        for c in calls
    ]
    result = WorkerResult(
        system=system,
        threads=threads,
        load_s=0.0,  # inside the wall time, like everything else a run does
        warmup_s=0.0,
        audio_s=round(total, 3),
        wall_s=round(wall, 3),
        peak_rss_before_load_mb=0.0,
        peak_rss_mb=round(rss, 1),
        noise_text="",
        noise_wall_s=0.0,
        calls=results,
    )
    result_file.write_text(json.dumps(asdict(result), ensure_ascii=False), encoding="utf-8")


def run_worker(system: str, plan_file: Path, result_file: Path, threads: int) -> None:
    plan = json.loads(plan_file.read_text(encoding="utf-8"))
    if system.startswith("callreview-run"):
        run_e2e_worker(system, plan, result_file, threads)
        return
    calls = [CallPlan(**c) for c in plan["calls"]]
    transcriber = SYSTEMS[system].make(threads)
    rss_before = peak_rss_mb()

    start = time.perf_counter()
    transcriber.load()
    load_s = time.perf_counter() - start

    # Untimed warm-up on 10 s of the first call: first-call allocation is not throughput.
    first = load_call_audio(calls[0])
    start = time.perf_counter()
    transcriber.transcribe({s: x[: int(WARMUP_S * SR)] for s, x in first.items()})
    warmup_s = time.perf_counter() - start

    results: list[CallResult] = []
    batch = getattr(transcriber, "transcribe_batch", None)
    for chunk in chunked(calls, CHUNK_CALLS if batch else 1):
        channels = [load_call_audio(call) for call in chunk]  # decoding is not transcription
        start = time.perf_counter()
        hypotheses = batch(channels) if batch else transcribe_each(transcriber, channels)
        wall_s = time.perf_counter() - start
        audio = [sum(len(x) for x in ch.values()) / SR for ch in channels]
        for call, audio_s, hyp in zip(chunk, audio, hypotheses, strict=True):
            share = wall_s * audio_s / sum(audio) if sum(audio) else 0.0  # a chunk's wall, split
            results.append(
                CallResult(call.call_id, call.domain, round(audio_s, 3), round(share, 3), hyp)
            )
        print(
            f"[{system}] {', '.join(c.call_id for c in chunk)}: {sum(audio):.1f} s audio in "
            f"{wall_s:.1f} s",
            file=sys.stderr,
            flush=True,
        )

    noise = load_call_audio(CallPlan(**plan["noise"]))
    start = time.perf_counter()
    noise_text = transcriber.transcribe(noise)["agent"]
    noise_wall_s = time.perf_counter() - start

    result = WorkerResult(
        system=system,
        threads=threads,
        load_s=round(load_s, 3),
        warmup_s=round(warmup_s, 3),
        audio_s=round(sum(r.audio_s for r in results), 3),
        wall_s=round(sum(r.wall_s for r in results), 3),
        peak_rss_before_load_mb=round(rss_before, 1),
        peak_rss_mb=round(peak_rss_mb(), 1),
        noise_text=noise_text,
        noise_wall_s=round(noise_wall_s, 3),
        calls=results,
    )
    result_file.write_text(json.dumps(asdict(result), ensure_ascii=False), encoding="utf-8")


def spawn_worker(system: str, plan_file: Path, threads: int, tmp: Path) -> dict | None:
    """Run one system in a fresh interpreter; its result dict, or None when it failed."""
    result_file = tmp / f"{system}.json"
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(threads),
        HF_HUB_OFFLINE="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        system,
        "--plan",
        str(plan_file),
        "--result",
        str(result_file),
        "--threads",
        str(threads),
    ]
    print(f"[benchmark] {system}: starting", file=sys.stderr, flush=True)
    load_before = load_average()
    proc = subprocess.run(cmd, env=env, cwd=ROOT)
    load_after = load_average()
    if proc.returncode != 0 or not result_file.is_file():
        print(f"[benchmark] {system}: worker failed (exit {proc.returncode})", file=sys.stderr)
        return None
    if max(load_before, load_after) > LOAD_WARNING:
        print(
            f"[benchmark] WARNING: {system} ran at load average {load_before:.2f} -> "
            f"{load_after:.2f}: its timings are inflated",
            file=sys.stderr,
        )
    result = json.loads(result_file.read_text(encoding="utf-8"))
    result["load_average"] = [round(load_before, 2), round(load_after, 2)]
    return result


# --------------------------------------------------------------------------------------------
# Scoring and reporting (parent)
# --------------------------------------------------------------------------------------------


# Whisper writes numbers as Arabic digits ("29度", "80%"); AISHELL and Magic Data references
# spell them out ("二十九度"). The secondary CER drops every numeral on both sides, to show how
# much of the headline CER is number formatting rather than misheard words.
_NUMERALS = str.maketrans(
    "", "", "0123456789０１２３４５６７８９零〇一二三四五六七八九十百千万亿两幺"
)


def one_form(text: str) -> str:
    """Numbers in one form on every side: numerals as digits (pipeline.text.numerals_to_digits),
    then the stored text's PII masking (pipeline.text.mask_pii), so that 二十九度 and 29度 agree,
    and a phone number heard right is <PHONE> in the reference too, not seven errors."""
    from pipeline.text import mask_pii, numerals_to_digits, to_simplified

    return mask_pii(numerals_to_digits(to_simplified(text)))


@dataclass
class DomainScore:
    cer: float | None = None  # errors / ref_chars over all channels of the domain
    errors: int = 0
    ref_chars: int = 0
    n_channels: int = 0
    cer_numerals_ignored: float | None = None
    errors_numerals_ignored: int = 0
    ref_chars_numerals_ignored: int = 0
    cer_one_form: float | None = None  # both sides through one_form()
    errors_one_form: int = 0
    ref_chars_one_form: int = 0


def phrase_recall(calls: list[dict], references: dict[str, dict[str, str]]) -> dict | None:
    """Of the phrase lists' terms in the sample calls' scripts (each speaker's own lists), the
    share the transcript holds too: occurrences found (at most as many as scripted) / scripted.
    Every text figure counts these phrases, so a missed term is a missed figure."""
    from pipeline.config import default_config

    lists = default_config().lexicon.phrases
    found = scripted = 0
    for call in calls:
        if call["domain"] != "sample_calls":
            continue
        for speaker, hyp in call["hypotheses"].items():
            ref = references[call["call_id"]].get(speaker, "")
            for pl in lists:
                if pl.speaker != speaker:
                    continue
                for phrase in pl.phrases:
                    n = ref.count(phrase)
                    scripted += n
                    found += min(n, hyp.count(phrase))
    return (
        {"found": found, "scripted": scripted, "recall": round(found / scripted, 4)}
        if scripted
        else None
    )


def score(worker: dict, calls: list[CallPlan]) -> dict:
    """Add CER per channel and per domain (errors / reference characters) to a worker result."""
    from pipeline.evaluation import cer, normalize_zh
    from pipeline.text import to_simplified

    references = {c.call_id: c.references for c in calls}
    totals = {d: DomainScore() for d in DOMAINS}
    for call in worker["calls"]:
        call["hypotheses"] = {s: to_simplified(h) for s, h in call["hypotheses"].items()}
        call["cer"] = {}
        for speaker, hyp in call["hypotheses"].items():
            ref = references[call["call_id"]][speaker]
            total = totals[call["domain"]]
            n_ref = len(normalize_zh(ref))
            value = cer(hyp, ref)
            call["cer"][speaker] = round(value, 4)
            total.errors += round(value * n_ref)
            total.ref_chars += n_ref
            total.n_channels += 1
            ref_plain = normalize_zh(ref).translate(_NUMERALS)
            hyp_plain = normalize_zh(hyp).translate(_NUMERALS)
            total.errors_numerals_ignored += round(cer(hyp_plain, ref_plain) * len(ref_plain))
            total.ref_chars_numerals_ignored += len(ref_plain)
            ref_one, hyp_one = one_form(ref), one_form(hyp)
            n_one = len(normalize_zh(ref_one))
            total.errors_one_form += round(cer(hyp_one, ref_one) * n_one)
            total.ref_chars_one_form += n_one
    for total in totals.values():
        if total.ref_chars:
            total.cer = round(total.errors / total.ref_chars, 4)
        if total.ref_chars_numerals_ignored:
            total.cer_numerals_ignored = round(
                total.errors_numerals_ignored / total.ref_chars_numerals_ignored, 4
            )
        if total.ref_chars_one_form:
            total.cer_one_form = round(total.errors_one_form / total.ref_chars_one_form, 4)
    info = SYSTEMS[worker["system"]]
    evals = [totals[d] for d in ("read", "customer_service") if totals[d].ref_chars]
    pooled = (
        round(sum(t.errors for t in evals) / sum(t.ref_chars for t in evals), 4) if evals else None
    )
    pooled_one = (
        round(sum(t.errors_one_form for t in evals) / sum(t.ref_chars_one_form for t in evals), 4)
        if evals
        else None
    )
    return {
        "cer_pooled_eval": pooled,
        "cer_pooled_eval_one_form": pooled_one,
        "phrase_recall": phrase_recall(worker["calls"], references),
        "system": worker["system"],
        "label": info.label,
        "beam": info.beam,
        "cer": {d: asdict(t) for d, t in totals.items()},
        "rtf": round(worker["wall_s"] / worker["audio_s"], 4) if worker["audio_s"] else None,
        "rtf_by_domain": rtf_by_domain(worker["calls"]),
        "noise_chars": len(normalize_zh(worker["noise_text"])),
        **worker,
    }


def rtf_by_domain(calls: list[dict]) -> dict[str, float]:
    out = {}
    for d in DOMAINS:
        audio = sum(c["audio_s"] for c in calls if c["domain"] == d)
        wall = sum(c["wall_s"] for c in calls if c["domain"] == d)
        if audio:
            out[d] = round(wall / audio, 4)
    return out


def ratios(rows: list[dict]) -> list[str]:
    """The issue's acceptance ratios, where the systems they compare ran."""
    by = {r["system"]: r for r in rows}
    lines = []
    fw = [by[s] for s in ("fw-int8", "fw-batched-int8") if s in by]

    def rtf(r: dict, d: str) -> float | None:
        return r["rtf_by_domain"].get(d)

    if "callreview" in by and fw:
        for d in DOMAINS:
            ours, peers = rtf(by["callreview"], d), [rtf(r, d) for r in fw]
            peers = [p for p in peers if p]
            if ours and peers:
                best = min(peers)
                lines.append(
                    f"- {d}: callreview transcription RTF {ours:.3f} / fastest faster-whisper "
                    f"int8 {best:.3f} = {ours / best:.2f} (target <= 1.0)"
                )
    if "callreview-run" in by and fw:
        peers = [r for r in fw if rtf(r, "sample_calls")]
        if peers:
            best = min(peers, key=lambda r: rtf(r, "sample_calls"))
            fw_wall = sum(c["wall_s"] for c in best["calls"] if c["domain"] == "sample_calls")
            run = by["callreview-run"]
            lines.append(
                f"- sample calls: `callreview run` end to end {run['wall_s']:.0f} s / "
                f"{best['system']} transcription alone {fw_wall:.0f} s = "
                f"{run['wall_s'] / fw_wall:.2f} (target <= 1.0); "
                f"{len(run['calls']) / run['wall_s'] * 3600:.0f} calls per hour"
            )
    return lines


def _one_form_cell(r: dict) -> str:
    """CER with numbers in one form (one_form) per eval domain and pooled; '-' where not run."""

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.1%}"

    short = {"read": "read", "customer_service": "cs", "sample_calls": "sample"}
    cells = [
        f"{short[d]} {pct(score.get('cer_one_form'))}"
        for d, score in r["cer"].items()
        if score.get("cer_one_form") is not None
    ]
    if r.get("cer_pooled_eval_one_form") is not None:
        cells.append(f"pooled {pct(r['cer_pooled_eval_one_form'])}")
    return " / ".join(cells) or "-"


def markdown_table(rows: list[dict], failed: list[str]) -> str:
    head = [
        "system",
        "id",
        "beam",
        *DOMAIN_LABELS.values(),
        "CER eval pooled",
        "CER, numbers in one form",
        "phrase recall sample calls",
        "RTF",
        "RTF sample calls",
        "load s",
        "peak RSS MB",
        "chars on noise",
        "noise s",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cers = [
            f"{r['cer'][d]['cer']:.1%}" if r["cer"][d]["cer"] is not None else "-"
            for d in DOMAIN_LABELS
        ]
        cells = [
            r["label"],
            r["system"],
            str(r["beam"]),
            *cers,
            f"{r['cer_pooled_eval']:.1%}" if r.get("cer_pooled_eval") is not None else "-",
            _one_form_cell(r),
            f"{r['phrase_recall']['recall']:.1%}" if r.get("phrase_recall") else "-",
            f"{r['rtf']:.3f}",
            f"{r['rtf_by_domain']['sample_calls']:.3f}"
            if "sample_calls" in r["rtf_by_domain"]
            else "-",
            f"{r['load_s']:.2f}",
            f"{r['peak_rss_mb']:.0f}",
            str(r["noise_chars"]),
            f"{r['noise_wall_s']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [f"| {s} | failed: see the log |" + " |" * (len(head) - 2) for s in failed]
    extra = ratios(rows)
    return "\n".join(lines + ([""] + extra if extra else []))


def load_average() -> float:
    return os.getloadavg()[0]


def versions() -> dict[str, str]:
    from pipeline.review import versions as package_versions

    return package_versions(
        (
            "openai-whisper",
            "faster-whisper",
            "ctranslate2",
            "torch",
            "onnxruntime",
            "silero-vad",
            "opencc",
        )
    )


def data_summary(calls: list[CallPlan]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for c in calls:
        d = out.setdefault(c.domain, {"calls": 0, "channels": 0, "clips": 0})
        d["calls"] += 1
        d["channels"] += len(c.references)
        d["clips"] += len(c.clips)
    return out


def write_results(out: Path, report: dict, table: str) -> None:
    """The result JSON and its markdown table beside it."""
    out.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
    print(f"[benchmark] wrote {out} and {out.with_suffix('.md').name}", file=sys.stderr)


def run_benchmark(args: argparse.Namespace) -> int:
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        print(f"unknown systems {unknown}; choose from {', '.join(SYSTEMS)}", file=sys.stderr)
        return 2
    load_start = load_average()
    if load_start > LOAD_WARNING:
        print(
            f"[benchmark] WARNING: load average {load_start:.2f} > {LOAD_WARNING}: the machine "
            "is busy and timings will be inflated",
            file=sys.stderr,
        )

    calls = plan_eval_calls(args.limit, args.seed) + plan_sample_calls(args.samples, args.max_calls)
    if not calls:
        print("[benchmark] no evaluation audio found: nothing to benchmark", file=sys.stderr)
        return 0
    # Build (or check) both weight formats now, so no worker's load time includes a build.
    from pipeline.asr import prepare, prepare_ct2_dir

    prepare(models_dir())
    if any(s.startswith("fw-") for s in systems):
        prepare_ct2_dir(models_dir())

    rows: list[dict] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="callreview-bench-") as tmp_name:
        tmp = Path(tmp_name)
        plan_file = tmp / "plan.json"
        plan = {"calls": [asdict(c) for c in calls], "noise": asdict(noise_plan(args.seed))}
        plan_file.write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
        for system in systems:
            worker = spawn_worker(system, plan_file, args.threads, tmp)
            if worker is None:
                failed.append(system)
            else:
                rows.append(score(worker, calls))

    table = markdown_table(rows, failed)
    print(table)
    out = args.out or RESULTS_DIR / (
        time.strftime("%Y-%m-%d") + (f"-limit{args.limit}" if args.limit else "") + ".json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_start": round(load_start, 2),
            "load_average_end": round(load_average(), 2),
        },
        "versions": versions(),
        "options": {
            "limit": args.limit,
            "max_calls": args.max_calls,
            "threads": args.threads,
            "seed": args.seed,
            "clips_per_channel": CLIPS_PER_CHANNEL,
            "gap_range_s": GAP_RANGE_S,
            "noise_dbfs": NOISE_DBFS,
        },
        "data": data_summary(calls),
        "systems": rows,
        "failed": failed,
        "table": table,
    }
    write_results(out, report, table)
    return 1 if failed else 0


def rescore(files: list[Path], out: Path | None, samples: Path) -> int:
    """Score again the hypotheses stored in earlier result files (no transcription): every
    system of every file, with today's scoring, in one table. The files must share options."""
    reports = [json.loads(f.read_text(encoding="utf-8")) for f in files]
    options = reports[0]["options"]
    if any(r["options"] != options for r in reports[1:]):
        print("[benchmark] --rescore: the files were run with different options", file=sys.stderr)
        return 2
    calls = plan_eval_calls(options["limit"], options["seed"]) + plan_sample_calls(
        samples, options["max_calls"]
    )
    scored = {"cer_pooled_eval", "cer_pooled_eval_one_form", "phrase_recall", "label", "beam"}
    scored |= {"cer", "rtf", "rtf_by_domain", "noise_chars"}
    rows = [
        score({k: v for k, v in worker.items() if k not in scored}, calls)
        for r in reports
        for worker in r["systems"]
    ]
    ran = {row["system"] for row in rows}  # a system that failed in one file and ran in another
    failed = [s for r in reports for s in r["failed"] if s not in ran]
    table = markdown_table(rows, failed)
    print(table)
    out = out or files[0].with_name(files[0].stem + "-rescored.json")
    report = {
        **reports[0],
        "rescored_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rescored_from": [str(f) for f in files],
        "command": " ".join(sys.argv),
        "systems": rows,
        "failed": failed,
        "table": table,
    }
    write_results(out, report, table)
    return 0


# --------------------------------------------------------------------------------------------
# Memory and calls per hour on a large folder (--memory 20,500)
# --------------------------------------------------------------------------------------------

CUT_S = 10.0


def cuts_folder(folder: Path, n_calls: int, samples_dir: Path) -> Path:
    """`n_calls` recordings of CUT_S seconds cut from the sample calls in turn (the k-th pass
    takes the k-th 10 s of each call), under new call ids: a big folder that runs in minutes."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    with (samples_dir / "manifest.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    audio = {r["call_id"]: sf.read(samples_dir / r["path"], dtype="float32") for r in rows}
    out = []
    for i in range(n_calls):
        row = dict(rows[i % len(rows)])
        data, sr = audio[row["call_id"]]
        n = int(CUT_S * sr)
        start = (i // len(rows) * n) % max(1, len(data) - n)
        name = f"cut{i:05d}.wav"
        sf.write(folder / name, data[start : start + n], sr)
        row.update(path=name, call_id=f"cut{i:05d}-{row['call_id']}")
        out.append(row)
    with (folder / "manifest.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(out[0]))
        writer.writeheader()
        writer.writerows(out)
    return folder


def run_memory_worker(n_calls: int, samples_dir: Path, threads: int, result_file: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="callreview-mem-") as tmp:
        folder = cuts_folder(Path(tmp) / "calls", n_calls, samples_dir)
        wall, rss, out = run_cli(folder, Path(tmp) / "mem.duckdb", threads)
    result = {
        "calls": n_calls,
        "audio_h": round(n_calls * CUT_S / 3600, 3),
        "wall_s": round(wall, 1),
        "calls_per_hour": round(n_calls / wall * 3600),
        "audio_hours_per_wall_hour": round(n_calls * CUT_S / wall, 1),
        "peak_rss_mb": round(rss, 1),
        "summary": " ".join(out.split())[-400:],
    }
    result_file.write_text(json.dumps(result), encoding="utf-8")


def run_memory(sizes: list[int], args: argparse.Namespace) -> int:
    rows = []
    with tempfile.TemporaryDirectory(prefix="callreview-bench-") as tmp:
        for n in sizes:
            result_file = Path(tmp) / f"mem{n}.json"
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--memory-run",
                str(n),
                "--result",
                str(result_file),
                "--threads",
                str(args.threads),
                "--samples",
                str(args.samples),
            ]
            print(f"[benchmark] callreview run on {n} cut calls", file=sys.stderr, flush=True)
            if subprocess.run(cmd, cwd=ROOT).returncode != 0:
                print(f"[benchmark] the {n}-call run failed", file=sys.stderr)
                return 1
            rows.append(json.loads(result_file.read_text(encoding="utf-8")))
    head = ["calls", "audio h", "wall s", "calls/hour", "audio h per wall h", "peak RSS MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r["calls"],
            r["audio_h"],
            r["wall_s"],
            r["calls_per_hour"],
            r["audio_hours_per_wall_hour"],
            r["peak_rss_mb"],
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    if len(rows) >= 2:
        ratio = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
        lines += [
            "",
            f"- peak RSS, {rows[-1]['calls']} calls / {rows[0]['calls']} calls = {ratio:.2f} "
            "(target <= 1.3)",
        ]
    table = "\n".join(lines)
    print(table)
    out = args.out or RESULTS_DIR / (time.strftime("%Y-%m-%d") + "-memory.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "runs": rows,
        "table": table,
    }
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--limit", type=int, default=None, help="clips per eval domain (default: all)")
    p.add_argument("--max-calls", type=int, default=None, help="sample calls to use (default: all)")
    p.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma list (default: all): {', '.join(SYSTEMS)}",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="result JSON (default: benchmarks/results/<date>[-limitN].json; "
        "a .md table is written next to it)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="CPU threads per system (default: all cores)",
    )
    p.add_argument("--seed", type=int, default=0, help="clip order and gap noise")
    p.add_argument(
        "--samples",
        type=Path,
        default=SAMPLES_DIR,
        help="folder with the sample calls' manifest.csv and ground_truth.json",
    )
    p.add_argument(
        "--memory",
        default=None,
        help="instead: `callreview run` on folders of N 10 s cuts of the sample calls, e.g. "
        "20,500: wall time, calls per hour and peak RSS of each",
    )
    p.add_argument(
        "--rescore",
        type=Path,
        nargs="+",
        default=None,
        help="instead: score again the hypotheses stored in these result files (no "
        "transcription; today's scoring, e.g. the one-form CER), one table",
    )
    p.add_argument("--memory-run", type=int, help=argparse.SUPPRESS)
    # Internal: run one system (used by the parent process).
    p.add_argument("--worker", choices=list(SYSTEMS), help=argparse.SUPPRESS)
    p.add_argument("--plan", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if str(ROOT) not in sys.path:  # `pipeline` importable without an editable install too
        sys.path.insert(0, str(ROOT))
    if args.worker:
        run_worker(args.worker, args.plan, args.result, args.threads)
        return 0
    if args.memory_run:
        run_memory_worker(args.memory_run, args.samples, args.threads, args.result)
        return 0
    if args.memory:
        return run_memory([int(n) for n in args.memory.split(",")], args)
    if args.rescore:
        return rescore(args.rescore, args.out, args.samples)
    return run_benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
