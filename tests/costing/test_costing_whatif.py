"""The what-if command (``python -m costing.whatif``) and its requirement tables."""

from __future__ import annotations

import json
import math
import re

import pytest

from costing.requirements import parse_count
from costing.whatif import main

GPT3 = [
    "--hardware",
    "v100",
    "--devices",
    "10000",
    "--power-w",
    "330",
    "--pue",
    "1.1",
    "--g-per-kwh",
    "429",
]


def run_json(capsys, *argv):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_gpt3_from_wall_clock(capsys):
    est = run_json(capsys, *GPT3, "--hours", str(14.8 * 24))["estimate"]
    assert est["xpu_hours"] == pytest.approx(3_552_000)
    assert est["wall_days"] == pytest.approx(14.8)
    assert est["energy_kwh"] / 1000 == pytest.approx(1287, rel=0.01)
    assert est["co2_operational_kg"] / 1000 == pytest.approx(552.1, rel=0.01)
    # Embodied: 3.552M V100-hours x 9.78 kg over 5 years = 793 kg, small next to operations.
    assert est["co2_embodied_kg"] == pytest.approx(9.78 * 3_552_000 / (5 * 8760))
    assert est["usd"] == pytest.approx(3_552_000 * 3.902)


def test_gpt3_from_flops_and_from_params(capsys):
    util = str(24.6 / 125)  # measured 24.6 TFLOP/s of a 125 TFLOP/s peak
    est = run_json(capsys, *GPT3, "--flops", "3.14e23", "--utilization", util)["estimate"]
    assert est["wall_days"] == pytest.approx(14.77, abs=0.01)
    est = run_json(capsys, *GPT3, "--params", "175b", "--tokens", "300b", "--utilization", util)
    assert est["estimate"]["flops"] == pytest.approx(3.15e23)
    lora = run_json(
        capsys,
        "--hardware",
        "a100-80gb",
        "--params",
        "7b",
        "--tokens",
        "1m",
        "--trainable-params",
        "4m",
    )["estimate"]
    assert lora["flops"] == pytest.approx((4 * 7e9 + 2 * 4e6) * 1e6)


def test_unknown_price_is_reported_not_zero(capsys):
    est = run_json(capsys, "--hardware", "h200", "--hours", "1")["estimate"]
    assert est["usd"] is None and "no usd_per_hour" in est["unknown"]["usd"]
    assert est["energy_kwh"] == pytest.approx(0.7)
    assert main(["--hardware", "h200", "--hours", "1"]) == 0
    text = capsys.readouterr().out
    assert "usd: unknown (hardware 'h200' has no usd_per_hour" in text
    assert "xpu_hours: 1" in text


def test_training_table(capsys):
    out = run_json(
        capsys,
        "--table",
        "training",
        "--sizes",
        "7b,70b",
        "--tokens",
        "2e12",
        "--hardware",
        "a100-80gb,h100-sxm",
        "--days",
        "30",
    )
    rows = {(r["params"], r["hardware"]): r for r in out["training"]}
    assert len(rows) == 4
    h100 = rows[(7e9, "h100-sxm")]
    hours = 6 * 7e9 * 2e12 / (989e12 * 0.4 * 3600)
    assert h100["xpu_hours"] == pytest.approx(hours)
    assert h100["devices_for_days"] == math.ceil(hours / (30 * 24))
    assert h100["min_devices_memory"] == 2  # 7e9 x 16 B = 112 GB over 80 GB devices
    assert rows[(70e9, "a100-80gb")]["xpu_hours"] == pytest.approx(hours * 10 * 989 / 312)


def test_serving_table_and_unknown_rows(capsys):
    out = run_json(
        capsys,
        "--table",
        "serving",
        "--sizes",
        "70b",
        "--hardware",
        "h100-sxm,a10g",
        "--prompt-tokens",
        "1000",
        "--output-tokens",
        "101",
        "--utilization",
        "0.5",
    )
    h100, a10g = out["serving"]
    assert h100["devices_per_replica"] == 2  # 140 GB of bf16 weights
    per_token = 70e9 * 2 / (2 * 3.35e12 * 0.5)
    assert h100["decode_s_per_token"] == pytest.approx(per_token)
    prefill = 2 * 70e9 * 1000 / (2 * 989e12 * 0.5)
    assert h100["query_s"] == pytest.approx(prefill + 100 * per_token)
    assert "lacks memory, peak or bandwidth" in a10g["unknown"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--hardware", "a100", "--hours", "1"], "unknown hardware 'a100'.*a100-80gb"),
        (["--hardware", "v100", "--hours", "1", "--flops", "1e20"], "exactly one of"),
        (["--hardware", "v100", "--params", "7b"], "--params needs --tokens"),
        (["--hardware", "v100", "--hours", "-1"], "hours must be >= 0"),
        (["--hardware", "v100", "--params", "seven", "--tokens", "1"], "not a count"),
        (["--hardware", "v100", "--hours", "1", "--devices", "0"], "devices must be"),
        (["--hardware", "v100", "--hours", "1", "--region", "mars"], "grid region 'mars'"),
        (["--hours", "1"], "--hardware is required"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(capsys, argv, message):
    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)


def test_argparse_errors_return_a_code():
    assert main(["--no-such-flag"]) == 2


def test_parse_count():
    assert parse_count("7b") == 7e9 and parse_count("135M") == 1.35e8
    assert parse_count("2e12") == 2e12 and parse_count("1.5t") == 1.5e12
