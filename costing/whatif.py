"""What-if cost estimator: ``python -m costing.whatif`` (console script ``ragtune-cost``).

    python -m costing.whatif --hardware v100 --devices 10000 --hours 355.2 --power-w 330 \\
        --pue 1.1 --g-per-kwh 429
    python -m costing.whatif --hardware a100-80gb --params 7b --tokens 2e12 --utilization 0.4
    python -m costing.whatif --table training --sizes 7b,13b,70b --tokens 2e12
    python -m costing.whatif --table serving --sizes 7b,70b --queries-per-day 1e6 --json
    python -m costing.whatif --hardware a100-80gb --devices 2048 --tokens 1.4t \\
        --tokens-per-s-per-device 380
    ragtune-cost serve | api | compare ...   (costing/commands.py)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from costing import commands, formulas
from costing.catalog import find_hardware, load_grid_intensity, load_hardware_catalog
from costing.rates import device_rates, grid_g_per_kwh
from costing.requirements import estimate, parse_count, serving_row, training_row
from costing.rows import CostingConfigError
from costing.settings import EmbodiedSettings, ReportSettings
from costing.types import CostSettings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ragtune-cost",
        description="What-if cost estimator. Also: ragtune-cost serve|api|compare --help",
    )
    p.add_argument("--table", choices=("training", "serving"), help="print a requirement table")
    p.add_argument("--hardware", default=None, help="catalog row(s), comma-separated for tables")
    p.add_argument("--devices", type=int, default=1, help="devices running the job")
    work = p.add_argument_group("work (one of)")
    work.add_argument("--hours", type=float, help="wall-clock hours on --devices devices")
    work.add_argument("--flops", type=float, help="total FLOPs")
    work.add_argument("--params", help="model parameters, e.g. 7b (with --tokens: 6ND)")
    work.add_argument("--trainable-params", help="adapter parameters: LoRA FLOPs instead of 6ND")
    work.add_argument(
        "--tokens-per-s-per-device",
        type=float,
        help="with --tokens: measured training throughput instead of FLOPs / (peak x MFU)",
    )
    p.add_argument("--tokens", help="training tokens, e.g. 2e12")
    p.add_argument("--sizes", default="7b,13b,70b", help="model sizes for --table")
    p.add_argument("--days", type=float, default=30.0, help="training deadline for --table")
    p.add_argument("--prompt-tokens", type=float, default=1000.0)
    p.add_argument("--output-tokens", type=float, default=250.0)
    p.add_argument("--queries-per-day", type=float, default=100_000.0)
    p.add_argument("--bytes-per-param", type=float, default=2.0, help="serving weights (bf16: 2)")
    commands.add_utilization_args(p)
    p.add_argument("--power-w", type=float, help="average draw per device; default catalog TDP")
    p.add_argument("--pue", type=float, default=1.0)
    p.add_argument("--region", default="world", help="row of costing/data/grid.yaml")
    p.add_argument("--g-per-kwh", type=float, help="grid intensity override (location-based)")
    p.add_argument("--market-g-per-kwh", type=float, help="market-based intensity, reported apart")
    p.add_argument("--usd-per-hour", type=float, help="price per device-hour; default catalog")
    p.add_argument("--lifetime-years", type=float, default=5.0)
    p.add_argument("--use-rate", type=float, default=1.0)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    catalog = load_hardware_catalog()
    names = (args.hardware or ("a100-80gb,h100-sxm" if args.table else "")).split(",")
    if not names[0]:
        raise ValueError("--hardware is required (a row of costing/data/hardware.yaml)")
    hardware = [find_hardware(catalog, name.strip()) for name in names]
    settings = CostSettings(
        hardware=hardware[0].name,
        devices=args.devices,
        pue=args.pue,
        region=args.region,
        g_per_kwh=args.g_per_kwh,
    )
    g_per_kwh, grid_label = grid_g_per_kwh(settings, load_grid_intensity())
    report = ReportSettings(
        embodied=EmbodiedSettings(args.lifetime_years, args.use_rate),
        market_g_per_kwh=args.market_g_per_kwh,
        api_models=[],
    )

    def rates(hw, devices=1):
        return device_rates(
            hw,
            devices=devices,
            pue=args.pue,
            g_per_kwh=g_per_kwh,
            report=report,
            power_w=args.power_w,
            usd_per_hour=args.usd_per_hour,
        )

    mfu, mbu = commands.utilizations(args)
    out: dict[str, Any] = {"grid": grid_label, "pue": args.pue}
    if args.table == "training":
        out["mfu"] = mfu
        tokens = parse_count(args.tokens or "")
        out["training"] = [
            training_row(parse_count(s), tokens, hw, rates(hw), mfu, args.days)
            for s in args.sizes.split(",")
            for hw in hardware
        ]
    elif args.table == "serving":
        out.update(mfu=mfu, mbu=mbu)
        out["serving"] = [
            serving_row(
                parse_count(s),
                hw,
                rates(hw),
                prompt_tokens=args.prompt_tokens,
                output_tokens=args.output_tokens,
                queries_per_day=args.queries_per_day,
                bytes_per_param=args.bytes_per_param,
                mfu=mfu,
                mbu=mbu,
            )
            for s in args.sizes.split(",")
            for hw in hardware
        ]
    else:
        hours = args.hours
        if args.tokens_per_s_per_device is not None:
            hours = _hours_from_throughput(args)
        flops = _flops(args)
        est = estimate(
            rates(hardware[0], args.devices), hardware[0], hours=hours, flops=flops, utilization=mfu
        )
        if flops is None:  # wall clock given: no FLOPs and no utilization were used
            est.pop("flops"), est.pop("utilization")
        else:
            out["mfu"] = mfu
        if args.tokens_per_s_per_device is not None:
            est["tokens_per_s_per_device"] = args.tokens_per_s_per_device
        out["estimate"] = est
    return out


def _hours_from_throughput(args: argparse.Namespace) -> float:
    """Wall-clock hours of ``--tokens`` at ``--tokens-per-s-per-device`` on ``--devices``."""
    if args.tokens is None or args.hours is not None or args.flops is not None:
        raise ValueError("--tokens-per-s-per-device needs --tokens (and no --hours or --flops)")
    rate = formulas.check_number(
        "--tokens-per-s-per-device", args.tokens_per_s_per_device, strict=True
    )
    devices = formulas.check_count("devices", args.devices, minimum=1)
    return parse_count(args.tokens) / (rate * devices) / formulas.SECONDS_PER_HOUR


def _flops(args: argparse.Namespace) -> float | None:
    if args.tokens_per_s_per_device is not None:
        return None
    given = [args.hours is not None, args.flops is not None, args.params is not None]
    if sum(given) != 1:
        raise ValueError(
            "give exactly one of --hours, --flops, --params (with --tokens) or "
            "--tokens-per-s-per-device (with --tokens)"
        )
    if args.params is None:
        return args.flops
    if args.tokens is None:
        raise ValueError("--params needs --tokens (training tokens)")
    n, d = parse_count(args.params), parse_count(args.tokens)
    if args.trainable_params:
        return formulas.lora_training_flops(n, parse_count(args.trainable_params), d)
    return formulas.training_flops_dense(n, d)


def render(result: dict[str, Any]) -> str:
    lines = [f"grid: {result['grid']}", f"pue: {result['pue']}"]
    lines += [f"{knob}: {result[knob]}" for knob in ("mfu", "mbu") if knob in result]
    if "estimate" in result:
        est = result["estimate"]
        for key in (
            "hardware",
            "devices",
            "flops",
            "utilization",
            "xpu_hours",
            "wall_days",
            "energy_kwh",
            "co2_operational_kg",
            "co2_market_kg",
            "co2_embodied_kg",
            "co2_kg",
            "usd",
        ):
            if key not in est:
                continue
            value = est.get(key)
            text = f"{value:,.6g}" if isinstance(value, float) else str(value)
            if value is None and key in est["unknown"]:
                text = f"unknown ({est['unknown'][key]})"
            lines.append(f"{key:>20}: {text}")
        return "\n".join(lines)
    rows = result.get("training") or result.get("serving") or []
    keys = [k for k in rows[0] if k != "unknown"] if rows else []
    lines.append("  ".join(f"{k:>16}" for k in keys))
    for row in rows:
        cells = [row.get(k) for k in keys]
        lines.append("  ".join(f"{_cell(c):>16}" for c in cells))
    notes = {str(row["unknown"]) for row in rows if row.get("unknown")}
    lines += [f"unknown: {note}" for note in sorted(notes)]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "unknown"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv and argv[0] in commands.COMMANDS else None
    parser = commands.build_parser(command) if command else build_parser()
    try:
        args = parser.parse_args(argv[1:] if command else argv)
    except SystemExit as exit_:  # argparse already printed the usage error
        return int(exit_.code or 0)
    try:
        result = commands.RUNNERS[command](args) if command else run(args)
    except (CostingConfigError, ValueError) as err:
        print(f"ragtune-cost: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        text = json.dumps(result, indent=2, allow_nan=False)
    else:
        text = commands.render(command, result) if command else render(result)
    return _write(text)


def _write(text: str) -> int:
    """Print ``text``; a reader that closed the pipe early (``| head``) ends the command quietly."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
