"""Fast greedy decoding of 30 s windows with an openai-whisper model.

`decode_batch(runtime, audio, 0.0)` gives, in fp32, the tokens and scores of
`whisper.decode(model, mels, DecodingOptions(task="transcribe", language="zh",
without_timestamps=False))` -- SuppressBlank, suppress_tokens "-1", the timestamp rules with
max_initial_timestamp 1.0, sample_len n_text_ctx // 2 -- with its own decoder loop:
cross-attention keys/values projected once into contiguous [batch, heads, 1500, dim] tensors
(whisper re-permutes its cached ones at every step), a preallocated head-major self-attention
cache, logits as F.linear(x, token_embedding.weight), the logit rules applied to the whole batch
at once, and rows that reached end-of-text dropped from the batch. With a prompt (the hotwords,
[asr] hotword_prompt) it gives whisper.decode's result for DecodingOptions(prompt=...): the
prompt's tokens are prefilled after <|startofprev|>, before the sot sequence.

How the model's weights are run is decided once, by make_runtime (`compute`, [asr] compute;
pipeline/asr/compute.py):
  fp32  the reference arithmetic.
  int8  the vocabulary projection (51865 x 512, the largest matrix read at every step) in int8;
        the top RESCORE text tokens of each row and every special/timestamp token are then
        recomputed in fp32, so the chosen tokens are fp32's. int8 Linear layers in the encoder
        or decoder cost 1-5 CER points on our eval set: they stay fp32.
  bf16  CPUs with native bf16 matmul (AMX / AVX512-BF16): the encoder under bf16 autocast, the
        decoder's Linear layers and attention caches in bf16, the vocabulary as in int8.
  fp16  CUDA: as bf16, in fp16.
  auto  fp16 on CUDA, bf16 where the CPU has native bf16, else int8; a run's loader measures
        instead which mode is fastest on the CPU, once per machine (pipeline/asr/measure.py).
Temperature > 0 (the fallback for a looping window) runs whisper.decode on the runtime's
audio features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import whisper
from torch import Tensor, nn
from whisper.tokenizer import Tokenizer, get_tokenizer
from whisper.utils import compression_ratio

from pipeline.asr.compute import int8_projection, resolve_compute, with_dtype
from pipeline.asr.search import whisper_decode

LANGUAGE = "zh"
MAX_INITIAL_TIMESTAMP_S = 1.0
NEG_INF = float("-inf")
SAMPLING_SEED = 0  # the fallback's sampling: the same audio, the same text
RESCORE = 8  # text tokens per row whose cheap logits are recomputed exactly


@dataclass(frozen=True)
class Decoded:
    """One window's result: the sampled tokens (timestamps included, no end-of-text)."""

    tokens: tuple[int, ...]
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


@dataclass(frozen=True, eq=False)
class _Rules:
    """Token ids and masks of whisper's logit filters for transcribe/zh with timestamps."""

    sot_sequence: tuple[int, ...]
    sot_index: int
    eot: int
    no_speech: int
    timestamp_begin: int
    sample_len: int
    always: Tensor  # bool [vocab]: SuppressTokens("-1") and <|notimestamps|>
    first: Tensor  # bool [vocab]: what step 0 may not sample (also blanks, text, late times)


@dataclass(frozen=True, eq=False)
class AsrRuntime:
    """A loaded model and how it is run; build with make_runtime.

    encoder/decoder are the model's own modules, or copies whose Linear layers hold bf16 or
    int8 weights. Logits: `logits_weight` (the fp32 embedding) alone, or a cheap projection
    `logits_fast` (bf16 weight or int8 module) whose top `rescore` text tokens per row, and all
    special and timestamp tokens, are recomputed exactly with `logits_weight`.
    """

    model: whisper.Whisper
    compute: str  # resolved: fp32 | bf16 | int8 | fp16
    encoder: nn.Module
    encoder_dtype: torch.dtype | None  # autocast dtype for the encoder, None = as is
    decoder: nn.Module
    logits_weight: Tensor
    logits_fast: Tensor | nn.Module | None
    rescore: int
    tokenizer: Tokenizer
    rules: _Rules
    compact: float = 0.3  # drop finished rows once more than this share of the batch finished

    def __getattr__(self, name: str):
        """device, dims, is_multilingual, num_languages: the model's (what pipeline.transcribe
        reads off the model it is given)."""
        if name.startswith("_") or name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)


def _rules(model: whisper.Whisper, tokenizer: Tokenizer) -> _Rules:
    """whisper.decoding.DecodingTask's filters for our options, as masks over the vocabulary."""
    tok, tb, dims = tokenizer, tokenizer.timestamp_begin, model.dims
    suppress = {*tok.non_speech_tokens, tok.transcribe, tok.translate, tok.sot, tok.sot_prev}
    suppress |= {tok.sot_lm, tok.no_speech, tok.no_timestamps}
    always = torch.zeros(dims.n_vocab, dtype=torch.bool)
    always[sorted(suppress)] = True
    first = always.clone()
    first[tok.encode(" ") + [tok.eot]] = True  # SuppressBlank
    latest = round(MAX_INITIAL_TIMESTAMP_S / (whisper.audio.CHUNK_LENGTH / dims.n_audio_ctx))
    first[:tb] = first[tb + latest + 1 :] = True  # step 0: a timestamp, <= max_initial_timestamp
    sot = tuple(tok.sot_sequence)
    always, first = always.to(model.device), first.to(model.device)
    return _Rules(
        sot, sot.index(tok.sot), tok.eot, tok.no_speech, tb, dims.n_text_ctx // 2, always, first
    )


def make_runtime(model: whisper.Whisper, compute: str = "auto") -> AsrRuntime:
    """Decide once how `model` is run (see resolve_compute) and build the copies it needs."""
    model.eval()
    mode = resolve_compute(compute, model.device)
    encoder, decoder = model.encoder, model.decoder
    weight = model.decoder.token_embedding.weight
    encoder_dtype, fast, rescore = None, None, 0
    if mode == "bf16":
        encoder_dtype = torch.bfloat16
        decoder = with_dtype(model.decoder, torch.bfloat16)
    elif mode == "fp16":
        encoder_dtype = torch.float16
        decoder = with_dtype(model.decoder, torch.float16)
    if mode in ("bf16", "int8"):
        fast, rescore = int8_projection(weight), RESCORE
    elif mode == "fp16":
        fast, rescore = weight.detach().half(), RESCORE
    multilingual, n_lang = model.is_multilingual, model.num_languages
    tokenizer = get_tokenizer(multilingual, num_languages=n_lang, language=LANGUAGE)
    rules = _rules(model, tokenizer)
    return AsrRuntime(
        model, mode, encoder, encoder_dtype, decoder, weight, fast, rescore, tokenizer, rules
    )


def log_mels(runtime: AsrRuntime, audio: Sequence[np.ndarray]) -> Tensor:
    """[batch, n_mels, 3000]: each window padded to 30 s, as pipeline.transcribe did it."""
    n_mels = runtime.model.dims.n_mels
    mels = [
        whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(a)), n_mels) for a in audio
    ]
    return torch.stack(mels).to(runtime.device)


def encode(runtime: AsrRuntime, mels: Tensor) -> Tensor:
    """Audio features [batch, 1500, 512], float32 (float16 in fp16 mode)."""
    dtype = runtime.encoder_dtype
    autocast = torch.autocast(mels.device.type, dtype=dtype, enabled=dtype is not None)
    with torch.inference_mode(), autocast:
        features = runtime.encoder(mels)
    return features.half() if runtime.compute == "fp16" else features.float()


def _heads(x: Tensor, n_head: int) -> Tensor:
    """[batch, T, state] -> contiguous [batch, heads, T, dim]."""
    b, t, _ = x.shape
    return x.view(b, t, n_head, -1).transpose(1, 2).contiguous()


def _linear(module: nn.Module, x: Tensor) -> Tensor:
    """module(x) in the module's weight dtype (fp32 / bf16 / fp16 Linear, or a quantised one)."""
    weight = getattr(module, "weight", None)
    if isinstance(weight, Tensor):
        return F.linear(x.to(weight.dtype), weight, module.bias)
    return module(x)


class _State:
    """The decoder's caches for the sequences still running."""

    def __init__(self, decoder: nn.Module, features: Tensor, n_head: int, max_len: int):
        attn = [blk.cross_attn for blk in decoder.blocks]
        self.cross = [
            (_heads(_linear(a.key, features), n_head), _heads(_linear(a.value, features), n_head))
            for a in attn
        ]
        b, _, dim = features.shape
        k = self.cross[0][0]
        self.keys = [k.new_empty(b, n_head, max_len, dim // n_head) for _ in attn]
        self.values = [k.new_empty(b, n_head, max_len, dim // n_head) for _ in attn]

    def keep(self, rows: Tensor) -> None:
        self.cross = [(k[rows], v[rows]) for k, v in self.cross]
        self.keys = [k[rows] for k in self.keys]
        self.values = [v[rows] for v in self.values]


def _forward(decoder: nn.Module, state: _State, tokens: Tensor, pos: int, n_head: int) -> Tensor:
    """Hidden states after decoder.ln for `tokens` [batch, n] at positions pos..pos+n-1."""
    n = tokens.shape[1]
    x = decoder.token_embedding(tokens).float() + decoder.positional_embedding[pos : pos + n]
    end = pos + n
    for i, blk in enumerate(decoder.blocks):
        h = blk.attn_ln(x)
        keys, values = state.keys[i], state.values[i]
        keys[:, :, pos:end] = _heads(_linear(blk.attn.key, h), n_head)
        values[:, :, pos:end] = _heads(_linear(blk.attn.value, h), n_head)
        q = _heads(_linear(blk.attn.query, h), n_head).to(keys.dtype)
        a = F.scaled_dot_product_attention(q, keys[:, :, :end], values[:, :, :end], is_causal=n > 1)
        x = x + _linear(blk.attn.out, a.transpose(1, 2).flatten(2))
        q = _heads(_linear(blk.cross_attn.query, blk.cross_attn_ln(x)), n_head)
        a = F.scaled_dot_product_attention(q.to(keys.dtype), *state.cross[i])
        x = x + _linear(blk.cross_attn.out, a.transpose(1, 2).flatten(2))
        fc1, _, fc2 = blk.mlp
        x = x + _linear(fc2, F.gelu(_linear(fc1, blk.mlp_ln(x))))
    return decoder.ln(x)


def _logits(runtime: AsrRuntime, x: Tensor) -> Tensor:
    """float32 logits [..., vocab] of hidden states x [..., state]."""
    weight, fast = runtime.logits_weight, runtime.logits_fast
    x = x.float()
    if fast is None:
        return F.linear(x, weight)
    shape, x = x.shape[:-1], x.reshape(-1, x.shape[-1])
    cheap = F.linear(x.to(fast.dtype), fast) if isinstance(fast, Tensor) else fast(x)
    logits = cheap.float()
    eot = runtime.rules.eot
    logits[:, eot:] = F.linear(x, weight[eot:])  # specials and timestamps: exact
    if runtime.rescore:
        top = logits[:, :eot].topk(runtime.rescore, dim=-1).indices  # [rows, k]
        logits.scatter_(1, top, torch.einsum("bc,bkc->bk", x, weight[top]))
    return logits.view(*shape, -1)


def _timestamp_rules(
    logits: Tensor, last: Tensor, penult: Tensor, ts_last: Tensor, rules: _Rules
) -> None:
    """ApplyTimestampRules after step 0, for every row at once (in place).

    last/penult: the previous two sampled tokens were timestamps (penult True before 2 tokens);
    ts_last: the last sampled timestamp token, -1 when none.
    """
    tb, eot = rules.timestamp_begin, rules.eot
    pair_done = last & penult  # a timestamp pair: text (or end) must follow
    pair_open = last & ~penult  # an opening timestamp: a timestamp or text
    limit = torch.where(ts_last < 0, tb, torch.where(pair_open, ts_last, ts_last + 1)) - tb
    times = torch.arange(logits.shape[1] - tb, device=logits.device)
    logits[:, tb:].masked_fill_(pair_done[:, None] | (times[None, :] < limit[:, None]), NEG_INF)
    logits[:, :eot].masked_fill_(pair_open[:, None], NEG_INF)


def _prefer_timestamps(logits: Tensor, rules: _Rules) -> None:
    """Sample a timestamp when their summed probability beats every text token (in place)."""
    tb = rules.timestamp_begin
    logprobs = F.log_softmax(logits.float(), dim=-1)
    ts = logprobs[:, tb:].logsumexp(dim=-1)
    text = logprobs[:, :tb].max(dim=-1).values
    logits[:, :tb].masked_fill_((ts > text)[:, None], NEG_INF)


def prompt_tokens(runtime: AsrRuntime, prompt: str) -> list[int]:
    """`prompt` as whisper.decode gives it: encoded after a space, its last n_text_ctx // 2 - 1
    tokens kept (Whisper's previous-text window)."""
    if not prompt.strip():
        return []
    tokens = runtime.tokenizer.encode(" " + prompt.strip())
    return tokens[-(runtime.model.dims.n_text_ctx // 2 - 1) :]


def initial_tokens(runtime: AsrRuntime, prompt: str = "") -> tuple[int, ...]:
    """DecodingTask._get_initial_tokens: <|startofprev|> and the prompt, then the sot sequence."""
    previous = prompt_tokens(runtime, prompt)
    head = [runtime.tokenizer.sot_prev, *previous] if previous else []
    return (*head, *runtime.rules.sot_sequence)


def greedy(runtime: AsrRuntime, features: Tensor, prompt: str = "") -> list[Decoded]:
    """Temperature-0 decoding of encoded windows; whisper.decode's result, row for row.

    A prompt (previous text, the hotwords) is prefilled before <|startoftranscript|> with the
    rest of the initial tokens: a few tokens more in the first forward pass. Whisper reads the
    no-speech probability at <|startoftranscript|> (its sot_index, after the prompt) and stops
    once the sequence outgrows the text context, so a long prompt shortens the sampled text.
    """
    rules, decoder, device, n_batch = runtime.rules, runtime.decoder, features.device, len(features)
    init = initial_tokens(runtime, prompt)
    n_init, n_head = len(init), runtime.model.dims.n_text_head
    sot_index = init.index(runtime.tokenizer.sot)
    # whisper.decode's loop ends when the tokens outgrow n_text_ctx (one step past it)
    sample_len = min(rules.sample_len, runtime.model.dims.n_text_ctx + 1 - n_init)
    out = torch.full((n_batch, sample_len), rules.eot, dtype=torch.long)
    lengths, sums = [sample_len] * n_batch, torch.zeros(n_batch)
    with torch.inference_mode():
        state = _State(decoder, features, n_head, n_init + sample_len)
        rows, alive = torch.arange(n_batch), torch.ones(n_batch, dtype=torch.bool)  # on the CPU
        tokens = torch.tensor([init] * n_batch, device=device)
        # "fewer than two tokens sampled" counts as a timestamp before: last becomes penult
        last = penult = torch.ones(n_batch, dtype=torch.bool, device=device)
        ts_last = torch.full((n_batch,), -1, device=device)
        for step in range(sample_len):
            x = _forward(decoder, state, tokens, n_init + step - 1 if step else 0, n_head)
            if step == 0:
                logits = _logits(runtime, x[:, [sot_index, -1]])
                no_speech = logits[:, 0].softmax(dim=-1)[:, rules.no_speech].tolist()
                logits = logits[:, 1].masked_fill_(rules.first, NEG_INF)
            else:
                logits = _logits(runtime, x[:, -1]).masked_fill_(rules.always, NEG_INF)
                _timestamp_rules(logits, last, penult, ts_last, rules)
            _prefer_timestamps(logits, rules)
            chosen = logits.argmax(dim=-1)
            logprob = F.log_softmax(logits, dim=-1).gather(1, chosen[:, None])[:, 0]
            chosen_cpu, live = chosen.cpu(), rows[alive]
            sums[live] += logprob.cpu()[alive]
            out[live, step] = chosen_cpu[alive]
            penult, last = last, chosen >= rules.timestamp_begin
            ts_last = torch.where(last, chosen, ts_last)
            finished = alive & (chosen_cpu == rules.eot)
            if bool(finished.any()):
                for r in rows[finished].tolist():
                    lengths[r] = step
                alive &= ~finished
                if not bool(alive.any()):
                    break
                if float((~alive).float().mean()) > runtime.compact:
                    keep = alive.nonzero()[:, 0]
                    rows, alive, on = rows[keep], alive[keep], keep.to(device)
                    state.keep(on)
                    chosen, last, penult, ts_last = chosen[on], last[on], penult[on], ts_last[on]
            tokens = chosen[:, None]
    return [
        _result(runtime, out[i, : lengths[i]], float(sums[i]), no_speech[i]) for i in range(n_batch)
    ]


def forced_steps(runtime: AsrRuntime, features: Tensor, steps: int) -> None:
    """`steps` decoder steps over encoded windows, each feeding one fixed token as greedy feeds
    the chosen one: greedy's per-step work without its rules, for timing a compute mode
    (pipeline/asr/measure.py)."""
    n_head = runtime.model.dims.n_text_head
    with torch.inference_mode():
        state = _State(runtime.decoder, features, n_head, steps)
        tokens = torch.full(
            (len(features), 1), runtime.rules.sot_sequence[0], device=features.device
        )
        for pos in range(steps):
            _logits(runtime, _forward(runtime.decoder, state, tokens, pos, n_head)[:, -1])


def _result(runtime: AsrRuntime, tokens: Tensor, sum_logprob: float, no_speech: float) -> Decoded:
    ids = tuple(tokens.tolist())
    text = runtime.tokenizer.decode(list(ids)).strip()
    return Decoded(ids, text, sum_logprob / (len(ids) + 1), no_speech, compression_ratio(text))


def decode_batch(
    runtime: AsrRuntime,
    audio: Sequence[np.ndarray],
    temperature: float = 0.0,
    beam_size: int = 1,
    prompt: str = "",
) -> list[Decoded]:
    """Decode windows of 16 kHz float32 audio (each <= 30 s) together.

    Temperature 0, beam 1: the fast greedy decoder. Otherwise whisper.decode on the runtime's
    audio features, batched: beam search of `beam_size` at temperature 0 (the second pass for
    windows whose greedy signals are weak), best of 5 samples above 0 (the fallback for a
    looping window). `prompt` is given as previous text (the hotwords) on every path.
    """
    if not audio:
        return []
    features = encode(runtime, log_mels(runtime, audio))
    if temperature == 0 and beam_size <= 1:
        return greedy(runtime, features, prompt)
    # sampling (temperature > 0) from a fixed seed, in a forked random state: the same audio
    # gives the same text in every run, and nothing else's randomness moves
    with torch.random.fork_rng(devices=[features.device] if features.is_cuda else []):
        torch.manual_seed(SAMPLING_SEED)
        results = whisper_decode(runtime.model, features, temperature, beam_size, prompt)
    return [
        Decoded(tuple(r.tokens), r.text, r.avg_logprob, r.no_speech_prob, r.compression_ratio)
        for r in results
    ]
