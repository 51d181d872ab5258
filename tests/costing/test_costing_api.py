"""API arms from the CLI (``ragtune-cost api``), their energy estimate, and self-hosted versus API
(``ragtune-cost compare``). Expected values are worked by hand from the published prices."""

from __future__ import annotations

import pytest

from costing.api import parse_day, price_on
from costing.api_energy import api_request_energy, gpus_required
from costing.rows import CostingConfigError
from tests.helpers.cost_cli import DATA, ragtune_cost, ragtune_cost_json

THOUSAND_RAG_QUERIES = ["--input-tokens", "1500", "--output-tokens", "50", "--queries", "1000"]


def test_one_command_prices_1000_queries_for_both_models_at_a_date():
    # OpenAI prices per 1M tokens: gpt-4o-mini 0.15 in / 0.60 out (from 2024-07-18); gpt-4o
    # 5.00 / 15.00 (2024-05-13), then 2.50 / 10.00 for gpt-4o-2024-08-06.
    # 1,000 x (1,500 x 0.15 + 50 x 0.60) / 1e6 = 0.255;
    # gpt-4o: 1,000 x (1,500 x 2.5 + 50 x 10) / 1e6 = 4.25, and 8.25 at the May 2024 price.
    out = ragtune_cost_json(
        "api", "--model", "gpt-4o-mini,gpt-4o", *THOUSAND_RAG_QUERIES, "--price-date", "2024-09-01"
    )
    mini, big = out["api"]
    assert (mini["model"], mini["usd_total"], mini["usd_per_query"]) == (
        "gpt-4o-mini",
        "0.255",
        "0.000255",
    )
    assert (big["model"], big["usd_total"], big["usd_per_1k_queries"]) == ("gpt-4o", "4.25", "4.25")
    assert big["price_date"] == "2024-08-06" and "openai.com" in big["price_source"]
    # Per 1M tokens of this mix: 4.25 USD / 1.55M tokens.
    assert float(big["usd_per_1m_tokens"]) == pytest.approx(4.25 / 1.55)
    may = ragtune_cost_json(
        "api", "--model", "gpt-4o", *THOUSAND_RAG_QUERIES, "--price-date", "2024-06-01"
    )
    assert may["api"][0]["usd_total"] == "8.25"
    text = ragtune_cost(
        "api", "--model", "gpt-4o-mini,gpt-4o", *THOUSAND_RAG_QUERIES, "--price-date", "2024-09-01"
    ).stdout
    assert "1000 queries: 0.255" in text and "1000 queries: 4.25" in text
    assert "estimate, EcoLogits method" in text


def test_price_rows_are_selected_by_date():
    assert price_on("gpt-4o", "2024-08-05").usd_per_1m_input == "5.00"
    assert price_on("gpt-4o", "2024-08-06").usd_per_1m_input == "2.50"
    assert price_on("gpt-4o").name == "gpt-4o@2024-08-06"  # no date: the newest row
    assert price_on("gemini-1.5-pro", "2024-10-01").usd_per_1m_output == "5.00"
    assert parse_day("2024-07").isoformat() == "2024-07-01"
    with pytest.raises(CostingConfigError, match="first row is dated"):
        price_on("gpt-4o", "2023-01-01")
    with pytest.raises(CostingConfigError, match="no price for API model 'gpt-5'"):
        price_on("gpt-5")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "gpt-5"], "no price for API model 'gpt-5'"),
        (["--model", "gpt-4o", "--price-date", "August"], "--price-date must be a date"),
        (["--model", "gpt-4o", "--price-date", "2020-01-01"], "first row is dated"),
    ],
)
def test_api_user_errors_are_one_line_exit_2(argv, message):
    done = ragtune_cost("api", *argv, "--input-tokens", "10", "--output-tokens", "1")
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--hardware", "a100", "--params", "7b"], "unknown hardware 'a100'"),
        (["serve", "--hardware", "a10g", "--params", "7b"], "no peak_tflops or bandwidth_tb_s"),
        (["serve", "--hardware", "a100-80gb", "--params", "7b", "--mbu", "1.5"], "mbu must be"),
        (["serve", "--hardware", "a100-80gb", "--params", "7b", "--model-config", "/nope.json"],
         "cannot read the model config"),
        (["compare", "--hardware", "a100-80gb", "--params", "7b", "--queries-per-day", "10",
          "--input-tokens", "10", "--output-tokens", "5", "--api-model", "gpt-5"],
         "no price for API model 'gpt-5'"),
    ],
)  # fmt: skip
def test_serve_and_compare_user_errors_are_one_line_exit_2(argv, message):
    done = ragtune_cost(*argv)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_energy_estimate_is_labelled_with_source_and_range():
    e = api_request_energy("gpt-4o", 50)
    assert e["kind"] == "estimate" and "EcoLogits" in e["source"]
    assert 0 < e["energy_kwh_min"] < e["energy_kwh_max"]
    assert e["co2_g_max"] == pytest.approx(e["energy_kwh_max"] * 0.3844 * 1000)  # USA mix
    # EcoLogits sizes GPUs as 1.2 x params x 2 bytes over 80 GB, rounded to a power of two:
    # gpt-4o, 440B -> 1,056 GB -> 14 -> 16 GPUs; an 8B model fits one.
    assert gpus_required(440) == 16 and gpus_required(8) == 1
    assert "unknown" in api_request_energy("claude-3.5-sonnet", 50)


# Output of ecologits 0.11.3 itself, llm_impacts("openai", model, 50 output tokens, latency
# unbounded), typed in: request energy in kWh, (min, max).
ECOLOGITS_0_11_3_KWH = {
    "gpt-4o": (7.90310987445733e-05, 0.00012713518392453514),
    "gpt-4o-mini": (3.6214125791520955e-06, 4.3047092436401894e-06),
}


def test_energy_matches_ecologits_published_output_through_the_cli():
    out = ragtune_cost_json(
        "api", "--model", "gpt-4o-mini,gpt-4o", "--input-tokens", "1500", "--output-tokens", "50"
    )
    for quote in out["api"]:
        low, high = ECOLOGITS_0_11_3_KWH[quote["model"]]
        e = quote["energy_per_query"]
        assert (e["energy_kwh_min"], e["energy_kwh_max"]) == (
            pytest.approx(low, rel=1e-9),
            pytest.approx(high, rel=1e-9),
        )
        assert e["kind"] == "estimate" and "EcoLogits" in e["source"]
    # The README's rounded figures: 0.0036-0.0043 Wh and 0.079-0.127 Wh; 0.03-0.05 g on the US grid.
    mini, big = (q["energy_per_query"] for q in out["api"])
    assert (round(mini["energy_kwh_min"] * 1e3, 4), round(mini["energy_kwh_max"] * 1e3, 4)) == (
        0.0036,
        0.0043,
    )
    assert (round(big["energy_kwh_min"] * 1e3, 3), round(big["energy_kwh_max"] * 1e3, 3)) == (
        0.079,
        0.127,
    )
    assert (round(big["co2_g_min"], 2), round(big["co2_g_max"], 2)) == (0.03, 0.05)


def test_energy_matches_the_ecologits_package_when_installed():
    ecologits = pytest.importorskip("ecologits.tracers.utils")
    for model in ("gpt-4o", "gpt-4o-mini"):
        theirs = ecologits.llm_impacts("openai", model, 50, 1e9)
        ours = api_request_energy(model, 50)
        assert ours["energy_kwh_min"] == pytest.approx(theirs.energy.value.min, rel=1e-9)
        assert ours["energy_kwh_max"] == pytest.approx(theirs.energy.value.max, rel=1e-9)
        assert ours["co2_g_max"] / 1000 == pytest.approx(theirs.usage.gwp.value.max, rel=1e-9)


LLAMA = [
    "--hardware",
    "a100-80gb",
    "--params",
    "6.74b",
    "--model-config",
    str(DATA / "llama-7b.json"),
]


def test_compare_gives_the_crossing_point_as_json():
    # One A100 at USD 2.00/h costs 48 USD a day; gpt-4o-mini costs 0.000255 USD per query of
    # 1,500 + 50 tokens, so the two cost the same at 48 / 0.000255 = 188,235 queries/day.
    out = ragtune_cost_json(
        "compare",
        *LLAMA,
        "--usd-per-hour",
        "2.0",
        "--queries-per-day",
        "10000",
        "--input-tokens",
        "1500",
        "--output-tokens",
        "50",
        "--api-model",
        "gpt-4o-mini",
        "--price-date",
        "2024-09-01",
        "--mbu",
        "0.8",
        "--latency-target-s",
        "2",
    )
    assert out["crossing"]["usd"]["queries_per_day"] == pytest.approx(48 / 0.000255)
    assert out["at_traffic"]["cheaper"] == "api"  # 10,000/day: 2.55 USD vs 48 USD
    assert out["at_traffic"]["api_usd_per_day"] == pytest.approx(2.55)
    assert out["at_traffic"]["self_hosted_usd_per_day"] == pytest.approx(48)
    host = out["self_hosted"]
    assert host["batch"]["request_s"] <= 2 and host["capacity_queries_per_day"] > 48 / 0.000255
    above = next(r for r in out["table"] if r["queries_per_day"] == 1_000_000)
    assert above["cheaper"] == "self-hosted"
    # Energy: 24 h x 400 W (A100 TDP) = 9.6 kWh a day against the EcoLogits midpoint.
    e = out["api_energy_estimate"]
    mid = (e["energy_kwh_min"] + e["energy_kwh_max"]) / 2
    energy = out["crossing"]["energy_kwh"]
    if 9.6 / mid <= host["capacity_queries_per_day"]:
        assert energy["queries_per_day"] == pytest.approx(9.6 / mid)
    else:  # one replica cannot reach the API's energy per query even when full
        assert energy["queries_per_day"] is None and energy["why"].startswith("never")


def test_compare_says_never_when_a_full_replica_is_dearer_per_query():
    # 1 token/s per device: a replica answers about 1,700 queries of 50 tokens a day, at
    # 48 USD / day that is far above gpt-4o-mini's 0.000255 USD per query.
    out = ragtune_cost_json(
        "compare",
        *LLAMA,
        "--usd-per-hour",
        "2.0",
        "--queries-per-day",
        "1000",
        "--input-tokens",
        "1500",
        "--output-tokens",
        "50",
        "--tokens-per-s-per-device",
        "1",
        "--latency-target-s",
        "100",
    )
    assert out["crossing"]["usd"]["queries_per_day"] is None
    assert out["crossing"]["usd"]["why"].startswith("never")
