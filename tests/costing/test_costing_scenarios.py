"""QoE, the hybrid edge-cloud scenario and the freshness (re-index vs re-train) scenario."""

from __future__ import annotations

import pytest

from costing import ArmMeasurement, ArmSummary, hybrid_edge_cloud
from costing.catalog import load_hardware_catalog
from costing.freshness import freshness_scenario
from costing.hybrid import accuracy_with_mask, validated_mask
from costing.qoe import percentile, qoe_summary
from costing.rates import device_rates
from costing.settings import FreshnessSettings, QoESettings, ReportSettings


def arm(name="a", *, one_time=None, waits=(0.5, 2.0), tpot=(0.1, 0.5), out=(5, 5)):
    n = len(waits)
    return ArmMeasurement(
        name=name,
        one_time_seconds=one_time or {},
        query_seconds=[w + 10 for w in waits],
        ttft_s=[w - 0.1 for w in waits],
        tpot_s=list(tpot),
        input_tokens=[10] * n,
        output_tokens=list(out),
        correct=[True] * n,
        retrieval_seconds=[0.1] * n,
    )


def test_qoe_score_follows_the_documented_formula():
    settings = QoESettings()  # 1.0 s, 250 wpm, 1.33 tokens/word
    reading = 250 * 1.33 / 60  # 5.54 tokens/s
    assert settings.reading_tokens_per_s == pytest.approx(reading)
    q = qoe_summary(arm(), settings)
    # Request 1: waits 0.5 s (<= 1 s), streams 10 tok/s (> reading): 1. Request 2: waits 2 s
    # (score 1/2), streams 2 tok/s (2 / 5.54): 0.5 * 0.361.
    assert q["qoe_score"] == pytest.approx((1 + 0.5 * 2 / reading) / 2)
    assert q["share_first_token_within_threshold"] == 0.5
    assert q["share_faster_than_reading"] == 0.5
    assert q["first_token_s_p50"] == pytest.approx(1.25)  # retrieval is part of the wait
    assert q["output_tokens_per_s_p50"] == pytest.approx(6.0)


def test_qoe_thresholds_are_configurable_and_one_token_answers_do_not_stream():
    lenient = qoe_summary(arm(), QoESettings(ttft_threshold_s=3.0, reading_wpm=60))
    assert lenient["qoe_score"] == pytest.approx(1.0)  # 2 tok/s > 60 wpm x 1.33 / 60
    single = qoe_summary(arm(out=(1, 1)), QoESettings(ttft_threshold_s=3.0))
    assert single["qoe_score"] == 1.0 and single["share_faster_than_reading"] is None


def test_percentile_interpolates_like_numpy():
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    assert percentile([7.0], 99) == 7.0


EDGE = ArmSummary(
    "edge",
    accuracy=0.6,
    latency_s=0.5,
    usd_per_query=0.001,
    co2_kg_per_query=0.002,
    energy_kwh_per_query=0.01,
)
CLOUD = ArmSummary(
    "cloud",
    accuracy=0.9,
    latency_s=2.0,
    usd_per_query=0.01,
    co2_kg_per_query=0.005,
    energy_kwh_per_query=0.02,
)


def test_hybrid_mixes_accuracy_latency_and_cost_by_the_validated_share():
    result = hybrid_edge_cloud(EDGE, CLOUD, validate_share=0.25, rtt_s=0.1)
    h = result["hybrid"]
    assert h["accuracy"] == pytest.approx(0.75 * 0.6 + 0.25 * 0.9)
    assert h["first_answer_latency_s"] == 0.5
    assert h["final_answer_latency_s"] == pytest.approx(0.5 + 0.25 * (0.1 + 2.0))
    assert h["usd_per_query"] == pytest.approx(0.001 + 0.25 * 0.01)
    assert h["co2_kg_per_query"] == pytest.approx(0.002 + 0.25 * 0.005)
    assert result["cloud_only"]["latency_s"] == pytest.approx(2.1)  # cloud pays the round trip
    assert "replaces" in result["assumptions"]


def test_hybrid_limits_and_unknowns():
    none = hybrid_edge_cloud(EDGE, CLOUD, 0.0, 0.1)["hybrid"]
    assert (none["accuracy"], none["usd_per_query"]) == (0.6, 0.001)
    every = hybrid_edge_cloud(EDGE, CLOUD, 1.0, 0.1)["hybrid"]
    assert every["accuracy"] == 0.9 and every["usd_per_query"] == pytest.approx(0.011)
    unpriced = ArmSummary("cloud", 0.9, 2.0, None, 0.005, 0.02)
    h = hybrid_edge_cloud(EDGE, unpriced, 0.5, 0.1)["hybrid"]
    assert h["usd_per_query"] is None and "cloud" in h["unknown"]["usd_per_query"]
    with pytest.raises(ValueError, match="validate_share"):
        hybrid_edge_cloud(EDGE, CLOUD, 1.5, 0.1)


def test_hybrid_by_confidence_counts_question_by_question():
    mask = validated_mask([0.9, 0.2, 0.5, 0.1], threshold=0.4)
    assert mask == [False, True, False, True]
    edge, cloud = [True, False, False, True], [False, True, True, False]
    assert accuracy_with_mask(edge, cloud, mask) == 0.5  # T, T(cloud), F, F(cloud)
    with pytest.raises(ValueError, match="equal length"):
        accuracy_with_mask(edge, cloud, mask[:2])


@pytest.fixture
def rates():
    row = load_hardware_catalog()["l4"]  # 72 W, 0.8048 USD/h
    return device_rates(row, devices=1, pue=1.0, g_per_kwh=100, report=ReportSettings())


def test_freshness_reindex_scales_with_changes_retrain_is_a_full_run(rates):
    arms = [
        arm("rag", one_time={"index": 100.0}),
        arm("finetune", one_time={"train": 1000.0}),
        arm("both", one_time={"index": 100.0, "train": 1000.0}),
        arm("closed_book"),
    ]
    result = freshness_scenario(arms, rates, FreshnessSettings(changed_fraction=0.1))
    stages = {name: a.get("stages", {}) for name, a in result["arms"].items()}
    assert stages["rag"]["reindex"]["seconds"] == pytest.approx(10.0)
    assert stages["finetune"]["retrain"]["seconds"] == pytest.approx(1000.0)
    assert result["arms"]["both"]["total"]["seconds"] == pytest.approx(1010.0)
    assert result["arms"]["rag"]["total"]["usd"] == pytest.approx(0.8048 * 10 / 3600)
    assert stages["closed_book"] == {}
    assert "10% corpus change" in result["summary"]
    assert "re-training takes 100.0x as long as re-indexing" in result["summary"]


def test_freshness_options_change_the_model(rates):
    arms = [arm("rag", one_time={"index": 100.0}), arm("finetune", one_time={"train": 1000.0})]
    full = FreshnessSettings(changed_fraction=0.1, incremental_index=False, retrain_fraction=0.1)
    result = freshness_scenario(arms, rates, full)
    assert result["arms"]["rag"]["stages"]["reindex"]["seconds"] == pytest.approx(100.0)
    assert result["arms"]["finetune"]["stages"]["retrain"]["seconds"] == pytest.approx(100.0)
