"""API arms: the price row in force on a date, and the bill of Q queries of given token counts.

Price rows (``costing/data/api_prices.yaml``) carry the date a price took effect; rows of one model
at different dates share a ``model`` field. ``price_on(model, day)`` picks the latest row dated on
or before ``day`` (no day: the latest row). Money is exact: Decimal throughout, floats only for
display.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from costing import formulas
from costing.api_energy import api_request_energy
from costing.prices import API_PRICES_PATH, ApiPrice, load_api_prices
from costing.rows import CostingConfigError

_DATE = re.compile(r"(\d{4})-(\d{2})(?:-(\d{2}))?")


def parse_day(text: str, what: str = "--price-date") -> dt.date:
    """'2024-08-06' -> that day; '2024-08' -> the first of the month."""
    match = _DATE.fullmatch(str(text).strip())
    try:
        if match is None:
            raise ValueError
        year, month, day = match.groups()
        return dt.date(int(year), int(month), int(day or 1))
    except ValueError:
        raise CostingConfigError(f"{what} must be a date YYYY-MM-DD, got {text!r}") from None


def model_of(row: ApiPrice) -> str:
    return (row.model or row.name).lower()


def price_on(model: str, day: str | None = None, prices: Mapping[str, ApiPrice] | None = None):
    """The row of ``model`` in force on ``day`` (latest on or before it; None: the newest)."""
    prices = load_api_prices() if prices is None else prices
    exact = prices.get(model.lower())
    if exact is not None and exact.model and exact.model.lower() != model.lower():
        return exact  # a dated row named directly ("gpt-4o@2024-08-06")
    rows = sorted(
        (r for r in prices.values() if model_of(r) == model.lower()),
        key=lambda r: parse_day(r.date, f"{API_PRICES_PATH.name}: date of {r.name!r}"),
    )
    if not rows:
        models = sorted({model_of(r) for r in prices.values()})
        raise CostingConfigError(
            f"no price for API model {model!r} in {API_PRICES_PATH}; models: {', '.join(models)}"
        )
    if day is None:
        return rows[-1]
    when = parse_day(day)
    valid = [r for r in rows if parse_day(r.date) <= when]
    if not valid:
        raise CostingConfigError(
            f"no price for {model!r} on {when.isoformat()}: its first row is dated {rows[0].date}"
        )
    return valid[-1]


def api_quote(
    model: str,
    input_tokens: int,
    output_tokens: int,
    queries: int,
    price_date: str | None = None,
    prices: Mapping[str, ApiPrice] | None = None,
    zone: str | None = None,
) -> dict[str, Any]:
    """USD per query, per 1k queries, for ``queries`` queries and per 1M tokens, exact; with the
    EcoLogits energy and CO2 estimate per request beside it."""
    formulas.check_count("queries", queries, minimum=1)
    row = price_on(model, price_date, prices)
    per_query = formulas.api_cost_usd(
        input_tokens, output_tokens, row.input_price, row.output_price
    )
    total = per_query * queries
    tokens = input_tokens + output_tokens
    per_1m_tokens = per_query / tokens * formulas.TOKENS_PER_MILLION if tokens else None
    energy = api_request_energy(model, output_tokens, zone)
    return {
        "model": model_of(row),
        "price_row": row.name,
        "price_date": row.date,
        "price_source": row.source.strip(),
        "usd_per_1m_input": str(row.input_price),
        "usd_per_1m_output": str(row.output_price),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "queries": queries,
        "usd_per_query": _money(per_query),
        "usd_per_1k_queries": _money(per_query * 1000),
        "usd_total": _money(total),
        "usd_per_1m_tokens": None if per_1m_tokens is None else _money(per_1m_tokens),
        "energy_per_query": energy,
    }


def _money(value: Decimal) -> str:
    """A decimal string without exponent ('0.000255'); a non-terminating quotient (USD per 1M
    tokens) is rounded to 1e-12 USD, far below any price's precision."""
    return format(value.quantize(Decimal("1e-12")).normalize(), "f")
