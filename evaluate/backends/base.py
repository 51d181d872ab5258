"""What every generator backend returns and raises, independent of how it generates.

Latency convention (matches the serving benchmarks; see README "Latency"):
- TTFT: from the start of the request (before tokenisation) to the first generated token;
- TPOT: (e2e - TTFT) / (N - 1) over the N generated tokens (0 when N == 1);
- e2e: from the start of the request to the last generated token, so that
  e2e = TTFT + TPOT * (N - 1) holds exactly. Retrieval time is reported separately.

A backend module has ``from_config(config, model_path)`` returning an object with
``generate(messages) -> Generation``, ``prompt_tokens(messages)``, ``max_new_tokens``,
``context_window`` and ``name``; ``evaluate.backends.registry`` lists the modules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


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
    # natural-log probability of each generated token; None where the backend gives none
    token_logprobs: list[float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)
