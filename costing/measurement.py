"""What the experiment runner measured for one arm, and the facts about the model it ran.

Per-question lists are aligned (one entry per eval question, warm-up excluded). Timing follows
the runner's convention: ``ttft_s`` is tokenisation + prefill (retrieval excluded),
``query_seconds`` is retrieval + generation (what the user waits), so the decode time of a query
is query_seconds - retrieval_seconds - ttft_s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from costing import formulas

_LISTS = ("ttft_s", "tpot_s", "input_tokens", "output_tokens", "correct", "retrieval_seconds")
_TOLERANCE_S = 1e-6  # timer rounding allowed when checking retrieval + ttft <= query time


@dataclass
class ArmMeasurement:
    """Everything measured for one arm in one run."""

    name: str
    one_time_seconds: dict[str, float]  # e.g. {"index": 3.2, "train": 200.0}
    query_seconds: list[float]  # per question: retrieval + generation (request_s)
    ttft_s: list[float]
    tpot_s: list[float]
    input_tokens: list[int]  # prompt tokens, retrieved context included
    output_tokens: list[int]
    correct: list[bool]  # per question
    retrieval_seconds: list[float]  # 0 for arms without retrieval
    train_tokens: int = 0  # tokens processed in training (0 if none)
    # Measured energy per stage in kWh (EnergyMeter); None or absent: not measured.
    measured_energy_kwh: dict[str, float | None] = field(default_factory=dict)
    # Per question: the request failed (its time until the failure and the tokens sent are in
    # the lists above and are costed; its timings are not latencies). Empty: none failed.
    failed: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        where = f"arm {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"arm name must be a non-empty string, got {self.name!r}")
        n = len(self.query_seconds)
        if n == 0:
            raise ValueError(f"{where}: query_seconds is empty; at least one query is needed")
        for key in _LISTS:
            if len(getattr(self, key)) != n:
                raise ValueError(
                    f"{where}: {key} has {len(getattr(self, key))} entries, query_seconds has {n}"
                )
        for stage, seconds in self.one_time_seconds.items():
            formulas.check_number(f"{where}: one_time_seconds[{stage!r}]", seconds)
        for i in range(n):
            for key in ("query_seconds", "ttft_s", "tpot_s", "retrieval_seconds"):
                formulas.check_number(f"{where}: {key}[{i}]", getattr(self, key)[i])
            for key in ("input_tokens", "output_tokens"):
                formulas.check_count(f"{where}: {key}[{i}]", getattr(self, key)[i])
            if not isinstance(self.correct[i], bool):
                raise ValueError(f"{where}: correct[{i}] must be true or false")
            if self.retrieval_seconds[i] + self.ttft_s[i] > self.query_seconds[i] + _TOLERANCE_S:
                raise ValueError(
                    f"{where}: query {i} has retrieval_seconds + ttft_s = "
                    f"{self.retrieval_seconds[i] + self.ttft_s[i]:g} s > query_seconds "
                    f"{self.query_seconds[i]:g} s; query_seconds must include both"
                )
        formulas.check_count(f"{where}: train_tokens", self.train_tokens)
        if self.failed and len(self.failed) != n:
            raise ValueError(
                f"{where}: failed has {len(self.failed)} entries, query_seconds has {n}"
            )
        if not self.failed:
            self.failed = [False] * n
        for stage, kwh in self.measured_energy_kwh.items():
            if kwh is not None:
                formulas.check_number(f"{where}: measured_energy_kwh[{stage!r}]", kwh)

    @property
    def n_queries(self) -> int:
        return len(self.query_seconds)

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / self.n_queries

    def decode_seconds(self) -> list[float]:
        return [
            max(0.0, q - r - t)
            for q, r, t in zip(self.query_seconds, self.retrieval_seconds, self.ttft_s, strict=True)
        ]

    @property
    def n_failed(self) -> int:
        return sum(self.failed)

    def answered(self, values: Sequence) -> list:
        """``values`` (one per question) of the questions that did not fail."""
        return [v for v, bad in zip(values, self.failed, strict=True) if not bad]

    def first_token_seconds(self) -> list[float]:
        """User-perceived time to first token: retrieval + tokenisation + prefill."""
        return [r + t for r, t in zip(self.retrieval_seconds, self.ttft_s, strict=True)]


@dataclass
class ModelFacts:
    n_params: int  # all weights of the served model (adapter merged or not)
    trainable_params: int = 0  # adapter weights trained; 0: full fine-tuning when training
    bytes_per_param: float = 4.0  # as measured: 4 for fp32, 2 for bf16
    kv_bytes_per_token: float = 0.0  # KV-cache bytes per context token; 0: weights only

    def __post_init__(self) -> None:
        formulas.check_count("n_params", self.n_params, minimum=1)
        formulas.check_count("trainable_params", self.trainable_params)
        if self.trainable_params > self.n_params:
            raise ValueError(
                f"trainable_params ({self.trainable_params}) exceeds n_params ({self.n_params})"
            )
        formulas.check_number("bytes_per_param", self.bytes_per_param, strict=True)
        formulas.check_number("kv_bytes_per_token", self.kv_bytes_per_token)

    def training_flops(self, tokens: int) -> float:
        """LoRA counted explicitly (formulas.lora_training_flops); 6ND for full fine-tuning."""
        if self.trainable_params:
            return formulas.lora_training_flops(self.n_params, self.trainable_params, tokens)
        return formulas.training_flops_dense(self.n_params, tokens)


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean (exactly rounded sum); NaN for no values."""
    return math.fsum(values) / len(values) if values else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method), q in [0, 100];
    NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
