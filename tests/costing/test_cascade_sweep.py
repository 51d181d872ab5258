"""The cascade's threshold sweep (costing.hybrid.cascade_sweep) on scripted confidences: accuracy,
escalation rate, per-tier cost and latency at each threshold, worked out by hand below."""

from __future__ import annotations

import pytest

from costing.cost import Rates
from costing.hybrid import ArmSummary, CascadeQuestion, cascade_sweep, validated_mask

pytestmark = pytest.mark.costing

# 3,600 W and 3.6 USD per device-hour: one device-second is 0.001 kWh and 0.001 USD; at
# 500 g/kWh and no embodied share, 0.0005 kg CO2e.
RATES = Rates(
    hardware="test",
    devices=1,
    power_w=3600.0,
    usd_per_hour=3.6,
    pue=1.0,
    g_per_kwh=500.0,
    market_g_per_kwh=None,
    embodied_kg_per_device_hour=0.0,
)
# confidence, edge correct, cloud correct, edge seconds, cloud seconds
QUESTIONS = [
    CascadeQuestion(-0.1, True, False, 1.0, 3.0),
    CascadeQuestion(-2.0, False, True, 2.0, 3.0),
    CascadeQuestion(-0.6, False, True, 1.0, 4.0),
    CascadeQuestion(None, True, False, 1.0, 2.0),  # unknown confidence: always escalated
]
RTT_S = 0.5


def sweep(**kwargs):
    return cascade_sweep(QUESTIONS, [0.0, -0.5, -1.0], RTT_S, RATES, RATES, **kwargs)


def test_sweep_points_by_hand():
    points = sweep()
    assert [(p["point"], p["threshold"]) for p in points] == [
        ("edge_only", None),
        ("threshold", -1.0),
        ("threshold", -0.5),
        ("threshold", 0.0),
        ("cloud_only", None),
    ]
    # escalated: none | q2 (-2.0 < -1) and q4 (unknown) | + q3 (-0.6 < -0.5) | all | all
    assert [p["escalated"] for p in points] == [0, 2, 3, 4, 4]
    assert [p["escalation_rate"] for p in points] == [0.0, 0.5, 0.75, 1.0, 1.0]
    # edge answers T F F T; cloud answers F T T F; the final answer comes from the deciding tier:
    # edge-only T F F T = 2/4; t=-1: T T(cloud) F F(cloud) = 2/4; t=-0.5: T T T F = 3/4;
    # t=0 and cloud-only: F T T F = 2/4. A cascade can beat both of its end points.
    assert [p["accuracy"] for p in points] == [0.5, 0.5, 0.75, 0.5, 0.5]
    # device seconds per query: edge (1+2+1+1)/4 = 1.25 always; cloud = escalated cloud seconds
    # / 4: 0, (3+2)/4 = 1.25, (3+4+2)/4 = 2.25, 12/4 = 3, 3. Per 1k queries at 0.001 USD/s:
    usd = [p["per_1k_queries"] for p in points]
    assert [u["edge"]["usd"] for u in usd] == pytest.approx([1.25] * 5)
    assert [u["cloud"]["usd"] for u in usd] == pytest.approx([0.0, 1.25, 2.25, 3.0, 3.0])
    assert [u["total"]["usd"] for u in usd] == pytest.approx([1.25, 2.5, 3.5, 4.25, 4.25])
    # CO2: 0.0005 kg per device-second -> half the USD figure; energy equals the USD figure
    assert [u["total"]["co2_kg"] for u in usd] == pytest.approx([0.625, 1.25, 1.75, 2.125, 2.125])
    assert [u["total"]["energy_kwh"] for u in usd] == pytest.approx([1.25, 2.5, 3.5, 4.25, 4.25])
    # waits: edge, plus round trip 0.5 + cloud when escalated.
    # edge-only [1, 2, 1, 1]: p95 at rank 2.85 of [1, 1, 1, 2] = 1 + 0.85 * 1 = 1.85
    # t=-1 [1, 5.5, 1, 3.5] -> [1, 1, 3.5, 5.5]: 3.5 + 0.85 * 2 = 5.2
    # t=-0.5 [1, 5.5, 5.5, 3.5] -> p95 5.5; t=0 [4.5, 5.5, 5.5, 3.5] -> 5.5
    assert [p["latency_p95_s"] for p in points] == pytest.approx([1.85, 5.2, 5.5, 5.5, 5.5])
    assert [p["latency_mean_s"] for p in points] == pytest.approx(
        [1.25, 11.0 / 4, 15.5 / 4, 19.0 / 4, 19.0 / 4]
    )


def test_projected_tiers_mix_by_the_measured_escalation_rate():
    edge = ArmSummary("edge", 0.5, 1.0, 0.001, 0.002, 0.004)
    cloud = ArmSummary("cloud", 0.5, 0.2, 0.01, 0.02, 0.04)
    point = sweep(projected=(edge, cloud))[1]  # t=-1: escalation rate 0.5
    projected = point["projected"]
    assert projected["usd_per_1k_queries"] == pytest.approx(1000 * (0.001 + 0.5 * 0.01))
    assert projected["co2_kg_per_1k_queries"] == pytest.approx(1000 * (0.002 + 0.5 * 0.02))
    assert projected["latency_mean_s"] == pytest.approx(1.0 + 0.5 * (RTT_S + 0.2))
    assert point["accuracy"] == 0.5  # counted question by question, not mixed


def test_unknown_and_negative_confidences_in_the_mask():
    assert validated_mask([-0.1, None, -3.0], -1.0) == [False, True, True]
    with pytest.raises(ValueError, match="threshold"):
        validated_mask([0.1], float("nan"))


def test_an_empty_question_list_is_refused():
    with pytest.raises(ValueError, match="at least one question"):
        cascade_sweep([], [0.0], RTT_S, RATES, RATES)
