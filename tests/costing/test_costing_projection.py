"""Projection of a measured workload onto other devices: calibration, scaling, unknowns."""

from __future__ import annotations

import pytest

from costing import (
    ArmMeasurement,
    CostSettings,
    ModelFacts,
    ProjectionSettings,
    ReportSettings,
    build_cost_report,
    load_hardware_catalog,
)
from costing.projection import calibrate, decode_bytes


def row(peak, bandwidth, memory=80.0, **extra):
    base = {
        "kind": "gpu",
        "precision": "bf16",
        "peak_tflops": peak,
        "memory_gb": memory,
        "bandwidth_tb_s": bandwidth,
        "tdp_w": 100,
        "usd_per_hour": 1.0,
        "price_date": "2026-01",
        "price_source": "t",
        "source": "t",
        "date": "2026-01",
    }
    return {**base, **extra}


CATALOG = load_hardware_catalog(
    overrides={
        "meter": row(10, 0.1),  # the measuring device
        "fast": row(40, 0.4),  # 4x compute and 4x bandwidth
        "wide": row(10, 0.2),  # same compute, 2x bandwidth
        "small": row(40, 0.4, memory=1.0),  # cannot hold 2 GB of weights
        "blind": row(None, 0.4),  # no published peak
    }
)
MODEL = ModelFacts(n_params=10**9, trainable_params=10**7, bytes_per_param=2.0)
# Training 1e6 tokens = (4e9 + 2e7) * 1e6 = 4.02e15 FLOPs: 402 s at 10 TFLOP/s; measured 1000 s.
# Prefill 2e9 x (100 + 300) = 8e11 FLOPs: 0.08 s at peak; measured ttft 0.1 + 0.3 s.
# Decode (10 + 20) tokens x 2e9 bytes = 6e10 B: 0.6 s at 0.1 TB/s; measured 1.0 + 2.0 s.
ARM = ArmMeasurement(
    name="finetune",
    one_time_seconds={"train": 1000.0},
    query_seconds=[1.1, 2.3],
    ttft_s=[0.1, 0.3],
    tpot_s=[0.1, 0.1],
    input_tokens=[100, 300],
    output_tokens=[11, 21],
    correct=[True, True],
    retrieval_seconds=[0.0, 0.0],
    train_tokens=10**6,
)


def project(utilization=None, devices=("meter", "fast", "wide", "small", "blind"), **kwargs):
    settings = ReportSettings(
        projection=ProjectionSettings(devices=list(devices), utilization=utilization, **kwargs)
    )
    rep = build_cost_report(
        [ARM], MODEL, CostSettings(hardware="meter", g_per_kwh=0), settings, catalog=CATALOG
    )
    return rep["calibration"]["finetune"], rep["projections"]["finetune"]


def test_calibrated_utilization_is_modelled_over_measured():
    calibration, _ = project()
    assert calibration["train"]["utilization"] == pytest.approx(0.402)
    assert calibration["prefill"]["utilization"] == pytest.approx(0.2)
    assert calibration["decode"]["utilization"] == pytest.approx(0.2)


def test_projection_reproduces_the_measurement_on_the_measuring_device():
    _, projected = project()
    meter = projected["meter"]
    assert meter["train"]["seconds"] == pytest.approx(1000.0)
    assert meter["per_query"]["query_s"] == pytest.approx((1.1 + 2.3) / 2)
    assert meter["per_query"]["prefill_s"] == pytest.approx(0.2)
    assert meter["per_query"]["decode_s"] == pytest.approx(1.5)


def test_faster_devices_take_proportionally_less_time():
    _, projected = project()
    assert projected["fast"]["train"]["seconds"] == pytest.approx(250.0)
    assert projected["fast"]["per_query"]["query_s"] == pytest.approx(1.7 / 4)
    # Only bandwidth doubles: prefill stays, decode halves.
    assert projected["wide"]["per_query"]["prefill_s"] == pytest.approx(0.2)
    assert projected["wide"]["per_query"]["decode_s"] == pytest.approx(0.75)
    assert projected["fast"]["per_query"]["cost"]["usd"] == pytest.approx(1.7 / 4 / 3600)


def test_configured_utilization_and_target_precision():
    _, projected = project(utilization=0.5, bytes_per_param=1.0)
    assert projected["fast"]["train"]["seconds"] == pytest.approx(4.02e15 / (40e12 * 0.5))
    assert projected["fast"]["utilization_source"] == "configured"
    # 1 byte per weight: 30 tokens x 1e9 B / (0.4e12 B/s x 0.5) over 2 queries
    assert projected["fast"]["per_query"]["decode_s"] == pytest.approx(30e9 / 0.2e12 / 2)


def test_unknown_peak_and_memory_limits_are_reported():
    _, projected = project()
    blind = projected["blind"]
    assert blind["train"] is None and blind["per_query"] is None
    assert "'blind' has no peak_tflops" in blind["unknown"]["train"]
    assert projected["small"]["min_devices"] == 2 and projected["fast"]["min_devices"] == 1


def test_kv_cache_bytes_grow_with_context():
    model = ModelFacts(n_params=10**9, bytes_per_param=2.0, kv_bytes_per_token=1e6)
    # weights: 30 steps x 2e9; KV: (10 x 100 + 55) + (20 x 300 + 210) context tokens x 1e6 B
    assert sum(decode_bytes(ARM, model, 2.0)) == pytest.approx(6e10 + 7265e6)


def test_calibration_flags_a_measurement_faster_than_the_catalog_peak():
    slow_catalog = load_hardware_catalog(overrides={"meter": row(1, 0.1)})
    calibration = calibrate(ARM, MODEL, slow_catalog["meter"], devices=1)
    assert calibration["train"]["utilization"] == pytest.approx(4.02)
    assert "understates" in calibration["train"]["warning"]
    no_train = ArmMeasurement(**{**ARM.__dict__, "one_time_seconds": {}, "train_tokens": 0})
    assert (
        "no training stage" in calibrate(no_train, MODEL, CATALOG["meter"], 1)["train"]["unknown"]
    )


def test_hybrid_scenario_can_use_a_projected_cloud_arm():
    from costing import HybridSettings

    edge = ArmMeasurement(**{**ARM.__dict__, "name": "edge", "correct": [True, False]})
    settings = ReportSettings(
        projection=ProjectionSettings(devices=["fast"]),
        hybrid=HybridSettings(
            edge_arm="edge",
            cloud_arm="finetune",
            validate_share=0.5,
            rtt_s=0.2,
            cloud_device="fast",
        ),
    )
    rep = build_cost_report(
        [edge, ARM], MODEL, CostSettings(hardware="meter", g_per_kwh=0), settings, catalog=CATALOG
    )
    hybrid = rep["hybrid"]
    assert hybrid["cloud_device"] == "fast" and hybrid["edge_device"] == "as measured"
    cloud_s = rep["projections"]["finetune"]["fast"]["per_query"]["query_s"]
    assert cloud_s == pytest.approx(1.7 / 4)
    assert hybrid["hybrid"]["accuracy"] == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)
    assert hybrid["hybrid"]["final_answer_latency_s"] == pytest.approx(1.7 + 0.5 * (0.2 + cloud_s))
    assert rep["cost_vs_qoe"][0]["arm"] == "edge" and rep["qoe"]["edge"]["qoe_score"] <= 1


def test_hybrid_onto_a_device_without_peak_is_unknown_not_an_error():
    from costing import HybridSettings

    settings = ReportSettings(
        projection=ProjectionSettings(devices=["blind"]),
        hybrid=HybridSettings(edge_arm="finetune", cloud_arm="finetune", cloud_device="blind"),
    )
    rep = build_cost_report(
        [ARM], MODEL, CostSettings(hardware="meter", g_per_kwh=0), settings, catalog=CATALOG
    )
    assert "cannot be projected onto 'blind'" in rep["hybrid"]["unknown"]
