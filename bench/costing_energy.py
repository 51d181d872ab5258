"""Measure a CPU-bound stage with codecarbon and compare it with the costing estimate.

    .venv/bin/python bench/costing_energy.py --seconds 5 --country FRA

Needs the optional ``energy`` extra (codecarbon). Prints the measured kWh next to the estimate
power x time x PUE from the hardware catalog, so the catalog's power figure can be checked on
this machine. Without codecarbon the measured value is reported as unavailable, not as 0.
"""

from __future__ import annotations

import argparse
import json
import time

from costing import CostSettings, EnergyMeter, ReportSettings
from costing.rates import measuring_rates


def busy(seconds: float) -> int:
    end, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        n += sum(i * i for i in range(1000))
    return n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--country", default="FRA", help="ISO 3166 alpha-3 code for codecarbon")
    parser.add_argument("--hardware", default="cpu-2core", help="catalog row for the estimate")
    args = parser.parse_args()
    with EnergyMeter("busy-loop", args.country) as meter:
        busy(args.seconds)
    estimate = measuring_rates(CostSettings(hardware=args.hardware), ReportSettings())
    print(
        json.dumps(
            {
                "measured": meter.result.to_dict(),
                "estimated": estimate.cost(meter.result.seconds).to_dict(),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
