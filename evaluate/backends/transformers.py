"""Greedy chat generation with token-level timing.

Latency convention (matches the serving benchmarks; see README "Latency"):
- TTFT: from the start of the request (before tokenisation) to the first generated token;
- TPOT: (e2e - TTFT) / (N - 1) over the N generated tokens (0 when N == 1);
- e2e: from the start of the request to the last generated token, so that
  e2e = TTFT + TPOT * (N - 1) holds exactly. Retrieval time is reported separately.
"""

from __future__ import annotations

import logging
import time

from transformers.generation.streamers import BaseStreamer

from evaluate.backends.base import Generation, check_context
from evaluate.backends.llama_decoder import LlamaDecoder, unsupported_reason

logger = logging.getLogger(__name__)
# In-process models run in float32: on CPU, half precision is emulated and slower, and the
# costing reads the bytes per parameter from this (evaluate/pipeline/costs.py).
LOAD_DTYPE = "float32"


class _TokenClock(BaseStreamer):
    """Records when each generated token becomes available (generate() calls put() per step;
    its first call carries the prompt and is skipped)."""

    def __init__(self) -> None:
        self.seen_prompt = False
        self.token_times: list[float] = []

    def put(self, value) -> None:
        if not self.seen_prompt:
            self.seen_prompt = True
            return
        now = time.perf_counter()
        self.token_times.extend([now] * int(value.numel()))

    def end(self) -> None:
        pass


class ChatGenerator:
    """A causal LM and its tokenizer answering chat messages one request at a time."""

    def __init__(
        self,
        model,
        tokenizer,
        max_new_tokens: int = 24,
        name: str = "",
        context_window: int | None = None,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature  # 0: greedy
        self.stop = list(stop or [])
        self.name = name
        self.decoder = None  # batch-1 greedy decoding outside model.generate, where supported
        self.decoder_unused_because = fast_decoding_unsupported(model, temperature, self.stop)
        if self.decoder_unused_because is None:
            self.decoder = LlamaDecoder(model)
        else:
            logger.info("batch-1 decoding uses model.generate: %s", self.decoder_unused_because)
            column_major_linear_weights(self.model)
        # The model's trained positions; a configured window can only narrow it.
        positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        windows = [w for w in (positions, context_window) if w]
        self.context_window: int | None = min(windows) if windows else None
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"  # batched generation needs left padding

    @classmethod
    def load(
        cls,
        model_path: str,
        max_new_tokens: int = 24,
        device: str = "cpu",
        context_window: int | None = None,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> ChatGenerator:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(
            model_path, dtype=getattr(torch, LOAD_DTYPE)
        ).to(device)
        return cls(
            model,
            tokenizer,
            max_new_tokens,
            name=model_path,
            context_window=context_window,
            temperature=temperature,
            stop=stop,
        )

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        return len(self._encode(messages)["input_ids"][0])

    def _encode(self, messages: list[dict[str, str]]):
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )

    def _decoding(self) -> dict:
        """Sampling and stop sequences for ``model.generate`` (greedy unless temperature > 0)."""
        options: dict = {"do_sample": self.temperature > 0}
        if self.temperature > 0:
            options["temperature"] = self.temperature
        if self.stop:  # generate() keeps the stop string; generate() below drops it, as servers do
            options.update(stop_strings=self.stop, tokenizer=self.tokenizer)
        return options

    def generate(self, messages: list[dict[str, str]]) -> Generation:
        import torch

        started = time.perf_counter()
        inputs = self._encode(messages).to(self.model.device)
        check_context(
            int(inputs["input_ids"].shape[1]), self.max_new_tokens, self.context_window, self.name
        )
        if self.decoder is not None:
            token_times: list[float] = []
            ids, step_logits = self.decoder.generate(
                inputs["input_ids"],
                self.max_new_tokens,
                eos_token_ids(self),
                on_token=lambda: token_times.append(time.perf_counter()),
            )
            prompt_len = inputs["input_ids"].shape[1]
            return self._finish(started, token_times, torch.tensor(ids), step_logits, prompt_len)
        clock = _TokenClock()
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                num_beams=1,
                pad_token_id=self.tokenizer.pad_token_id,
                streamer=clock,
                **self._decoding(),
                return_dict_in_generate=True,
                output_logits=True,  # raw logits: the token log-probs a cascade escalates on
            )
        prompt_len = inputs["input_ids"].shape[1]
        new_ids = output.sequences[0][prompt_len:]
        return self._finish(started, clock.token_times, new_ids, output.logits, prompt_len)

    def _finish(self, started: float, token_times, new_ids, step_logits, prompt_len) -> Generation:
        """The answer text (stop string dropped), the latency figures and the token log-probs."""
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        for stop in self.stop:
            if text.endswith(stop):
                text = text[: -len(stop)]
                break
        text = text.strip()
        n = len(token_times)
        if n == 0:  # nothing generated (max_new_tokens=0 is rejected by config validation)
            raise RuntimeError("the model generated no token")
        ttft_s = token_times[0] - started
        e2e_s = token_times[-1] - started
        tpot_s = (e2e_s - ttft_s) / (n - 1) if n > 1 else 0.0
        logprobs = token_logprobs(step_logits, new_ids)
        return Generation(text, int(prompt_len), n, ttft_s, tpot_s, e2e_s, logprobs)


def fast_decoding_unsupported(model, temperature: float, stop: list[str]) -> str | None:
    """Why batch-1 answers come from ``model.generate`` rather than ``LlamaDecoder``, or None."""
    if temperature > 0:
        return "sampling (temperature > 0)"
    if stop:
        return "stop strings"
    return unsupported_reason(model)


def eos_token_ids(generator: ChatGenerator) -> set[int]:
    """Every id that ends generation: the generation config's (an int or a list) and the
    tokenizer's."""
    ids: set[int] = set()
    configured = getattr(generator.model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured is not None:
        ids.update(int(i) for i in configured)
    if generator.tokenizer.eos_token_id is not None:
        ids.add(int(generator.tokenizer.eos_token_id))
    return ids


def column_major_linear_weights(model) -> int:
    """Store the weight of every float32 ``nn.Linear`` on the CPU column-major; returns how many
    were changed. Values, shapes and parameters stay the same (tied weights stay tied); only the
    memory order changes, so the output of a layer can differ in the last bits (another summation
    order), not more.

    ``F.linear`` computes ``x @ W.T``. With ``W`` row-major (``[out, in]`` contiguous, as
    checkpoints load) PyTorch's BLAS (MKL) read the weights for the 1-row products of batch-1
    decoding at 11 GB/s on an AMD EPYC, where OpenBLAS's ``sgemv`` reads the same arrays at 18;
    with ``W.T`` contiguous, 12.7-14.5 GB/s (decode 9-25% faster per token), while products of
    8 rows (batched answering) were 5-17% slower. ``python -m bench --only roofline`` reproduces
    it in bare torch (``linear_layout``).
    """
    import torch

    changed = 0
    for module in model.modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        weight = module.weight
        if weight.device.type != "cpu" or weight.dtype != torch.float32 or weight.dim() != 2:
            continue
        if weight.stride() == (1, weight.shape[0]):  # already column-major (a shared weight)
            continue
        weight.data = column_major(weight.data)
        changed += 1
    return changed


def column_major(matrix):
    """The same 2-D tensor (shape, values) stored column-major: its transpose is contiguous."""
    return matrix.t().contiguous().t()


def token_logprobs(step_logits, token_ids, row: int = 0) -> list[float]:
    """Natural-log probability of each generated token under the model's (greedy, unprocessed)
    next-token distribution; computed once after generation, off the timed path. ``row`` is the
    request's row in a batch; a row that stopped early scores only its own ``token_ids``."""
    import torch

    steps = min(len(step_logits), len(token_ids))
    if steps == 0:
        return []
    logits = torch.stack([step[row] for step in step_logits[:steps]]).float()  # (steps, vocab)
    chosen = token_ids[:steps].to(logits.device).long()
    picked = torch.log_softmax(logits, dim=-1).gather(1, chosen[:, None])[:, 0]
    return [float(v) for v in picked]


def from_config(config, model_path: str | None) -> ChatGenerator:
    """The registry's constructor: the model at ``model_path`` in-process."""
    return ChatGenerator.load(
        model_path,
        config.max_new_tokens,
        config.device,
        config.context_window,
        temperature=config.temperature,
        stop=list(config.stop),
    )


def weight_format(model_path: str | None) -> tuple[str, float]:
    """``(dtype, bytes_per_param)`` of the weights as this backend holds them in memory: every
    model is loaded in ``LOAD_DTYPE`` (a GGUF or bf16 checkpoint is upcast on load)."""
    from rag.core.models import DTYPE_BYTES

    return LOAD_DTYPE, DTYPE_BYTES[LOAD_DTYPE]
