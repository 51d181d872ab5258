"""Quality of experience as the user perceives it: waiting for the first token, then reading.

Per request i, with first-token wait w_i = retrieval + ttft_s, threshold T, output speed
v_i = 1 / tpot_s tokens/s and reading speed R = reading_wpm * tokens_per_word / 60 tokens/s:

    s_wait_i  = 1 if w_i <= T else T / w_i          (decays with how far the wait overshoots)
    s_read_i  = min(1, v_i / R)                     (1 once text streams faster than it is read;
                                                     1 for answers of one token: nothing streams)
    qoe_i     = s_wait_i * s_read_i                 in [0, 1]
    qoe_score = mean over requests of qoe_i

The score ignores correctness on purpose; the cost-vs-QoE table puts accuracy next to it.
"""

from __future__ import annotations

from typing import Any

from costing.measurement import ArmMeasurement, mean, percentile
from costing.settings import QoESettings


def qoe_summary(arm: ArmMeasurement, settings: QoESettings) -> dict[str, Any]:
    waits = arm.first_token_seconds()
    reading = settings.reading_tokens_per_s
    threshold = settings.ttft_threshold_s
    speeds: list[float] = []
    scores = []
    for wait, tpot, n_out in zip(waits, arm.tpot_s, arm.output_tokens, strict=True):
        s_wait = 1.0 if wait <= threshold else threshold / wait
        s_read = 1.0
        if n_out > 1 and tpot > 0:
            speed = 1.0 / tpot
            speeds.append(speed)
            s_read = min(1.0, speed / reading)
        scores.append(s_wait * s_read)
    return {
        "ttft_threshold_s": threshold,
        "reading_tokens_per_s": reading,
        "first_token_s_p50": percentile(waits, 50),
        "first_token_s_p95": percentile(waits, 95),
        "share_first_token_within_threshold": mean([float(w <= threshold) for w in waits]),
        "output_tokens_per_s_p50": percentile(speeds, 50) if speeds else None,
        "share_faster_than_reading": (
            mean([float(v >= reading) for v in speeds]) if speeds else None
        ),
        "request_s_p50": percentile(arm.query_seconds, 50),
        "qoe_score": mean(scores),
        "formula": "mean_i [min(1, T / wait_i) * min(1, speed_i / reading_speed)]",
    }
