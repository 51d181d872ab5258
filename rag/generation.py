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
from dataclasses import asdict, dataclass

from transformers.generation.streamers import BaseStreamer

logger = logging.getLogger(__name__)


class GenerationFailure(RuntimeError):
    """One request failed in a way that concerns that request only: its question is counted as a
    failed question (scored 0, reported by ``reason``) instead of ending the run."""

    def __init__(self, message: str, reason: str = "generation_error"):
        super().__init__(message)
        self.reason = reason


class ContextOverflowError(GenerationFailure):
    """The prompt plus the answer budget does not fit the model's context window."""

    def __init__(self, message: str):
        super().__init__(message, reason="context_overflow")


def check_context(prompt_tokens: int, max_new_tokens: int, window: int | None, name: str) -> None:
    """Raise ``ContextOverflowError`` if ``prompt_tokens + max_new_tokens`` exceeds ``window``
    (checked before generating: a truncated or refused prompt would be a meaningless answer)."""
    if window is None or prompt_tokens < 0 or prompt_tokens + max_new_tokens <= window:
        return
    raise ContextOverflowError(
        f"prompt of {prompt_tokens} tokens + max_new_tokens {max_new_tokens} exceeds the "
        f"context window of {window} tokens of {name or 'the model'}"
    )


@dataclass
class Generation:
    text: str
    input_tokens: int
    output_tokens: int
    ttft_s: float
    tpot_s: float
    e2e_s: float

    def to_dict(self) -> dict:
        return asdict(self)


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
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.name = name
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
    ) -> ChatGenerator:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).to(device)
        return cls(model, tokenizer, max_new_tokens, name=model_path, context_window=context_window)

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        return len(self._encode(messages)["input_ids"][0])

    def _encode(self, messages: list[dict[str, str]]):
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )

    def generate(self, messages: list[dict[str, str]]) -> Generation:
        import torch

        started = time.perf_counter()
        inputs = self._encode(messages).to(self.model.device)
        check_context(
            int(inputs["input_ids"].shape[1]), self.max_new_tokens, self.context_window, self.name
        )
        clock = _TokenClock()
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=self.tokenizer.pad_token_id,
                streamer=clock,
            )
        prompt_len = inputs["input_ids"].shape[1]
        new_ids = output[0][prompt_len:]
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True).strip()
        n = len(clock.token_times)
        if n == 0:  # nothing generated (max_new_tokens=0 is rejected by config validation)
            raise RuntimeError("the model generated no token")
        ttft_s = clock.token_times[0] - started
        e2e_s = clock.token_times[-1] - started
        tpot_s = (e2e_s - ttft_s) / (n - 1) if n > 1 else 0.0
        return Generation(text, int(prompt_len), n, ttft_s, tpot_s, e2e_s)
