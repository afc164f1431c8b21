"""Settings, read once into frozen typed records and passed down as arguments.

The defaults and their documentation are one file, pipeline/data/callreview.toml. A user's
callreview.toml (or --config FILE) overrides any key of it, then CALLREVIEW_* environment
variables, then CLI flags. `load_config` does that merge once; every stage then receives the
part it needs (`VadOptions`, `AsrOptions`, ...) the way openai-whisper passes DecodingOptions.
Nothing under pipeline/ reads the environment: the caller hands `env` in.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass

from pipeline.asr_options import AsrOptions
from pipeline.behaviours.settings import BehaviourSettings, load_behaviour_settings
from pipeline.coaching.options import CoachingOptions
from pipeline.errors import ConfigError
from pipeline.speakers.options import SpeakerOptions

DATA_DIR = Path(__file__).resolve().parent / "data"
REPO_DIR = Path(__file__).resolve().parents[1]
DEFAULTS_FILE = DATA_DIR / "callreview.toml"
USER_FILE = "callreview.toml"  # looked for in the working folder
ENV_PREFIX = "CALLREVIEW_"
# Shortcut variables kept from the first release: CALLREVIEW_DB is CALLREVIEW_RUN__DB, ...
ENV_SHORTCUTS = {k.upper(): ("run", k) for k in ("db", "model", "device", "models_dir")} | {
    k.upper(): ("lexicon", k) for k in ("phrases", "jargon", "hallucinations")
}
_STRICT = ConfigDict(extra="forbid", frozen=True)


@dataclass(config=_STRICT)
class RunSettings:
    db: Path
    model: str | None  # None: the prepared default checkpoint
    device: str | None  # None: cuda when available, else cpu
    models_dir: Path
    chunk_calls: Annotated[int, Field(ge=1)] = 16  # calls per chunk (one transaction each)
    workers: Annotated[int, Field(ge=1)] = 2  # concurrent preparation / measurement tasks
    settle_s: Annotated[float, Field(ge=0)] = 10.0  # files modified more recently wait a run
    reports_dir: Path | None = None  # None: no team site; a folder: `report --all` after each run
    dask_address: str | None = None  # tcp://host:8786: the tasks run there (flows/cluster.py)
    dask_workers: Annotated[int, Field(ge=0)] = 0  # > 0: a local cluster of this many processes
    reprocess_per_run: Annotated[int, Field(ge=0)] = 100  # older-pipeline calls redone a run
    derive_batch_calls: Annotated[int, Field(ge=1)] = 10_000  # ok calls per derive batch


@dataclass(config=_STRICT)
class ScheduleSettings:  # when the nightly deployment fires (`callreview serve` / `deploy`)
    cron: str = "0 2 * * *"
    timezone: str | None = None  # IANA name (Asia/Shanghai); None: the Prefect server's


@dataclass(config=_STRICT)
class AudioOptions:  # what recordings are accepted (docs/CONTRACTS.md, "Input")
    max_duration_s: float
    min_duration_s: float


@dataclass(config=_STRICT)
class VadOptions:
    threshold: float
    min_speech_s: float
    min_silence_s: float
    speech_pad_s: float
    max_utterance_s: float


@dataclass(config=_STRICT)
class ToneOptions:
    speech_rate_max_cpm: float
    rate_min_duration_s: float
    dead_air_min_s: float
    overtalk_min_s: float
    interrupt_min_s: float
    silence_dbfs: float
    hold_min_s: float
    mute_dbfs: float
    mute_min_s: float


@dataclass(config=_STRICT)
class ProsodyOptions:
    sample_rate: int  # rate of the clips handed in (16 kHz in the pipeline)
    work_rate: int  # every clip is resampled to this (telephone rate) before analysis
    band_lo_hz: float  # telephone band: spectral figures use only this band
    band_hi_hz: float
    window_s: float  # analysis window (YIN integration window and spectrum frame)
    hop_s: float
    fmin_hz: float  # pitch search range
    fmax_hz: float
    yin_threshold: float  # YIN: first dip of the normalised difference below this is the period
    max_aperiodicity: float  # a frame is voiced when its YIN aperiodicity is below this ...
    active_range_db: float  # ... and its level is within this of the clip's loud level (95th pct)
    floor_percentile: float  # noise floor: this percentile over frames of each bin's power
    floor_margin_db: float  # and at least this far above the noise floor
    min_snr_db: float  # the floor is taken to be at least this far below the loud level
    pitch_highpass_hz: float  # the pitch tracker sees the clip high-passed here
    pitch_span_st: float  # over the clip's 10th percentile pitch: a harmonic lock, dropped
    min_voiced_frames: int  # fewer voiced frames than this: no pitch or spectral figures
    # pitch path over band and envelope candidates (see pipeline.prosody.track)
    envelope_lowpass_hz: float = 1000.0  # the squared band signal is band-passed up to this
    octave_cost: float = 0.01  # per octave down: ties go to the shorter period
    octave_jump_cost: float = 0.35  # per octave of pitch change between neighbouring frames


@dataclass(config=_STRICT)
class AgitationSpec:
    """Which features make agitation, their weights (signed: the direction of arousal) and the
    floors on each baseline standard deviation; `high` flags an utterance as agitated."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    std_floors: tuple[float, ...]
    high: float
    min_baseline_utterances: int


@dataclass(config=_STRICT)
class BaselineOptions:
    min_utterances: int
    min_std_pitch_st: float
    min_std_pitch_range_st: float
    min_std_loudness_db: float
    min_std_rate_cpm: float


@dataclass(config=_STRICT)
class ClarityOptions:
    long_sentence_chars: int
    repeat_similarity: float
    repeat_min_chars: int


@dataclass(config=_STRICT)
class CohortOptions:
    early_days: int
    current_days: int
    fallback_calls: int


@dataclass(config=_STRICT)
class AlignOptions:
    min_similarity: float
    gap_penalty: float
    context_weight: float
    backchannel_max_chars: int = 8


@dataclass(config=_STRICT)
class PhraseList:
    name: str
    speaker: str  # whose speech the list is counted on: agent | customer
    phrases: tuple[str, ...]


@dataclass(config=_STRICT)
class Rule:
    """A QA rule flag: a call metric compared with a threshold (pipeline/data/rules.toml)."""

    name: str
    label: str  # what QA leads call it, e.g. 语速过快
    metric: str  # a call_metrics column
    op: str  # > >= < <=
    threshold: float


@dataclass(config=_STRICT)
class Lexicon:
    """The editable word lists, loaded from the files [lexicon] names."""

    phrases: tuple[PhraseList, ...]
    jargon: tuple[str, ...]
    rules: tuple[Rule, ...] = ()
    behaviours: BehaviourSettings | None = None  # pipeline/behaviours/settings.py

    def phrase_list(self, name: str) -> tuple[str, ...]:
        return next((pl.phrases for pl in self.phrases if pl.name == name), ())


@dataclass(config=_STRICT)
class Config:
    run: RunSettings
    schedule: ScheduleSettings
    audio: AudioOptions
    vad: VadOptions
    asr: AsrOptions
    tone: ToneOptions
    prosody: ProsodyOptions
    agitation: AgitationSpec
    baseline: BaselineOptions
    clarity: ClarityOptions
    cohorts: CohortOptions
    alignment: AlignOptions
    speakers: SpeakerOptions
    lexicon: Lexicon
    coaching: CoachingOptions = CoachingOptions()  # [coaching]: coaching outcomes
    sources: tuple[str, ...] = ()  # the files and variables this config was read from


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"settings file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def _resolve_path(value: str, base: Path) -> str:
    """'@data/x' -> the package data folder; '@repo/x' -> the repo; relative -> against base."""
    if value.startswith("@data/"):
        return str(DATA_DIR / value.removeprefix("@data/"))
    if value.startswith("@repo/"):
        return str(REPO_DIR / value.removeprefix("@repo/"))
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else base / p)


_LEXICON_FILES = ("phrases", "jargon", "hallucinations", "rules", "behaviours", "recite_exempt")
_PATH_KEYS = {
    ("run", "models_dir"),
    ("run", "reports_dir"),
    ("agitation", "file"),
    ("asr", "hotwords"),
}
_PATH_KEYS |= {("lexicon", k) for k in (*_LEXICON_FILES, "knowledge_base")}


def _merge(base: dict[str, Any], layer: Mapping[str, Any], where: str, root: Path) -> None:
    """Overlay one settings layer; unknown sections or keys are errors, not silently ignored."""
    for section, values in layer.items():
        if section not in base or not isinstance(values, Mapping):
            raise ConfigError(f"{where}: unknown section [{section}]; known: {', '.join(base)}")
        for key, value in values.items():
            if key not in base[section]:
                raise ConfigError(
                    f"{where}: unknown key {key!r} in [{section}]; known: "
                    f"{', '.join(base[section])}"
                )
            if (section, key) in _PATH_KEYS and isinstance(value, str) and value:
                value = _resolve_path(value, root)
            base[section][key] = value


def _env_layer(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    layer: dict[str, dict[str, str]] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        rest = name.removeprefix(ENV_PREFIX)
        if rest in ENV_SHORTCUTS:
            section, key = ENV_SHORTCUTS[rest]
        elif "__" in rest:
            section, key = (part.lower() for part in rest.split("__", 1))
        else:
            continue  # not a settings variable (e.g. one a test harness sets)
        layer.setdefault(section, {})[key] = value
    return layer


def _read_phrases(path: Path) -> tuple[PhraseList, ...]:
    raw = _read_toml(path)
    try:
        return tuple(
            PhraseList(name=n, speaker=sec.get("speaker", "agent"), phrases=tuple(sec["phrases"]))
            for n, sec in raw.items()
        )
    except (KeyError, TypeError, AttributeError, ValidationError) as e:
        raise ConfigError(f"{path}: each [list] needs `phrases = [...]`: {e}") from None


def _read_rules(path: Path) -> tuple[Rule, ...]:
    raw = _read_toml(path)
    try:
        return tuple(Rule(name=name, **values) for name, values in raw.items())
    except (TypeError, ValidationError) as e:
        raise ConfigError(f"{path}: each [rule] needs label, metric, op, threshold: {e}") from None


def load_agitation(path: Path) -> tuple[ProsodyOptions, AgitationSpec]:
    """The voice-analysis settings and the fitted agitation model (pipeline/data/agitation.toml,
    written by scripts/validate_agitation.py --fit --write)."""
    data = _read_toml(path)
    try:
        feats = data["agitation"]["features"]
        spec = AgitationSpec(
            features=tuple(feats),
            weights=tuple(float(feats[k]["weight"]) for k in feats),
            std_floors=tuple(float(feats[k]["std_floor"]) for k in feats),
            high=float(data["agitation"]["high"]),
            min_baseline_utterances=int(data["agitation"]["min_baseline_utterances"]),
        )
        return ProsodyOptions(**data["prosody"]), spec
    except (KeyError, TypeError, ValidationError) as e:
        raise ConfigError(f"{path}: not an agitation model file: {e}") from None


def _read_lines(path: Path) -> tuple[str, ...]:
    """One entry per line; '#' starts a comment."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"word list not found: {path}") from None
    entries = (line.split("#", 1)[0].strip() for line in lines)
    return tuple(e for e in entries if e)


def find_config_file(cwd: Path, env: Mapping[str, str], flag: Path | None = None) -> Path | None:
    """--config FILE, else CALLREVIEW_CONFIG, else callreview.toml in the working folder."""
    if flag is not None:
        return flag
    if env.get(ENV_PREFIX + "CONFIG"):
        return Path(env[ENV_PREFIX + "CONFIG"])
    candidate = cwd / USER_FILE
    return candidate if candidate.is_file() else None


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    cwd: Path | None = None,
) -> Config:
    """Defaults <- settings file <- environment <- overrides (CLI flags), validated and typed."""
    cwd = cwd or Path.cwd()
    merged = _read_toml(DEFAULTS_FILE)
    sources = [str(DEFAULTS_FILE)]
    for section, key in _PATH_KEYS:
        if merged[section][key]:  # "" stays "": not set
            merged[section][key] = _resolve_path(merged[section][key], DATA_DIR)
    if path is not None:
        _merge(merged, _read_toml(path), str(path), Path(path).resolve().parent)
        sources.append(str(path))
    env_layer = _env_layer(env or {})
    if env_layer:
        _merge(merged, env_layer, "environment (CALLREVIEW_*)", cwd)
        sources.append("environment")
    if overrides:
        layer = {s: {k: v for k, v in kv.items() if v is not None} for s, kv in overrides.items()}
        _merge(merged, layer, "command line", cwd)
    run = dict(merged["run"])
    run["db"] = str(cwd / run["db"]) if not Path(run["db"]).is_absolute() else run["db"]
    for key in ("model", "device", "reports_dir", "dask_address"):
        run[key] = run[key] or None
    merged["schedule"]["timezone"] = merged["schedule"]["timezone"] or None
    lex = merged.pop("lexicon")
    prosody, agitation = load_agitation(Path(merged.pop("agitation")["file"]))
    try:
        lexicon = Lexicon(
            phrases=_read_phrases(Path(lex["phrases"])),
            jargon=_read_lines(Path(lex["jargon"])),
            rules=_read_rules(Path(lex["rules"])),
            behaviours=load_behaviour_settings(lex),
        )
        asr = {
            **merged["asr"],
            "hotwords": _read_lines(Path(hotwords))
            if (hotwords := merged["asr"]["hotwords"])
            else (),
            "hallucinations": _read_lines(Path(lex["hallucinations"])),
        }
        return Config(
            **{
                **merged,
                "run": run,
                "asr": asr,
                "lexicon": lexicon,
                "prosody": prosody,
                "agitation": agitation,
                "sources": tuple(sources),
            }
        )
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"invalid settings ({', '.join(sources)}): {problems}") from None


def default_config() -> Config:
    """The shipped defaults alone: for tests and notebooks that want no user overrides."""
    return load_config(path=None, env={}, cwd=Path.cwd())
