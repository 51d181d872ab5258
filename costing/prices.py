"""Dated API token prices and exact (Decimal) bills for token counts.

Rows live in ``costing/data/api_prices.yaml`` with a date and a source each. Bills are exact:
T_in * p_in + T_out * p_out with prices per million tokens, summed as Decimals and reported both
as an exact decimal string and as a float.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from costing import formulas
from costing.catalog import DATA_DIR
from costing.rows import CostingConfigError, load_table

API_PRICES_PATH = DATA_DIR / "api_prices.yaml"


@dataclass
class ApiPrice:
    name: str
    usd_per_1m_input: str | float
    usd_per_1m_output: str | float
    date: str
    source: str
    notes: str = ""
    model: str = ""  # the model a dated row prices (empty: the row's name); see costing/api.py

    def __post_init__(self) -> None:
        # Validate now so a bad row fails at load time, naming its field.
        formulas.to_price("usd_per_1m_input", self.usd_per_1m_input)
        formulas.to_price("usd_per_1m_output", self.usd_per_1m_output)

    @property
    def input_price(self) -> Decimal:
        return formulas.to_price("usd_per_1m_input", self.usd_per_1m_input)

    @property
    def output_price(self) -> Decimal:
        return formulas.to_price("usd_per_1m_output", self.usd_per_1m_output)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["usd_per_1m_input"] = str(self.input_price)
        out["usd_per_1m_output"] = str(self.output_price)
        return out


def load_api_prices(
    path: Path | None = None, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, ApiPrice]:
    """API price rows keyed by lower-case model name; ``overrides`` update or add rows."""
    return load_table(ApiPrice, Path(path or API_PRICES_PATH), "models", overrides)


def find_api_price(
    prices: Mapping[str, ApiPrice], model: str, path: Path | None = None
) -> ApiPrice:
    """The row for ``model``, or an error naming the table that lacks it and what it has."""
    if isinstance(model, str) and model.lower() in prices:
        return prices[model.lower()]
    table = path or API_PRICES_PATH
    raise CostingConfigError(
        f"the API price table {table} has no row for model {model!r}; it has: "
        f"{', '.join(sorted(prices))}. Add a dated row or pass overrides."
    )


def api_bill(
    price: ApiPrice, input_tokens: Sequence[int], output_tokens: Sequence[int]
) -> dict[str, Any]:
    """What the same requests would cost through the API: total and per request, exact."""
    if len(input_tokens) != len(output_tokens):
        raise ValueError(
            f"input_tokens has {len(input_tokens)} entries, output_tokens {len(output_tokens)}"
        )
    if not input_tokens:
        raise ValueError("no requests to price: input_tokens is empty")
    total = sum(
        (
            formulas.api_cost_usd(t_in, t_out, price.input_price, price.output_price)
            for t_in, t_out in zip(input_tokens, output_tokens, strict=True)
        ),
        Decimal(0),
    )
    per_request = total / len(input_tokens)
    return {
        "model": price.name,
        "price_date": price.date,
        "usd_total_exact": str(total),
        "usd_total": float(total),
        "usd_per_query": float(per_request),
        "usd_per_1k_queries": float(per_request * 1000),
        "requests": len(input_tokens),
        "source": price.source,
    }


def api_comparison(
    prices: list[ApiPrice],
    input_tokens: Sequence[int],
    output_tokens: Sequence[int],
    n_correct: int,
    traffic_queries: float,
    self_hosted_usd_per_query: float | None,
) -> dict[str, dict[str, Any]]:
    """What the same token counts would cost through each API, next to the self-hosted cost."""
    rows = {}
    for price in prices:
        bill = api_bill(price, input_tokens, output_tokens)
        bill["usd_per_correct_answer"] = bill["usd_total"] / n_correct if n_correct else None
        bill["usd_traffic_total"] = bill["usd_per_query"] * traffic_queries
        bill["self_hosted_usd_per_query"] = self_hosted_usd_per_query
        bill["api_to_self_hosted_ratio"] = (
            bill["usd_per_query"] / self_hosted_usd_per_query if self_hosted_usd_per_query else None
        )
        rows[price.name] = bill
    return rows
