"""Interleaved, repeated timing: the basis of every ours-versus-bare comparison.

Each round calls every candidate once, rotating the order (AB, BA, ...), so slow drift of the
machine (other load, thermal state, caches) hits all candidates alike. Ratios are the median of
the per-round ratios (paired), which is robust to a round disturbed as a whole.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Samples:
    seconds: list[float] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)  # what each call returned

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    @property
    def n(self) -> int:
        return len(self.seconds)


def interleaved(
    candidates: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1
) -> dict[str, Samples]:
    """Time ``repeats`` calls of every candidate after ``warmup`` untimed rounds."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    names = list(candidates)
    samples = {name: Samples() for name in names}
    for round_ in range(warmup + repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            value = candidates[name]()
            elapsed = time.perf_counter() - started
            if round_ >= warmup:
                samples[name].seconds.append(elapsed)
                samples[name].values.append(value)
    return samples


def paired_ratio(ours: list[float], bare: list[float]) -> float:
    """Median over rounds of ours/bare (the lists are the same rounds, in order)."""
    if len(ours) != len(bare) or not ours:
        raise ValueError(f"need the same non-zero number of rounds, got {len(ours)}/{len(bare)}")
    return statistics.median(o / b for o, b in zip(ours, bare, strict=True))


def per_item(seconds: list[float], items: int) -> list[float]:
    """Seconds per item (query, token, text) of each round."""
    return [s / items for s in seconds]
