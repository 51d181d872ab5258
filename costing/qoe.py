"""Quality of experience as the user perceives it: waiting for the first token, then reading.

Per request i, with first-token wait w_i = retrieval + ttft_s, threshold T, output speed
v_i = 1 / tpot_s tokens/s and reading speed R = reading_wpm * tokens_per_word / 60 tokens/s:

    s_wait_i  = 1 if w_i <= T else T / w_i          (decays with how far the wait overshoots)
    s_read_i  = min(1, v_i / R)                     (1 once text streams faster than it is read;
                                                     1 for answers of one token: nothing streams)
    qoe_i     = s_wait_i * s_read_i                 in [0, 1]; 0 for a failed request
    qoe_score = mean over requests of qoe_i         (qoe_score_answered_only: failures left out)

The score ignores correctness on purpose; the cost-vs-QoE table puts accuracy next to it.
"""

from __future__ import annotations

from typing import Any

from costing.measurement import ArmMeasurement, mean, percentile
from costing.settings import QoESettings


def qoe_summary(arm: ArmMeasurement, settings: QoESettings) -> dict[str, Any]:
    reading = settings.reading_tokens_per_s
    threshold = settings.ttft_threshold_s
    speeds: list[float] = []
    scores = []  # every question; a failed one scores 0: the user got no answer
    for wait, tpot, n_out, failed in zip(
        arm.first_token_seconds(), arm.tpot_s, arm.output_tokens, arm.failed, strict=True
    ):
        if failed:
            scores.append(0.0)
            continue
        s_wait = 1.0 if wait <= threshold else threshold / wait
        s_read = 1.0
        if n_out > 1 and tpot > 0:
            speed = 1.0 / tpot
            speeds.append(speed)
            s_read = min(1.0, speed / reading)
        scores.append(s_wait * s_read)
    waits = arm.answered(arm.first_token_seconds()) or [0.0]  # latencies: answered questions
    answered_scores = arm.answered(scores)
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
        "request_s_p50": percentile(arm.answered(arm.query_seconds) or [0.0], 50),
        "failed_requests": arm.n_failed,
        "qoe_score": mean(scores),  # failed requests included, at 0
        "qoe_score_answered_only": mean(answered_scores) if answered_scores else None,
        "formula": "mean_i [min(1, T / wait_i) * min(1, speed_i / reading_speed)]",
    }
