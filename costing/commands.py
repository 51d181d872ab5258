"""The ``serve``, ``api`` and ``compare`` commands of ``ragtune-cost`` (see costing/whatif.py).

    ragtune-cost serve --hardware a100-80gb --params 6.74b --model-config config.json \\
        --batch-size 64 --context-tokens 2048 --mbu 0.8
    ragtune-cost api --model gpt-4o-mini,gpt-4o --input-tokens 1500 --output-tokens 50 \\
        --queries 1000 --price-date 2024-09-01
    ragtune-cost compare --queries-per-day 10000 --input-tokens 1500 --output-tokens 50 \\
        --api-model gpt-4o-mini --hardware a100-80gb --params 7b --latency-target-s 2
"""

from __future__ import annotations

import argparse
from typing import Any

from costing import formulas
from costing.api import api_quote
from costing.catalog import find_hardware, load_grid_intensity, load_hardware_catalog
from costing.rates import device_rates, grid_g_per_kwh
from costing.requirements import parse_count
from costing.serving import (
    DEFAULT_MBU,
    DEFAULT_MFU,
    ModelShape,
    Roofline,
    batch_table,
    shape_from_config,
    static_batch,
)
from costing.settings import ReportSettings
from costing.traffic import self_hosted_capacity, self_hosted_vs_api
from costing.types import CostSettings

DEFAULT_BATCHES = "1,2,4,8,16,32,64,128,256,512"
COMMANDS = ("serve", "api", "compare")


def add_utilization_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mfu", type=float, help=f"share of peak FLOP/s (default {DEFAULT_MFU})")
    p.add_argument("--mbu", type=float, help=f"share of peak bandwidth (default {DEFAULT_MBU})")
    p.add_argument("--utilization", type=float, help="shorthand: sets --mfu and --mbu to one value")


def utilizations(args: argparse.Namespace) -> tuple[float, float]:
    """(MFU, MBU): explicit flags win over --utilization, which wins over the defaults."""
    share = args.utilization
    mfu = args.mfu if args.mfu is not None else share if share is not None else DEFAULT_MFU
    mbu = args.mbu if args.mbu is not None else share if share is not None else DEFAULT_MBU
    return mfu, mbu


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hardware", required=True, help="row of costing/data/hardware.yaml")
    p.add_argument("--devices", type=int, default=1, help="devices per replica (tensor parallel)")
    p.add_argument("--params", required=True, help="model parameters, e.g. 7b, 6.74b")
    p.add_argument("--model-config", help="a model's config.json: layers, KV heads, head dim")
    p.add_argument("--layers", type=int, default=0, help="without --model-config")
    p.add_argument("--kv-heads", type=int, default=0, help="without --model-config")
    p.add_argument("--head-dim", type=int, default=0, help="without --model-config")
    p.add_argument("--bytes-per-param", type=float, help="weights (bf16: 2, fp8: 1); default 2")
    p.add_argument("--kv-bytes-per-value", type=float, help="KV cache dtype bytes; default 2")
    p.add_argument("--peak-tflops", type=float, help="override the catalog's peak (e.g. FP8)")
    p.add_argument("--bandwidth-tb-s", type=float, help="override the catalog's bandwidth")
    p.add_argument("--tokens-per-s-per-device", type=float, help="measured or published decode")
    add_utilization_args(p)
    p.add_argument("--power-w", type=float, help="average draw per device; default catalog TDP")
    p.add_argument("--usd-per-hour", type=float, help="price per device-hour; default catalog")
    p.add_argument("--pue", type=float, default=1.0)
    p.add_argument("--region", default="world", help="row of costing/data/grid.yaml")
    p.add_argument("--g-per-kwh", type=float, help="grid intensity override (location-based)")


def build_parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"ragtune-cost {command}")
    if command in ("serve", "compare"):
        add_model_args(p)
    if command == "serve":
        p.add_argument("--batch-size", type=int, default=1)
        p.add_argument("--context-tokens", type=float, default=0.0, help="KV tokens per sequence")
        p.add_argument("--batch-sizes", default=DEFAULT_BATCHES, help="rows of the table")
        p.add_argument("--prompt-tokens", type=int, help="with --output-tokens: a static batch")
        p.add_argument("--output-tokens", type=int)
    if command == "api":
        p.add_argument("--model", required=True, help="API model(s), comma-separated")
        p.add_argument("--queries", type=int, default=1000)
    if command in ("api", "compare"):
        p.add_argument("--input-tokens", type=int, required=True)
        p.add_argument("--output-tokens", type=int, required=True)
        p.add_argument("--price-date", help="price rows in force on this day (YYYY-MM-DD)")
        p.add_argument("--zone", help="EcoLogits electricity-mix zone; default the provider's")
    if command == "compare":
        p.add_argument("--queries-per-day", type=float, required=True)
        p.add_argument("--api-model", default="gpt-4o-mini")
        p.add_argument("--latency-target-s", type=float, default=2.0, help="request deadline")
        p.add_argument(
            "--self-hosted-input-tokens",
            type=int,
            help="prompt tokens of the self-hosted arm (e.g. a fine-tuned model without "
            "retrieved context); default --input-tokens",
        )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    return p


def model_and_roofline(args: argparse.Namespace) -> tuple[ModelShape, Roofline, Any]:
    overrides = {}
    if args.peak_tflops is not None:
        overrides["peak_tflops"] = formulas.check_number(
            "--peak-tflops", args.peak_tflops, strict=True
        )
    if args.bandwidth_tb_s is not None:
        overrides["bandwidth_tb_s"] = formulas.check_number(
            "--bandwidth-tb-s", args.bandwidth_tb_s, strict=True
        )
    catalog = load_hardware_catalog(overrides={args.hardware: overrides} if overrides else None)
    hardware = find_hardware(catalog, args.hardware)
    n_params = parse_count(args.params)
    if args.model_config:
        model = shape_from_config(args.model_config, n_params, args.bytes_per_param)
        if args.kv_bytes_per_value is not None:
            model.kv_bytes_per_value = args.kv_bytes_per_value
    else:
        model = ModelShape(
            n_params,
            args.bytes_per_param or 2.0,
            args.layers,
            args.kv_heads,
            args.head_dim,
            args.kv_bytes_per_value or 2.0,
        )
    model.__post_init__()
    mfu, mbu = utilizations(args)
    roof = Roofline(hardware, args.devices, mfu, mbu)
    settings = CostSettings(
        hardware.name, args.devices, pue=args.pue, region=args.region, g_per_kwh=args.g_per_kwh
    )
    g_per_kwh, _ = grid_g_per_kwh(settings, load_grid_intensity())
    rates = device_rates(
        hardware,
        devices=args.devices,
        pue=args.pue,
        g_per_kwh=g_per_kwh,
        report=ReportSettings(api_models=[]),
        power_w=args.power_w,
        usd_per_hour=args.usd_per_hour,
    )
    return model, roof, rates


def run_serve(args: argparse.Namespace) -> dict[str, Any]:
    model, roof, rates = model_and_roofline(args)
    batches = sorted({int(parse_count(b)) for b in args.batch_sizes.split(",")} | {args.batch_size})
    table = batch_table(model, roof, batches, args.context_tokens, args.tokens_per_s_per_device)
    at = next(r for r in table["rows"] if r["batch_size"] == args.batch_size)
    hour = rates.cost_hours(roof.devices)  # one hour of the replica
    tokens_per_hour = at["tokens_per_s"] * 3600
    out: dict[str, Any] = {
        "model": model.to_dict(),
        "hardware": roof.hardware.name,
        "devices": roof.devices,
        "mfu": roof.mfu,
        "mbu": roof.mbu,
        "tokens_per_s_per_device": args.tokens_per_s_per_device,
        "at": at,
        "usd_per_1m_output_tokens": None
        if hour.usd is None
        else hour.usd / tokens_per_hour * formulas.TOKENS_PER_MILLION,
        "energy_kwh_per_1m_output_tokens": None
        if hour.energy_kwh is None
        else hour.energy_kwh / tokens_per_hour * formulas.TOKENS_PER_MILLION,
        "knee_batch_size": table["knee_batch_size"],
        "table": table["rows"],
    }
    if args.prompt_tokens is not None or args.output_tokens is not None:
        if args.prompt_tokens is None or args.output_tokens is None:
            raise ValueError("--prompt-tokens and --output-tokens go together")
        out["static_batch"] = static_batch(
            model,
            roof,
            args.batch_size,
            args.prompt_tokens,
            args.output_tokens,
            args.tokens_per_s_per_device,
        )
    return out


def run_api(args: argparse.Namespace) -> dict[str, Any]:
    models = [m.strip() for m in args.model.split(",") if m.strip()]
    quotes = [
        api_quote(
            m, args.input_tokens, args.output_tokens, args.queries, args.price_date, zone=args.zone
        )
        for m in models
    ]
    return {"price_date": args.price_date or "latest", "api": quotes}


def run_compare(args: argparse.Namespace) -> dict[str, Any]:
    model, roof, rates = model_and_roofline(args)
    hosted_input = args.self_hosted_input_tokens
    host = self_hosted_capacity(
        model,
        roof,
        rates,
        args.input_tokens if hosted_input is None else hosted_input,
        args.output_tokens,
        args.latency_target_s,
        args.tokens_per_s_per_device,
    )
    quote = api_quote(
        args.api_model, args.input_tokens, args.output_tokens, 1, args.price_date, zone=args.zone
    )
    return self_hosted_vs_api(host, quote, args.queries_per_day)


RUNNERS = {"serve": run_serve, "api": run_api, "compare": run_compare}


def render(command: str, result: dict[str, Any]) -> str:
    if command == "api":
        lines = [f"price date: {result['price_date']}"]
        for q in result["api"]:
            e = q["energy_per_query"]
            energy = (
                f"{e['energy_kwh_min'] * 1000:.3g}-{e['energy_kwh_max'] * 1000:.3g} Wh, "
                f"{e['co2_g_min']:.3g}-{e['co2_g_max']:.3g} g CO2e per query (estimate, "
                f"EcoLogits method, {e['zone']} grid)"
                if "energy_kwh_min" in e
                else f"energy: unknown ({e['unknown']})"
            )
            lines += [
                f"{q['model']} (price row {q['price_row']}, from {q['price_date']}: "
                f"${q['usd_per_1m_input']} in / ${q['usd_per_1m_output']} out per 1M tokens)",
                f"  USD per query: {q['usd_per_query']}   per 1k queries: "
                f"{q['usd_per_1k_queries']}   {q['queries']} queries: {q['usd_total']}   "
                f"per 1M tokens: {q['usd_per_1m_tokens']}",
                f"  {energy}",
            ]
        return "\n".join(lines)
    if command == "serve":
        lines = [
            f"{result['hardware']} x{result['devices']}  MFU {result['mfu']}  MBU {result['mbu']}"
            f"  KV bytes/token {result['model']['kv_bytes_per_token']:,.0f}",
            f"knee (decode turns compute-bound) at batch {_num(result['knee_batch_size'])}",
            f"{'batch':>7} {'context':>8} {'s/token':>10} {'tokens/s/dev':>13} {'bound':>8} fits",
        ]
        for r in result["table"]:
            mark = "  <- knee" if r["knee"] else ""
            lines.append(
                f"{r['batch_size']:>7} {r['context_tokens']:>8g} {r['s_per_output_token']:>10.4g} "
                f"{r['tokens_per_s_per_device']:>13.5g} {r['bound']:>8} "
                f"{_num(r['fits_in_memory'])}{mark}"
            )
        lines.append(
            f"USD per 1M output tokens at batch {result['at']['batch_size']}: "
            f"{_num(result['usd_per_1m_output_tokens'])}"
        )
        if "static_batch" in result:
            s = result["static_batch"]
            lines.append(
                f"static batch {s['batch_size']} x ({s['prompt_tokens']} in, {s['output_tokens']}"
                f" out): {s['request_s']:.4g} s, {s['output_tokens_per_s']:.5g} output tokens/s"
            )
        return "\n".join(lines)
    at, cross = result["at_traffic"], result["crossing"]
    host = result["self_hosted"]
    lines = [
        f"self-hosted on {host['hardware']} x{host['devices_per_replica']} vs "
        f"{result['api_model']} (prices from {result['api_price_date']})",
        f"replica capacity: {_num(host.get('capacity_queries_per_day'))} queries/day "
        f"within {host['latency_target_s']} s",
        f"at {at['queries_per_day']:g} queries/day: cheaper {at['cheaper']}, greener "
        f"{at['greener']} (API energy is an EcoLogits estimate)",
    ]
    for metric, c in cross.items():
        lines.append(f"crossing ({metric}): {_num(c['queries_per_day'])} queries/day - {c['why']}")
    return "\n".join(lines)


def _num(value: Any) -> str:
    if value is None:
        return "none"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
