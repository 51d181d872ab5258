"""Settings of the cost report: plain, mutable dataclasses usable as Hydra config schemas.

``CostSettings`` (costing/types.py) says which device the run was measured on and what power,
price, PUE and grid apply. ``ReportSettings`` adds what the report needs beyond that. Each check
names the config key (``costing.<group>.<field>``) so a bad value fails before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from costing.cost import is_number
from costing.rows import CostingConfigError

Rule = tuple[Callable[[object], bool], str]
NON_NEGATIVE: Rule = (lambda v: is_number(v) and v >= 0, "a number >= 0")
POSITIVE: Rule = (lambda v: is_number(v) and v > 0, "a number > 0")
SHARE: Rule = (lambda v: is_number(v) and 0 <= v <= 1, "in [0, 1]")
UNIT: Rule = (lambda v: is_number(v) and 0 < v <= 1, "in (0, 1]")
FLAG: Rule = (lambda v: isinstance(v, bool), "true or false")
TEXT: Rule = (lambda v: isinstance(v, str), "a string")
NAMES: Rule = (
    lambda v: isinstance(v, list) and all(isinstance(x, str) and x for x in v),
    "a list of names",
)


def _optional(rule: Rule) -> Rule:
    return (lambda v: v is None or rule[0](v), f"{rule[1]} or null")


def _validate(obj: object, group: str, rules: dict[str, Rule]) -> None:
    for name, (ok, text) in rules.items():
        value = getattr(obj, name)
        if not ok(value):
            key = f"{group}.{name}" if group else name
            raise CostingConfigError(f"costing.{key} must be {text}, got {value!r}")


@dataclass
class TrafficSettings:
    queries_per_day: float = 1000.0
    days: float = 365.0

    def __post_init__(self) -> None:
        _validate(self, "traffic", {"queries_per_day": NON_NEGATIVE, "days": NON_NEGATIVE})


@dataclass
class QoESettings:
    # Nielsen, "Response Times: The 3 Important Limits" (1993): about 1.0 s keeps the user's flow
    # of thought uninterrupted. A configurable assumption, not a standard.
    ttft_threshold_s: float = 1.0
    # Brysbaert 2019, "How many words do we read per minute?" (J. Memory and Language 109):
    # silent reading of English averages 238 wpm (non-fiction) to 260 wpm (fiction).
    reading_wpm: float = 250.0
    # OpenAI tokenizer guidance: one token is about 3/4 of an English word (100 tokens ~ 75 words).
    tokens_per_word: float = 1.33

    def __post_init__(self) -> None:
        keys = ("ttft_threshold_s", "reading_wpm", "tokens_per_word")
        _validate(self, "qoe", dict.fromkeys(keys, POSITIVE))

    @property
    def reading_tokens_per_s(self) -> float:
        return self.reading_wpm * self.tokens_per_word / 60.0


@dataclass
class ProjectionSettings:
    devices: list[str] = field(default_factory=lambda: ["a100-80gb", "h100-sxm"])
    utilization: float | None = None  # None: calibrate per phase from the measurement
    bytes_per_param: float | None = None  # on the target devices (bf16: 2); None: as measured

    def __post_init__(self) -> None:
        _validate(
            self,
            "projection",
            {
                "devices": NAMES,
                "utilization": _optional(UNIT),
                "bytes_per_param": _optional(POSITIVE),
            },
        )


@dataclass
class EmbodiedSettings:
    lifetime_years: float = 5.0  # LLMCarbon's default device lifetime
    use_rate: float = 1.0  # share of that lifetime the devices are busy (BLOOM used 0.85)

    def __post_init__(self) -> None:
        _validate(self, "embodied", {"lifetime_years": POSITIVE, "use_rate": UNIT})


@dataclass
class FreshnessSettings:
    changed_fraction: float = 0.1  # share of the corpus that changed
    incremental_index: bool = True  # re-embed only the changed documents
    retrain_fraction: float = 1.0  # share of the original training run a refresh repeats

    def __post_init__(self) -> None:
        rules = {"changed_fraction": SHARE, "incremental_index": FLAG, "retrain_fraction": SHARE}
        _validate(self, "freshness", rules)


@dataclass
class HybridSettings:
    edge_arm: str = ""  # empty: scenario off
    cloud_arm: str = ""
    validate_share: float = 0.2  # share of answers the cloud model re-answers (an assumption)
    rtt_s: float = 0.1  # network round trip added to validated answers (an assumption)
    edge_device: str = ""  # catalog row to project the edge arm onto; empty: as measured
    cloud_device: str = ""  # catalog row to project the cloud arm onto; empty: as measured

    def __post_init__(self) -> None:
        names = ("edge_arm", "cloud_arm", "edge_device", "cloud_device")
        rules = {**dict.fromkeys(names, TEXT), "validate_share": SHARE, "rtt_s": NON_NEGATIVE}
        _validate(self, "hybrid", rules)
        if bool(self.edge_arm) != bool(self.cloud_arm):
            raise CostingConfigError(
                "costing.hybrid.edge_arm and costing.hybrid.cloud_arm must be set together "
                f"(both empty turns the scenario off), got {self.edge_arm!r} and {self.cloud_arm!r}"
            )

    @property
    def enabled(self) -> bool:
        return bool(self.edge_arm)


@dataclass
class EnergySettings:
    """Whether the runner wraps its stages in ``EnergyMeter`` (needs the ``energy`` extra)."""

    measure: bool = False
    country_iso_code: str = ""  # ISO 3166 alpha-3; empty: costing.region when it is one

    def __post_init__(self) -> None:
        code = self.country_iso_code
        ok = isinstance(code, str) and (code == "" or (len(code) == 3 and code.isalpha()))
        _validate(self, "energy", {"measure": FLAG})
        _validate(self, "energy", {"country_iso_code": (lambda _: ok, "empty or a 3-letter code")})

    def country_for(self, region: str) -> str | None:
        """The code codecarbon needs: the setting, else a 3-letter region name, else None."""
        if self.country_iso_code:
            return self.country_iso_code.upper()
        ok = len(region) == 3 and region.isalpha()
        return region.upper() if ok else None


@dataclass
class TokenomicsSettings:
    """Self-hosted versus API at ``traffic.queries_per_day`` (costing/tokenomics.py)."""

    device: str = "a100-80gb"  # catalog row serving the self-hosted arms
    devices: int = 1  # devices per replica
    latency_target_s: float = 2.0  # each request answered within this (an assumption; QoE)
    mfu: float = 0.4  # prefill and compute-bound decode (costing/serving.py DEFAULT_MFU)
    mbu: float = 1.0  # decode bandwidth share; 1.0 = the memory roofline (DEFAULT_MBU)
    bytes_per_param: float = 2.0  # bf16 serving weights
    price_date: str = ""  # API price rows in force on this day (YYYY-MM-DD); empty: newest
    api_arm: str = "rag"  # the arm whose token counts the API answers with (API + RAG)

    def __post_init__(self) -> None:
        rules = {
            "device": (lambda v: isinstance(v, str) and bool(v), "a catalog name"),
            "devices": (
                lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                "an integer >= 1",
            ),
            "latency_target_s": POSITIVE,
            "mfu": UNIT,
            "mbu": UNIT,
            "bytes_per_param": POSITIVE,
            "price_date": TEXT,
            "api_arm": TEXT,
        }
        _validate(self, "tokenomics", rules)


@dataclass
class ReportSettings:
    traffic: TrafficSettings = field(default_factory=TrafficSettings)
    qoe: QoESettings = field(default_factory=QoESettings)
    projection: ProjectionSettings = field(default_factory=ProjectionSettings)
    embodied: EmbodiedSettings = field(default_factory=EmbodiedSettings)
    freshness: FreshnessSettings = field(default_factory=FreshnessSettings)
    hybrid: HybridSettings = field(default_factory=HybridSettings)
    energy: EnergySettings = field(default_factory=EnergySettings)
    tokenomics: TokenomicsSettings = field(default_factory=TokenomicsSettings)
    # Rows of costing/data/api_prices.yaml to price the same token counts with.
    api_models: list[str] = field(
        default_factory=lambda: ["gpt-4o", "gpt-4o-mini", "claude-3.5-sonnet", "gemini-1.5-pro"]
    )
    # Market-based intensity (supplier or contract figure); reported next to, never mixed with,
    # the location-based figure. None: not reported.
    market_g_per_kwh: float | None = None

    def __post_init__(self) -> None:
        _validate(self, "", {"api_models": NAMES, "market_g_per_kwh": _optional(NON_NEGATIVE)})
