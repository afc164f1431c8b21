"""pipeline.asr.decode on the real model and real call audio: the fp32 greedy decoder is
whisper.decode token for token, batching changes nothing, and the faster compute modes stay
close to fp32."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import whisper

from pipeline.asr import CHECKPOINT_NAME, load_asr_runtime
from pipeline.asr.compute import cpu_has_native_bf16, resolve_compute
from pipeline.asr.decode import AsrRuntime, decode_batch, log_mels, make_runtime
from pipeline.asr.measure import RECORD_NAME, candidate_modes, machine_key, measured_compute
from pipeline.audio import SAMPLE_RATE, load_call
from pipeline.config import default_config
from pipeline.evaluation import cer
from pipeline.records import Segment
from pipeline.transcribe import decode_pass
from pipeline.windows import Piece, Window

from .conftest import SAMPLES

SR = SAMPLE_RATE


@pytest.fixture(scope="module")
def windows() -> list[np.ndarray]:
    """Four windows as the pipeline feeds them (each padded to 30 s): call speech with pauses
    (30 s, 12 s, 10 s) and a mostly silent one (1.5 s of speech, then line noise)."""
    refund = load_call(SAMPLES / "A01-E-refund.ogg")
    billing = load_call(SAMPLES / "A02-C-billing.ogg")
    noise = np.random.default_rng(0).normal(0, 1e-3, 28 * SR).astype(np.float32)
    return [
        refund.clip("agent", 0, 30),
        refund.clip("customer", 0, 12),
        billing.clip("agent", 30, 40),
        np.concatenate([billing.clip("customer", 0, 1.5), noise]),
    ]


@pytest.fixture(scope="module")
def fp32(asr_model) -> AsrRuntime:
    return make_runtime(asr_model, "fp32")


@pytest.fixture(scope="module")
def fp32_batch(fp32, windows):
    return decode_batch(fp32, windows, 0.0)


def test_fp32_is_whisper_decode(asr_model, fp32, windows, fp32_batch):
    options = whisper.DecodingOptions(language="zh", without_timestamps=False, fp16=False)
    with torch.inference_mode():
        expected = whisper.decode(asr_model, log_mels(fp32, windows), options)
    assert any(t >= fp32.rules.timestamp_begin for t in fp32_batch[0].tokens)
    for ours, ref in zip(fp32_batch, expected, strict=True):
        assert ours.tokens == tuple(ref.tokens)
        assert ours.text == ref.text
        assert ours.avg_logprob == pytest.approx(ref.avg_logprob, abs=1e-5)
        assert ours.no_speech_prob == pytest.approx(ref.no_speech_prob, abs=1e-5)
        assert ours.compression_ratio == pytest.approx(ref.compression_ratio, abs=1e-9)
    assert len(fp32_batch[3].tokens) < 20  # the silent window: a few words, no invented text


def _whisper_decode(model, runtime: AsrRuntime, windows, prompt: str):
    options = whisper.DecodingOptions(
        language="zh", without_timestamps=False, fp16=False, prompt=prompt
    )
    with torch.inference_mode():
        return whisper.decode(model, log_mels(runtime, windows), options)


def test_fast_decoder_with_the_hotword_prompt_is_whisper_decode(asr_model, fp32, windows):
    """The prompt is prefilled as <|startofprev|> + tokens before the sot sequence: the same
    tokens, scores and no-speech probability (read at <|startoftranscript|>, after the prompt)
    as whisper.decode given the same prompt."""
    config = default_config()
    prompt = replace(config.asr, hotword_prompt=True).prompt
    assert prompt.startswith("您好、") and prompt.endswith("。")
    ours = decode_batch(fp32, windows, 0.0, prompt=prompt)
    expected = _whisper_decode(asr_model, fp32, windows, prompt)
    for got, ref in zip(ours, expected, strict=True):
        assert got.tokens == tuple(ref.tokens)
        assert got.avg_logprob == pytest.approx(ref.avg_logprob, abs=1e-5)
        assert got.no_speech_prob == pytest.approx(ref.no_speech_prob, abs=1e-5)
    plain = decode_batch(fp32, windows[3:], 0.0)[0]
    assert ours[3].no_speech_prob != pytest.approx(plain.no_speech_prob, abs=1e-4)


def test_a_prompt_longer_than_whispers_window_is_cut_as_whisper_cuts_it(asr_model, fp32, windows):
    """Whisper keeps the last n_text_ctx // 2 - 1 tokens of previous text and stops when the
    tokens outgrow the text context: the fast decoder does the same."""
    long = "，".join(["您好请问您有什么需要帮助的"] * 40) + "。"
    assert len(fp32.tokenizer.encode(" " + long)) > fp32.model.dims.n_text_ctx // 2
    ours = decode_batch(fp32, windows[1:2], 0.0, prompt=long)[0]
    ref = _whisper_decode(asr_model, fp32, windows[1:2], long)[0]
    assert ours.tokens == tuple(ref.tokens)
    assert ours.no_speech_prob == pytest.approx(ref.no_speech_prob, abs=1e-5)


def test_batching_changes_nothing(fp32, windows, fp32_batch):
    alone = [decode_batch(fp32, [w], 0.0)[0] for w in windows]
    assert [d.tokens for d in alone] == [d.tokens for d in fp32_batch]
    for a, b in zip(alone, fp32_batch, strict=True):
        assert a.avg_logprob == pytest.approx(b.avg_logprob, abs=1e-5)


@pytest.mark.parametrize("compute", ["int8", "bf16"])
def test_fast_modes_stay_close_to_fp32(asr_model, windows, fp32_batch, compute):
    # bf16 runs everywhere: where the CPU lacks native bf16, oneDNN emulates it (slower, and
    # `auto` does not pick it there), so its correctness is checked on every machine.
    runtime = make_runtime(asr_model, compute)
    assert runtime.compute == compute
    got = decode_batch(runtime, windows, 0.0)
    reference = "".join(d.text for d in fp32_batch)
    assert cer("".join(d.text for d in got), reference) < 0.08
    assert got[0].tokens[:2] == fp32_batch[0].tokens[:2]


def test_compute_modes_resolve():
    cpu = resolve_compute("auto", "cpu")
    assert cpu == ("bf16" if cpu_has_native_bf16() else "int8")
    assert resolve_compute("auto", "cuda") == "fp16"
    assert resolve_compute("int8", "cuda") == "fp32"
    with pytest.raises(ValueError):
        resolve_compute("fp16", "cpu")
    with pytest.raises(ValueError):
        resolve_compute("int4", "cpu")


def test_auto_is_the_mode_measured_fastest_here_measured_once_and_recorded(asr_model, tmp_path):
    mode = measured_compute(asr_model, tmp_path)
    record = json.loads((tmp_path / RECORD_NAME).read_text(encoding="utf-8"))
    entry = record[machine_key(asr_model.dims)]
    assert set(entry["seconds"]) == set(candidate_modes())  # bf16 only where it is native
    assert all(s > 0 for s in entry["seconds"].values())
    assert mode == entry["mode"] == min(entry["seconds"], key=entry["seconds"].__getitem__)
    # Later loads read the record, not the clock: a choice written there (by hand) is run.
    other = next(m for m in candidate_modes() if m != mode)
    entry["mode"] = other
    (tmp_path / RECORD_NAME).write_text(json.dumps(record), encoding="utf-8")
    checkpoint = default_config().run.models_dir / CHECKPOINT_NAME
    assert load_asr_runtime(str(checkpoint), "cpu", tmp_path, "auto").compute == other
    assert load_asr_runtime(str(checkpoint), "cpu", tmp_path, "fp32").compute == "fp32"


def test_transcribe_takes_a_runtime(fp32, windows, fp32_batch):
    """pipeline.transcribe decodes through the runtime; the fallback path (temperature > 0)
    hands the runtime's features to whisper.decode."""
    clip = windows[3]
    piece = Piece(Segment(0.0, len(clip) / SR, "customer"), 0.0)
    plain = replace(default_config().asr, hotword_prompt=False)  # as fp32_batch was decoded
    out = decode_pass(fp32, [Window("c", clip, (piece,))], plain)
    assert out[0].avg_logprob == pytest.approx(fp32_batch[3].avg_logprob, abs=1e-5)
    hot = decode_batch(fp32, [windows[2]], 0.4)[0]
    assert hot.tokens and cer(hot.text, fp32_batch[2].text) < 0.5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA test: runs on a CUDA machine only")
def test_cuda_fp16_stays_close_to_cpu_fp32(windows, fp32_batch):
    """On a GPU machine: the fp16 CUDA path against the CPU fp32 reference, within the same
    tolerance as the CPU fast modes (docs: [asr] compute)."""
    from pipeline.asr import load_asr_model

    model = load_asr_model(None, "cuda", default_config().run.models_dir)
    runtime = make_runtime(model, "auto")
    assert runtime.compute == "fp16"
    got = decode_batch(runtime, windows, 0.0)
    reference = "".join(d.text for d in fp32_batch)
    assert cer("".join(d.text for d in got), reference) < 0.08
    assert got[0].tokens[:2] == fp32_batch[0].tokens[:2]


def test_the_sampling_fallback_gives_the_same_text_in_every_run(fp32, windows):
    """A looping window falls back to sampling at rising temperature: from a fixed seed, so a
    call's text does not change from run to run, and the caller's random state is untouched."""
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = decode_batch(fp32, windows[2:3], 0.8)[0]
    torch.rand(7)  # any other use of the global generator in between
    second = decode_batch(fp32, windows[2:3], 0.8)[0]
    assert first.tokens == second.tokens and first.text
    torch.manual_seed(123)
    decode_batch(fp32, windows[2:3], 0.8)
    assert torch.equal(torch.rand(1), before)  # the decode's sampling did not move it
