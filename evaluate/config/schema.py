"""Typed schemas of the config groups.

Hydra composes YAML onto these dataclasses, so an unknown key or a wrong type fails at
composition with the key named; ``evaluate.config.checks.validate`` then checks the values. Schemas
are mutable dataclasses: Hydra cannot compose onto frozen ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from costing.settings import ReportSettings
from costing.types import CostSettings
from evaluate.arms.registry import DEFAULT_ARMS
from finetune.settings import LoraSettings
from rag.core.errors import UserError
from rag.retrieval.settings import RetrievalSettings


class ConfigError(UserError, ValueError):
    """A config value is invalid; the message names the key and what to do."""


@dataclass
class PathsConfig:
    cache_dir: str = "~/.cache/ragtune"  # models, indexes, adapters (content-addressed)


@dataclass
class CorpusConfig:
    source: str = "synthetic"  # synthetic (built-in invented domain) | files | hf
    # built-in corpus
    seed: int = 0
    num_people: int = 20
    num_organisations: int = 6
    num_towns: int = 12
    num_distractors: int = 10
    train_phrasings: int = 2  # question phrasings per fact used for fine-tuning
    attributes_per_entity: int | None = None  # null: every attribute
    news_per_entity: int = 1
    noise_sentences: int = 0
    # your own documents (source=files: folders, files, globs; source=hf: a datasets name/folder)
    paths: list[str] = field(default_factory=list)
    dataset: str | None = None
    split: str = "train"
    dataset_config: str | None = None
    text_column: str = "text"
    id_column: str | None = None
    title_column: str | None = None
    encoding_fallback: str | None = None  # e.g. latin-1; null: skip non-UTF-8 files
    recursive: bool = True
    max_files: int | None = None


@dataclass
class QAConfig:
    source: str = "builtin"  # builtin (the synthetic corpus's) | file | cloze | lm
    path: str | None = None  # source=file: JSONL / JSON / CSV
    on_error: str = "raise"  # raise | skip (invalid question rows)
    eval_fraction: float = 0.2  # held-out share for file / cloze / lm questions
    split_seed: int = 0
    max_per_chunk: int = 2  # cloze / lm synthesis
    max_chunks: int | None = None
    chunk_words: int = 200  # synthesis works on its own fixed chunks
    max_eval_questions: int = 40  # -1: every held-out question
    sample_seed: int = 0  # which held-out questions are asked when capped
    allow_leakage: bool = False
    leakage_threshold: float | None = 0.9  # token Jaccard for near-duplicates; null: exact only


# the retriever group's schema is rag.retrieval.settings.RetrievalSettings
RetrieverConfig = RetrievalSettings


@dataclass
class GeneratorConfig:
    model: str = "smollm2-135m-instruct"  # alias, local folder or hub id (served name for openai)
    # Decoding defaults for every backend live here and nowhere else (the generator/*.yaml files
    # do not repeat them), so backends are comparable unless a run overrides them.
    max_new_tokens: int = 20  # answers are a few words; caps latency and wordiness
    temperature: float = 0.0  # 0: greedy
    stop: list[str] = field(default_factory=list)  # stop sequences (not part of the answer)
    device: str = "cpu"
    backend: str = "transformers"  # transformers (in-process) | openai (HTTP endpoint) | vllm
    base_url: str | None = None  # openai backend, e.g. http://127.0.0.1:8000/v1
    api_key_env: str | None = None  # NAME of the environment variable holding the key
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0  # longest wait between bytes of the stream
    # Tokens of prompt + answer the model accepts; null: the model's own (in-process), unchecked
    # before sending (openai). In-process models can only be narrowed by it.
    context_window: int | None = None
    # openai: the served model's tokenizer (alias, local folder or hub id), to count prompt
    # tokens before sending and output tokens when the server sends no usage
    tokenizer: str | None = None
    params: int | None = None  # openai: parameter count for costing, when not found locally
    # openai: chat (/chat/completions) | completions (/completions, the prompt templated here)
    api: str = "chat"


@dataclass
class JudgeConfig(GeneratorConfig):
    """An LLM that says whether each answer matches the gold answers (its tokens are a cost)."""

    enabled: bool = False
    max_new_tokens: int = 4  # "yes" or "no"


@dataclass
class FinetuneConfig(LoraSettings):
    """The LoRA settings (finetune/lora.py) plus how the adapter is used at inference."""

    merge: bool = True  # merge the adapter before inference (unmerged is slower)
    paraphrases: int = 0  # extra training phrasings per training question
    paraphrase_method: str = "builtin"  # builtin (synthetic corpus) | rules | lm


@dataclass
class CascadeConfig:
    """The cascade arm (evaluate/arms/cascade.py): the edge arm answers; an answer whose
    confidence is below ``threshold`` is escalated to the cloud arm."""

    edge_arm: str = "finetune"
    cloud_arm: str = "finetune_rag"
    # logprob_mean | logprob_min: mean / lowest natural-log probability of the edge answer's
    # tokens (<= 0); retrieval: share of the edge answer's words found in the top-k chunks (0-1)
    rule: str = "logprob_mean"
    threshold: float = -0.5  # escalate when confidence < threshold
    # thresholds of the sweep recomputed from the stored confidences; []: every distinct
    # confidence observed (the whole curve)
    thresholds: list[float] = field(default_factory=list)
    rtt_s: float = 0.1  # edge-cloud network round trip added to escalated answers (modelled)
    edge_device: str = ""  # catalog row to project the edge tier onto ("" : none)
    cloud_device: str = ""  # catalog row to project the cloud tier onto ("" : none)


@dataclass
class EvalConfig:
    arms: list[str] = field(default_factory=lambda: list(DEFAULT_ARMS))
    warmup_requests: int = 1  # per arm, excluded from every statistic
    progress: bool = True
    seed: int = 0  # bootstrap resampling
    bootstrap_resamples: int = 2000
    alpha: float = 0.05  # significance level of the paired tests
    multiple_comparisons: str = "holm"  # holm | none
    significance_metric: str = "contains"  # contains | exact_match (0/1 per question)
    semantic_similarity: bool = True  # embed answers with the retriever's embedder
    # Latency: the first `latency_questions` questions are answered batch-1, sequentially, after
    # the warm-up; their TTFT/TPOT/e2e are the arm's latency and their answers its predictions.
    # Accuracy: every other question answered with greedy generation in left-padded batches of
    # this size (1: one request at a time). compare_batched: the timed questions are answered
    # in the batches too and the two answers compared (README "Latency").
    answer_batch_size: int = 8
    latency_questions: int = 20  # n >= 1/(1-0.95): p95 is not simply the slowest request
    compare_batched: bool = False
    throughput_batch_size: int = 8  # batched generation measurement; 0 disables
    throughput_questions: int = 8  # how many questions the throughput measurement answers
    max_failure_rate: float = 0.2  # share of failed questions above which an arm stops
    reuse_answers: bool = True  # answers journaled in the cache are reused, not regenerated
    few_shot: int = 0  # worked examples (training questions + answers) before each question
    instruction: str | None = None  # the prompt's instruction; null: rag.core.prompts
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    cascade: CascadeConfig = field(default_factory=CascadeConfig)


@dataclass
class HardwareConfig:
    name: str = "cpu-2core"  # row of the hardware catalog (costing/data/hardware.yaml)
    devices: int = 1
    power_w: float | None = None  # average draw per device; null: catalog TDP
    usd_per_hour: float | None = None  # per device; null: catalog example price


@dataclass
class CostingConfig(ReportSettings):
    """Grid and PUE of the measuring machine, plus the report settings of costing/settings.py
    (traffic, qoe, projection, api_models, embodied, freshness, hybrid, energy)."""

    pue: float = 1.0  # power usage effectiveness; 1.0 for a machine outside a datacenter
    region: str = "world"  # row of costing/data/grid.yaml
    g_per_kwh: float | None = None  # override the grid intensity


@dataclass
class TrackingConfig:
    backend: str = "mlflow"  # mlflow | none
    uri: str = "sqlite:///mlflow.db"
    experiment_name: str = "default"
    artifact_dir: str = "mlartifacts"  # where a new MLflow experiment stores artifacts
    tags: dict[str, str] = field(default_factory=dict)  # extra run tags: +tracking.tags.team=nlp


@dataclass
class ExperimentConfig:
    name: str = "default"
    description: str = ""


@dataclass
class BudgetConfig:
    """Limits checked against the cost estimate before a run or sweep
    (evaluate/pipeline/budget.py)."""

    max_usd: float | None = None  # null: no limit
    max_kg_co2: float | None = None  # operational, location-based
    max_xpu_hours: float | None = None
    dry_run: bool = False  # print the estimate table and exit without running
    utilization: float = 0.4  # assumed share of peak FLOP/s and of memory bandwidth
    model_params: int | None = None  # generator parameters; null: from the model
    corpus_tokens: int | None = None  # document tokens; null: counted from the corpus


@dataclass
class ObjectiveConfig:
    """The number a run returns to Hydra (what the Optuna sweeper optimises)."""

    metric: str = "accuracy.contains"  # dotted path inside results.json arms.<arm>
    arm: str | None = None  # null: the best arm of the run
    cost_weight_per_usd: float = 0.0  # minus this x arms.<arm>.cost.per_1k_queries.usd


@dataclass
class Config:
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    qa: QAConfig = field(default_factory=QAConfig)
    retriever: RetrieverConfig = field(default_factory=RetrieverConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    costing: CostingConfig = field(default_factory=CostingConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)


def cost_settings(config: Config) -> CostSettings:
    """The measuring device's cost inputs from the ``hardware`` and ``costing`` groups."""
    hw, co = config.hardware, config.costing
    return CostSettings(
        hardware=hw.name,
        devices=hw.devices,
        power_w=hw.power_w,
        usd_per_hour=hw.usd_per_hour,
        pue=co.pue,
        region=co.region,
        g_per_kwh=co.g_per_kwh,
    )
