"""The run's cost report carries the self-hosted versus API section as data."""

from __future__ import annotations

import pytest

from costing import (
    CostingConfigError,
    ModelFacts,
    ReportSettings,
    TrafficSettings,
    build_cost_report,
)
from costing.settings import ProjectionSettings, TokenomicsSettings
from tests.costing.test_costing_ledger import SETTINGS, catalog, make_arm


def section(**tokenomics):
    rag = make_arm("rag", {"index": 60.0}, [1.0, 1.0], tokens_in=[1500, 1500], out=[50, 50])
    tuned = make_arm("finetune", {"train": 600.0}, [1.0, 1.0], tokens_in=[100, 100], out=[50, 50])
    options = ReportSettings(
        projection=ProjectionSettings(devices=[]),
        traffic=TrafficSettings(queries_per_day=10_000),
        api_models=["gpt-4o-mini", "gpt-4o"],
        tokenomics=TokenomicsSettings(device="test-gpu", **tokenomics),
    )
    model = ModelFacts(10**9, bytes_per_param=4.0, kv_bytes_per_token=4096.0)
    return build_cost_report([rag, tuned], model, SETTINGS, options, catalog=catalog())[
        "self_hosted_vs_api"
    ]


def test_section_compares_each_arm_with_each_api_model():
    out = section(price_date="2024-09-01")
    assert set(out["arms"]) == {"rag", "finetune"}
    assert set(out["arms"]["finetune"]) == {"gpt-4o-mini", "gpt-4o"}
    # The test device costs 3.6 USD/h: 86.4 USD a replica-day. The API answers with the RAG arm's
    # 1,500 + 50 tokens: gpt-4o-mini 0.000255 USD, gpt-4o (2024-08-06 price) 0.00425 USD.
    mini = out["arms"]["finetune"]["gpt-4o-mini"]
    big = out["arms"]["finetune"]["gpt-4o"]
    assert mini["crossing"]["usd"]["queries_per_day"] == pytest.approx(86.4 / 0.000255)
    assert big["crossing"]["usd"]["queries_per_day"] == pytest.approx(86.4 / 0.00425)
    # At 10,000 queries/day both APIs cost less than a replica-day (2.55 and 42.5 USD); at
    # 100,000 gpt-4o costs 425 USD and self-hosting wins, gpt-4o-mini still does not (25.5 USD).
    assert mini["at_traffic"]["cheaper"] == "api" and big["at_traffic"]["cheaper"] == "api"
    at_100k = {
        m: next(r for r in x["table"] if r["queries_per_day"] == 100_000)
        for m, x in (("mini", mini), ("big", big))
    }
    assert at_100k["big"]["cheaper"] == "self-hosted" and at_100k["mini"]["cheaper"] == "api"
    # KV per token scaled from the measured fp32 (4 bytes) to bf16 serving (2 bytes).
    assert out["assumptions"]["kv_bytes_per_token"] == 2048
    assert "EcoLogits" in mini["api_energy_estimate"]["source"]
    assert mini["table"] and all("cheaper" in row for row in mini["table"])
    # The fine-tuned arm's short prompts give more capacity than the RAG arm's long ones.
    rag_capacity = out["arms"]["rag"]["gpt-4o-mini"]["self_hosted"]["capacity_queries_per_day"]
    assert mini["self_hosted"]["capacity_queries_per_day"] > rag_capacity


def test_bad_tokenomics_settings_fail_before_work():
    with pytest.raises(CostingConfigError, match=r"costing\.tokenomics\.mbu"):
        TokenomicsSettings(mbu=1.5)
    with pytest.raises(CostingConfigError, match=r"costing\.tokenomics\.price_date"):
        section(price_date="soon")


def test_a_device_without_bandwidth_fails_at_config_time():
    from costing.report import check_report_settings

    options = ReportSettings(tokenomics=TokenomicsSettings(device="a10g"))
    with pytest.raises(CostingConfigError, match="'a10g' has no peak_tflops or bandwidth_tb_s"):
        check_report_settings(SETTINGS, options, catalog=catalog())
