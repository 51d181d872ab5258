"""In-process vLLM generation with the interface of
``evaluate.backends.transformers.ChatGenerator``.

vLLM's offline ``LLM`` class answers a whole request at once: it has no token streamer. Timing:
- when the engine reports per-request metrics (``RequestOutput.metrics`` with
  ``arrival_time``, ``first_token_time`` and ``last_token_time``, as vLLM's V0 engine does),
  TTFT = first_token_time - arrival_time plus the local chat-template time before it, and e2e =
  last_token_time - arrival_time plus that same time;
- otherwise the measurement is end-to-end only: TTFT is unavailable and is reported as the e2e
  time (the first token reaches the caller together with the last, as with a non-streaming
  client), TPOT as 0, and ``ttft_measured`` is False.
Either way e2e = TTFT + TPOT * (N - 1), the convention of ``evaluate.backends.transformers``.

For streamed TTFT from vLLM, serve the model with ``vllm serve`` and use ``generator=openai``.
Decoding is greedy (``SamplingParams(temperature=0)``). vLLM needs a CUDA GPU and is never a
dependency of this project: selecting it without the package installed is a clear error.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
from dataclasses import dataclass

from evaluate.backends.base import Generation, check_context
from rag.core.errors import UserError

logger = logging.getLogger(__name__)

VLLM_MISSING = (
    "vLLM is not installed: pip install vllm (needs a CUDA GPU); "
    "or use generator=openai against a vLLM server"
)


class VLLMNotInstalledError(UserError, ImportError):
    """The ``vllm`` package is missing."""


def unavailable_reason() -> str | None:
    """For the registry's validation: the install hint when vLLM is missing."""
    return None if vllm_installed() else VLLM_MISSING


def vllm_installed() -> bool:
    if "vllm" in sys.modules:
        return sys.modules["vllm"] is not None
    return importlib.util.find_spec("vllm") is not None


@dataclass
class VLLMGeneration(Generation):
    """A ``Generation`` that also says whether TTFT was measured (see the module docstring)."""

    ttft_measured: bool = True


class VLLMGenerator:
    """One vLLM engine answering chat messages one request at a time."""

    def __init__(
        self,
        model_path: str,
        max_new_tokens: int = 24,
        name: str = "",
        context_window: int | None = None,
        seed: int = 0,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ):
        if not vllm_installed():
            raise VLLMNotInstalledError(VLLM_MISSING)
        import vllm

        self._vllm = vllm
        kwargs = {"model": model_path, "seed": seed}
        if context_window is not None:
            kwargs["max_model_len"] = context_window
        self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_new_tokens = max_new_tokens
        self.name = name or model_path
        self.context_window = context_window or _engine_window(self.llm)
        sampling = {"temperature": temperature, "max_tokens": max_new_tokens}
        if stop:
            sampling["stop"] = list(stop)
        self.params = vllm.SamplingParams(**sampling)

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        return len(self._encode(messages))

    def _encode(self, messages: list[dict[str, str]]) -> list[int]:
        encoded = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_dict=True
        )
        return list(encoded["input_ids"])

    def generate(self, messages: list[dict[str, str]]) -> VLLMGeneration:
        started = time.perf_counter()
        prompt_ids = self._encode(messages)
        check_context(len(prompt_ids), self.max_new_tokens, self.context_window, self.name)
        encoded_s = time.perf_counter() - started
        prompt = {"prompt_token_ids": prompt_ids}
        (output,) = self.llm.generate([prompt], self.params, use_tqdm=False)
        e2e_s = time.perf_counter() - started
        completion = output.outputs[0]
        n = max(len(completion.token_ids), 1)  # an empty answer still ends with one token
        ttft_s, measured = e2e_s, False
        metrics = getattr(output, "metrics", None)
        first = getattr(metrics, "first_token_time", None)
        arrival = getattr(metrics, "arrival_time", None)
        last = getattr(metrics, "last_token_time", None)
        if first is not None and arrival is not None and last is not None and last >= first:
            ttft_s, e2e_s, measured = encoded_s + first - arrival, encoded_s + last - arrival, True
        tpot_s = (e2e_s - ttft_s) / (n - 1) if n > 1 and measured else 0.0
        if not measured:
            ttft_s = e2e_s
        return VLLMGeneration(
            text=completion.text.strip(),
            input_tokens=len(output.prompt_token_ids or prompt_ids),
            output_tokens=n,
            ttft_s=ttft_s,
            tpot_s=tpot_s,
            e2e_s=e2e_s,
            ttft_measured=measured,
        )


def _engine_window(llm) -> int | None:
    try:
        return int(llm.llm_engine.model_config.max_model_len)
    except (AttributeError, TypeError, ValueError):
        return None


def from_config(config, model_path: str | None) -> VLLMGenerator:
    """The registry's constructor: the model at ``model_path`` in an in-process vLLM engine."""
    return VLLMGenerator(
        model_path,
        config.max_new_tokens,
        config.model,
        config.context_window,
        temperature=config.temperature,
        stop=list(config.stop),
    )


def weight_format(model_path: str | None) -> tuple[str, float]:
    """``(dtype, bytes_per_param)`` of the weights in the engine: a quantized checkpoint keeps
    its bits; otherwise vLLM's ``dtype="auto"`` serves float32 and float16 checkpoints in float16
    and bfloat16 ones in bfloat16 (vLLM engine arguments, ``--dtype``)."""
    from rag.core.models import DTYPE_BYTES, stored_weight_format

    dtype, size = stored_weight_format(model_path)
    if dtype is not None and dtype not in DTYPE_BYTES:  # quantized
        return dtype, size
    served = "bfloat16" if dtype == "bfloat16" else "float16"
    return served, DTYPE_BYTES[served]
