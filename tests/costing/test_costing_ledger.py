"""Cost report: lifecycle ledger sums, break-even, API comparison, unknown values, bad input."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from costing import (
    ArmMeasurement,
    CostingConfigError,
    CostSettings,
    ModelFacts,
    ReportSettings,
    TrafficSettings,
    build_cost_report,
    load_hardware_catalog,
)
from costing.report import check_report_settings
from costing.settings import HybridSettings, ProjectionSettings, QoESettings

# A round-numbered device: 1 h costs 3.6 USD, draws 0.5 kW, embodies 1 kg (100 mm2 x 1 kg/cm2).
TEST_GPU = {
    "kind": "gpu",
    "precision": "bf16",
    "peak_tflops": 100,
    "memory_gb": 80,
    "bandwidth_tb_s": 1.0,
    "tdp_w": 500,
    "usd_per_hour": 3.6,
    "price_date": "2026-01",
    "price_source": "test",
    "source": "test",
    "date": "2026-01",
    "die_area_mm2": 100,
    "cpa_kg_per_cm2": 1.0,
}
SETTINGS = CostSettings(hardware="test-gpu", pue=1.2, g_per_kwh=500)
EMBODIED_PER_HOUR = 1.0 / (5 * 8760)


def catalog(**changes):
    return load_hardware_catalog(overrides={"test-gpu": {**TEST_GPU, **changes}})


def make_arm(
    name, one_time, query_s, *, ttft=None, retrieval=None, correct=None, out=None, tokens_in=None
):
    n = len(query_s)
    return ArmMeasurement(
        name=name,
        one_time_seconds=one_time,
        query_seconds=query_s,
        ttft_s=ttft or [0.0] * n,
        tpot_s=[0.1] * n,
        input_tokens=tokens_in or [100] * n,
        output_tokens=out or [10] * n,
        correct=correct or [True] * n,
        retrieval_seconds=retrieval or [0.0] * n,
    )


def report(arms, settings=SETTINGS, cat=None, **kwargs):
    options = ReportSettings(projection=ProjectionSettings(devices=[]), **kwargs)
    return build_cost_report(arms, ModelFacts(10**9), settings, options, catalog=cat or catalog())


def test_ledger_one_time_per_query_and_traffic_sum_up():
    rag = make_arm(
        "rag",
        {"index": 3600.0},
        [2.0, 4.0],
        ttft=[0.5, 1.5],
        retrieval=[0.5, 0.5],
        correct=[True, False],
        out=[10, 30],
    )
    led = report([rag], traffic=TrafficSettings(queries_per_day=100, days=10))["arms"]["rag"]
    index = led["one_time"]["index"]
    assert index["xpu_hours"] == pytest.approx(1.0)
    assert index["energy_kwh"] == pytest.approx(0.6)  # 0.5 kW x 1 h x PUE 1.2
    assert index["co2_operational_kg"] == pytest.approx(0.3)  # 0.6 kWh x 500 g/kWh
    assert index["co2_embodied_kg"] == pytest.approx(EMBODIED_PER_HOUR)
    assert index["co2_kg"] == pytest.approx(0.3 + EMBODIED_PER_HOUR)
    assert index["usd"] == pytest.approx(3.6)
    per_query = led["per_query"]
    assert [per_query[p]["seconds"] for p in ("retrieval", "prefill", "decode")] == [0.5, 1.0, 1.5]
    assert per_query["total"]["usd"] == pytest.approx(0.003)  # mean 3 s at 3.6 USD/h
    parts = sum(per_query[p]["usd"] for p in ("retrieval", "prefill", "decode"))
    assert parts == pytest.approx(per_query["total"]["usd"])
    assert led["per_1k_queries"]["usd"] == pytest.approx(3.0)
    # Two queries bought one correct answer.
    assert led["per_correct_answer"]["usd"] == pytest.approx(0.006)
    traffic = led["traffic"]
    assert traffic["queries"] == 1000
    assert traffic["total"]["usd"] == pytest.approx(3.6 + 1000 * 0.003)
    assert traffic["per_correct_answer"]["usd"] == pytest.approx(6.6 / 500)
    assert led["self_hosted"]["usd_per_1m_output_tokens"] == pytest.approx(0.006 / 40 * 1e6)


def test_report_is_plain_json():
    rep = report(
        [make_arm("rag", {"index": 1.0}, [1.0])],
        hybrid=HybridSettings(edge_arm="rag", cloud_arm="rag"),
    )
    text = json.dumps(rep, allow_nan=False)
    assert json.loads(text)["schema"] == "ragtune-cost-report/1"


def test_break_even_crossing_is_the_same_for_every_time_proportional_metric():
    finetune = make_arm("finetune", {"train": 7200.0}, [1.0])
    rag = make_arm("rag", {"index": 360.0}, [3.0])
    rep = report([rag, finetune], traffic=TrafficSettings(queries_per_day=100))
    by_metric = {m: rows[0] for m, rows in rep["break_even"].items()}
    usd = by_metric["usd"]
    # (7.2 - 0.36) USD / (0.003 - 0.001) USD per query
    assert usd["investor"] == "finetune" and usd["verdict"] == "crossing"
    assert usd["break_even_queries"] == pytest.approx(3420)
    assert usd["break_even_days"] == pytest.approx(34.2)
    assert "finetune repays" in usd["summary"] and "3,420 queries" in usd["summary"]
    for metric in ("energy_kwh", "co2_operational_kg", "co2_kg"):
        assert by_metric[metric]["break_even_queries"] == pytest.approx(3420), metric


def test_break_even_never_said_plainly():
    finetune = make_arm("finetune", {"train": 7200.0}, [3.0])  # dearer up front AND per query
    rag = make_arm("rag", {"index": 360.0}, [1.0])
    row = report([finetune, rag])["break_even"]["usd"][0]
    assert row["verdict"] == "never" and row["break_even_queries"] is None
    assert row["summary"].startswith("never: finetune costs more up front")
    assert "rag stays cheaper at any traffic" in row["summary"]
    same = report([make_arm("a", {"x": 1.0}, [1.0]), make_arm("b", {"x": 1.0}, [1.0])])
    assert same["break_even"]["usd"][0]["verdict"] == "equal"


def test_unknown_price_gives_none_and_a_reason_never_zero():
    cat = catalog(usd_per_hour=None, price_date=None)
    rep = report(
        [make_arm("finetune", {"train": 100.0}, [1.0]), make_arm("rag", {}, [2.0])], cat=cat
    )
    per_query = rep["arms"]["rag"]["per_query"]["total"]
    assert per_query["usd"] is None
    assert "'test-gpu' has no usd_per_hour" in per_query["unknown"]["usd"]
    assert per_query["energy_kwh"] == pytest.approx(0.5 * 1.2 * 2 / 3600)  # the rest still known
    assert rep["arms"]["rag"]["traffic"]["total"]["usd"] is None
    assert rep["arms"]["rag"]["self_hosted"]["usd_per_1m_output_tokens"] is None
    assert rep["break_even"]["usd"][0]["verdict"] == "unknown"
    assert "usd_per_hour" in rep["break_even"]["usd"][0]["summary"]
    assert rep["cost_vs_qoe"][0]["usd_per_query"] is None
    api = rep["api_comparison"]["rag"]["gpt-4o"]
    assert api["self_hosted_usd_per_query"] is None and api["api_to_self_hosted_ratio"] is None


def test_unknown_power_and_embodied_leave_co2_unknown():
    cat = catalog(tdp_w=None, die_area_mm2=None)
    cost = report([make_arm("rag", {}, [2.0])], cat=cat)["arms"]["rag"]["per_query"]["total"]
    assert cost["energy_kwh"] is None and cost["co2_operational_kg"] is None
    assert cost["co2_kg"] is None and cost["co2_embodied_kg"] is None
    assert "no tdp_w" in cost["unknown"]["energy_kwh"]
    assert "no embodied_kg_co2e" in cost["unknown"]["co2_embodied_kg"]
    assert cost["usd"] == pytest.approx(0.002)
    with_power = CostSettings(hardware="test-gpu", power_w=250, g_per_kwh=500)
    known = report([make_arm("rag", {}, [3600.0])], settings=with_power, cat=cat)
    assert known["arms"]["rag"]["per_query"]["total"]["energy_kwh"] == pytest.approx(0.25)


def test_market_based_co2_is_reported_apart():
    rep = report([make_arm("rag", {}, [3600.0])], market_g_per_kwh=100)
    cost = rep["arms"]["rag"]["per_query"]["total"]
    assert cost["co2_operational_kg"] == pytest.approx(0.3)  # location-based, 500 g/kWh
    assert cost["co2_market_kg"] == pytest.approx(0.06)  # market-based, 100 g/kWh
    assert cost["co2_kg"] == pytest.approx(0.3 + EMBODIED_PER_HOUR)  # never mixes in market


def test_api_comparison_is_exact():
    arm = make_arm(
        "rag", {}, [1.0, 1.0], tokens_in=[1234, 100], out=[567, 33], correct=[True, False]
    )
    api = report([arm])["api_comparison"]["rag"]
    # GPT-4o 5/15 per 1M: 0.00617 + 0.008505 + 0.0005 + 0.000495
    assert Decimal(api["gpt-4o"]["usd_total_exact"]) == Decimal("0.01567")
    assert api["gpt-4o"]["usd_per_correct_answer"] == pytest.approx(0.01567)
    assert api["gpt-4o"]["usd_per_query"] == pytest.approx(0.01567 / 2)
    assert api["gpt-4o"]["usd_traffic_total"] == pytest.approx(0.01567 / 2 * 1000 * 365)
    # GPT-4o-mini 0.15/0.60: 1334 x 0.15e-6 + 600 x 0.60e-6
    assert Decimal(api["gpt-4o-mini"]["usd_total_exact"]) == Decimal("0.0005601")
    assert api["gpt-4o"]["price_date"] == "2024-05"


def test_missing_api_price_names_the_table_and_the_model():
    with pytest.raises(CostingConfigError, match=r"api_prices\.yaml has no row for model 'gpt-9'"):
        report([make_arm("rag", {}, [1.0])], api_models=["gpt-9"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query_seconds": [1.0], "ttft_s": [0.5, 0.5]}, "ttft_s has 2 entries"),
        ({"query_seconds": [-1.0]}, r"query_seconds\[0\] must be >= 0"),
        ({"query_seconds": [1.0], "ttft_s": [0.9], "retrieval_seconds": [0.2]}, "must include"),
        ({"query_seconds": []}, "query_seconds is empty"),
        ({"query_seconds": [1.0], "correct": [1]}, r"correct\[0\] must be true or false"),
        ({"query_seconds": [1.0], "one_time_seconds": {"train": -5.0}}, "one_time_seconds"),
    ],
)
def test_bad_measurements_name_the_field(kwargs, message):
    base = {
        "name": "rag",
        "one_time_seconds": {},
        "tpot_s": [0.1],
        "input_tokens": [1],
        "output_tokens": [1],
        "correct": [True],
        "retrieval_seconds": [0.0],
        "ttft_s": [0.0],
    }
    with pytest.raises(ValueError, match=message):
        ArmMeasurement(**{**base, **kwargs})


def test_bad_report_settings_and_names_fail_early():
    arm = make_arm("rag", {}, [1.0])
    with pytest.raises(CostingConfigError, match=r"costing\.qoe\.ttft_threshold_s"):
        ReportSettings(qoe=QoESettings(ttft_threshold_s=0))
    with pytest.raises(CostingConfigError, match=r"costing\.projection\.utilization"):
        ProjectionSettings(utilization=1.5)
    with pytest.raises(CostingConfigError, match="hybrid.cloud_arm"):
        HybridSettings(edge_arm="rag")
    with pytest.raises(CostingConfigError, match=r"'b200'.*valid names: .*h100-sxm"):
        build_cost_report(
            [arm],
            ModelFacts(10**9),
            SETTINGS,
            ReportSettings(projection=ProjectionSettings(devices=["b200"])),
            catalog=catalog(),
        )
    with pytest.raises(CostingConfigError, match=r"hybrid\.edge_arm='edge' is not an arm"):
        report([arm], hybrid=HybridSettings(edge_arm="edge", cloud_arm="rag"))
    with pytest.raises(CostingConfigError, match=r"cloud_device='h100-sxm' must also be listed"):
        check_report_settings(
            SETTINGS,
            ReportSettings(
                projection=ProjectionSettings(devices=["a100-80gb"]),
                hybrid=HybridSettings(edge_arm="rag", cloud_arm="rag", cloud_device="h100-sxm"),
            ),
            ["rag"],
            catalog=catalog(),
        )
    with pytest.raises(ValueError, match="unique names"):
        report([arm, arm])
    with pytest.raises(ValueError, match="trainable_params"):
        ModelFacts(10, trainable_params=11)


def test_measured_energy_is_carried_through():
    arm = make_arm("rag", {"index": 1.0}, [1.0])
    arm.measured_energy_kwh = {"index": 0.002, "queries": None}
    assert report([arm])["arms"]["rag"]["measured_energy_kwh"] == {"index": 0.002, "queries": None}


@pytest.mark.parametrize(
    ("build", "key"),
    [
        (lambda: ReportSettings(api_models="gpt-4o"), "costing.api_models"),
        (lambda: ReportSettings(market_g_per_kwh=-1.0), "costing.market_g_per_kwh"),
        (lambda: TrafficSettings(days=-1), "costing.traffic.days"),
        (lambda: ProjectionSettings(devices=["a100-80gb", ""]), "costing.projection.devices"),
    ],
)
def test_settings_errors_name_the_config_key(build, key):
    with pytest.raises(CostingConfigError, match=key.replace(".", r"\.")):
        build()


def test_failed_requests_are_costed_and_score_zero_qoe():
    """One answered request (1 s, first token at 0.2 s, 10 tokens at 0.1 s each) and one that
    failed after 3 s. Hand calculation on TEST_GPU (3.6 USD per hour = 0.001 USD per second):
    with failures the mean request is (1 + 3) / 2 = 2 s, 2 USD per 1k queries; without, 1 s,
    1 USD. QoE: the answered request waits 0.2 s <= 1 s (1.0) and streams 10 tokens/s, above
    the reading speed 250 wpm x 1.33 / 60 = 5.54 tokens/s (1.0); the failed one scores 0, so
    the mean is 0.5 with failures and 1.0 without."""
    arm = ArmMeasurement(
        name="rag",
        one_time_seconds={},
        query_seconds=[1.0, 3.0],
        ttft_s=[0.2, 0.0],
        tpot_s=[0.1, 0.0],
        input_tokens=[100, 100],  # the failed request's prompt was sent
        output_tokens=[10, 0],
        correct=[True, False],
        retrieval_seconds=[0.0, 0.0],
        failed=[False, True],
    )
    result = json.loads(json.dumps(report([arm])))
    ledger = result["arms"]["rag"]
    assert ledger["failed_queries"] == 1
    assert ledger["per_1k_queries"]["usd"] == pytest.approx(2.0)
    assert ledger["per_1k_queries_answered_only"]["usd"] == pytest.approx(1.0)
    assert ledger["tokens"]["input_total"] == 200
    qoe = result["qoe"]["rag"]
    assert qoe["failed_requests"] == 1
    assert qoe["qoe_score"] == pytest.approx(0.5)
    assert qoe["qoe_score_answered_only"] == pytest.approx(1.0)
    assert qoe["first_token_s_p50"] == pytest.approx(0.2)  # latency: the answered request only
