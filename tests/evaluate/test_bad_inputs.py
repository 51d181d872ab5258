"""The bad-input catalog: every case runs through the real entry point (``ragtune``, as a
subprocess) and must fail fast with one clear line (naming the file, key or value and the fix),
exit code 2, no traceback, no partial cache entry and no results.json. Config cases compose and
validate only; run-stage cases run ``experiment=smoke`` on the tiny model with a cache shared by
the module. The case count printed at the end of the session is counted, not typed.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.ragtune_cli import cache_with_tiny_model, ragtune

BASE = [
    "experiment=smoke",
    "tracking=none",
    "eval.arms=[closed_book]",
    "eval.throughput_batch_size=0",
    "eval.semantic_similarity=false",
    "eval.warmup_requests=0",
]
FILES = ["corpus=files", "qa=cloze", "qa.eval_fraction=0.5"]


@dataclass
class Case:
    id: str
    category: str
    overrides: Callable[[Path], list[str]] | list[str]
    expect: tuple[str, ...]  # substrings of the one-line message
    stage: str = "config"  # config: fails at composition or validation | run: in a stage


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _docs(tmp: Path, files: dict[str, bytes | str]) -> list[str]:
    folder = tmp / "docs"
    folder.mkdir(exist_ok=True)
    for name, data in files.items():
        _write(folder / name, data)
    return [*FILES, f"corpus.paths=['{folder}']"]


def _encrypted_pdf(tmp: Path) -> list[str]:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt(user_password="open-sesame", owner_password="owner", algorithm="AES-128")
    folder = tmp / "docs"
    folder.mkdir(exist_ok=True)
    with (folder / "secret.pdf").open("wb") as handle:
        writer.write(handle)
    return [*FILES, f"corpus.paths=['{folder}']"]


GOOD_DOC = "The Orbis lighthouse was built in 1871 by the engineer Mara Quell on Tessel Point. " * 3


def _questions(tmp: Path, rows: list[dict] | str, name: str = "questions.jsonl") -> list[str]:
    docs = _docs(tmp, {"a.txt": GOOD_DOC})
    text = rows if isinstance(rows, str) else "\n".join(json.dumps(r) for r in rows)
    path = _write(tmp / name, text)
    return [*docs, "qa=file", f"qa.path={path}"]


def _copy_tiny_model(tmp: Path, tiny_model_dir: str, damage: Callable[[Path], None]) -> Path:
    import shutil

    folder = tmp / "model"
    shutil.copytree(tiny_model_dir, folder, ignore=shutil.ignore_patterns(".*"))
    damage(folder)
    return folder


def _remove_weights(folder: Path) -> None:
    (folder / "model.safetensors").unlink()


def _truncate_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])


CASES = [
    # --- config: unknown key, wrong type, out of range, missing value, contradictions
    Case(
        "unknown-key",
        "config",
        ["generator.max_new_token=5"],
        ("generator.max_new_token", "Did you mean generator.max_new_tokens?"),
    ),
    Case(
        "wrong-type",
        "config",
        ["retriever.top_k=three"],
        ("retriever.top_k", "three"),
    ),
    Case("float-for-int", "config", ["retriever.top_k=2.5"], ("retriever.top_k", "2.5")),
    Case(
        "unknown-group-option",
        "config",
        ["generator=gpt5"],
        ("generator/gpt5", "Available options"),
    ),
    Case(
        "paths-as-a-string",
        "config",
        ["corpus=files", "qa=cloze", "corpus.paths=docs"],
        ("corpus.paths", "docs"),
    ),
    Case("top-k-zero", "config", ["retriever.top_k=0"], ("retriever.top_k=0", ">= 1")),
    Case(
        "overlap-ge-size",
        "config",
        ["retriever.chunk_size=50", "retriever.chunk_overlap=50"],
        ("retriever.chunk_overlap=50", "[0, retriever.chunk_size=50)"),
    ),
    Case(
        "unknown-arm",
        "config",
        ["eval.arms=[closed_book,oracle]"],
        ("eval.arms='oracle'", "one of"),
    ),
    Case("no-arms", "config", ["eval.arms=[]"], ("eval.arms", "non-empty")),
    Case("eval-fraction", "config", ["qa.eval_fraction=1.5"], ("qa.eval_fraction=1.5", "(0, 1]")),
    Case("negative-power", "config", ["hardware.power_w=-5"], ("hardware.power_w=-5", ">= 0")),
    Case("pue-below-one", "config", ["costing.pue=0.5"], ("costing.pue=0.5", ">= 1.0")),
    Case(
        "unknown-hardware",
        "config",
        ["hardware.name=quantum-9000"],
        ("hardware.name='quantum-9000'", "one of"),
    ),
    Case("device-typo", "config", ["generator.device=gpu"], ("generator.device='gpu'", "cuda")),
    Case("lora-rank-zero", "config", ["finetune.rank=0"], ("finetune.rank", ">= 1")),
    Case(
        "missing-openai-model",
        "config",
        [
            "experiment=default",
            "generator=openai",
            "generator.base_url=http://127.0.0.1:8000/v1",
            "eval.arms=[rag]",
        ],
        ("generator.model='smollm2-135m-instruct'", "served model's name"),
    ),
    Case(
        "openai-without-url",
        "config",
        ["generator=openai", "generator.model=m", "generator.base_url=ftp://x", "eval.arms=[rag]"],
        ("generator.base_url='ftp://x'", "http"),
    ),
    Case(
        "openai-with-finetune",
        "config",
        [
            "generator=openai",
            "generator.model=m",
            "generator.base_url=http://127.0.0.1:8000/v1",
            "eval.arms=[rag,finetune]",
        ],
        ("eval.arms", "drop ['finetune']"),
    ),
    Case(
        "pasted-key-as-env-name",
        "config",
        [
            "generator=openai",
            "generator.model=m",
            "generator.base_url=http://127.0.0.1:8000/v1",
            "eval.arms=[rag]",
            "generator.api_key_env='sk-abc def'",
        ],
        ("generator.api_key_env", "NAME of an environment variable"),
    ),
    Case(
        "builtin-questions-own-corpus",
        "config",
        ["corpus=files", "corpus.paths=[x]"],
        ("qa.source='builtin'", "file, cloze or lm"),
    ),
    Case(
        "tokens-with-hashing",
        "config",
        ["retriever.chunk_strategy=tokens"],
        ("retriever.chunk_strategy='tokens'", "hashing"),
    ),
    Case(
        "candidates-below-top-k",
        "config",
        ["retriever.mode=hybrid", "retriever.top_k=5", "retriever.candidates=2"],
        ("retriever.top_k=5 exceeds", "retriever.candidates=2", ">= retriever.top_k=5"),
    ),
    Case(
        "model-folder-missing",
        "config",
        ["generator.model=/nonexistent/model"],
        ("generator.model='/nonexistent/model'", "existing model folder"),
    ),
    Case(
        "files-without-paths",
        "config",
        ["corpus=files", "qa=cloze", "corpus.paths=[]"],
        ("corpus.paths=[]", "folders, files or globs"),
    ),
    # --- corpus
    Case(
        "corpus-missing-path",
        "corpus",
        lambda t: [*FILES, f"corpus.paths=['{t}/nowhere']"],
        ("corpus.paths", "nowhere"),
        "run",
    ),
    Case("corpus-empty-folder", "corpus", lambda t: _docs(t, {}), ("corpus.paths",), "run"),
    Case(
        "corpus-binary",
        "corpus",
        lambda t: _docs(t, {"blob.txt": b"\x00\x01\x02binary" * 50}),
        ("blob.txt", "binary file"),
        "run",
    ),
    Case(
        "corpus-not-utf8",
        "corpus",
        lambda t: _docs(t, {"latin.txt": "caf\xe9 cr\xe8me".encode("latin-1")}),
        ("latin.txt", "not valid UTF-8", "corpus.encoding_fallback"),
        "run",
    ),
    Case(
        "corpus-huge-file",
        "corpus",
        lambda t: _docs(t, {"huge.txt": b"word " * 1_000_000 + b"\xff"}),
        ("huge.txt", "offset 5000000", "corpus.encoding_fallback"),
        "run",
    ),
    Case("corpus-encrypted-pdf", "corpus", _encrypted_pdf, ("secret.pdf", "encrypted PDF"), "run"),
    Case(
        "corpus-no-text",
        "corpus",
        lambda t: _docs(t, {"a.html": "<html><script>x()</script></html>", "b.md": "   \n\n "}),
        ("a.html", "no text"),
        "run",
    ),
    Case(
        "corpus-unsupported",
        "corpus",
        lambda t: _docs(t, {"a.docx": b"PK\x03\x04", "b.exe": b"MZ"}),
        ("supported extension", "pandoc"),
        "run",
    ),
    Case(
        "corpus-jsonl-no-valid-line",
        "corpus",
        lambda t: _docs(t, {"rows.jsonl": '{"text": "cut\nnot json\n'}),
        ("rows.jsonl", "no line is a JSON object", "lines 1, 2"),
        "run",
    ),
    Case(
        "qa-sft-without-training-questions",  # the default finetune.mode
        "config",
        ["eval.arms=[finetune]", "qa.eval_fraction=1.0"],
        ("qa.eval_fraction=1.0", "finetune.mode=qa_sft", "use finetune.mode=cpt or mixed"),
    ),
    Case(
        "top-k-above-the-chunks",
        "corpus",
        ["eval.arms=[rag]", "retriever.top_k=500"],
        ("retriever.top_k=500 exceeds the", "chunks of the corpus", "retriever.top_k to at most"),
        "run",
    ),
    Case(
        "top-k-over-the-context-window",
        "corpus",
        ["eval.arms=[rag]", "retriever.top_k=3", "generator.context_window=48"],
        ("retriever.top_k=3: even the 3 shortest chunks", "context window of 48 tokens"),
        "run",
    ),
    Case(
        "corpus-no-questions",
        "corpus",
        lambda t: _docs(t, {"a.txt": "Hello there."}),
        ("yielded no held-out question", "qa.eval_fraction"),
        "run",
    ),
    # --- questions
    Case(
        "qa-file-missing",
        "questions",
        lambda t: [*_docs(t, {"a.txt": GOOD_DOC}), "qa=file", f"qa.path={t}/nope.jsonl"],
        ("qa.path", "nope.jsonl", "existing JSONL"),
    ),
    Case(
        "qa-missing-question",
        "questions",
        lambda t: _questions(t, [{"answer": "1871"}]),
        ("questions.jsonl", "missing or empty 'question'", "qa.on_error=skip"),
        "run",
    ),
    Case(
        "qa-missing-answer",
        "questions",
        lambda t: _questions(t, [{"question": "When was it built?"}]),
        ("questions.jsonl", "no answer", "qa.on_error=skip"),
        "run",
    ),
    Case(
        "qa-duplicate-ids",
        "questions",
        lambda t: _questions(
            t,
            [
                {"id": "q1", "question": "When was it built?", "answer": "1871"},
                {"id": "q1", "question": "Who built it?", "answer": "Mara Quell"},
            ],
        ),
        ("duplicate id 'q1'", "qa.on_error=skip"),
        "run",
    ),
    Case(
        "qa-bad-json",
        "questions",
        lambda t: _questions(t, '[{"question": ', "questions.json"),
        ("questions.json", "invalid JSON"),
        "run",
    ),
    Case(
        "qa-bad-split",
        "questions",
        lambda t: _questions(
            t, [{"question": "When was it built?", "answer": "1871", "split": "test"}]
        ),
        ("split must be train or eval", "'test'"),
        "run",
    ),
    # --- models
    Case(
        "model-corrupt-weights",
        "models",
        lambda t: [f"generator.model={_copy_tiny_model(t, TINY[0], _truncate_weights)}"],
        ("generator.model", "model.safetensors is corrupt or truncated", "re-download"),
        "run",
    ),
    Case(
        "model-no-weights",
        "models",
        lambda t: [f"generator.model={_copy_tiny_model(t, TINY[0], _remove_weights)}"],
        ("generator.model", "has no weights", "re-download"),
        "run",
    ),
    Case(
        "lora-targets-absent",
        "models",
        ["eval.arms=[finetune]", "finetune.target_modules=[attn_qkv]"],
        ("finetune.target_modules", "attn_qkv", "not found"),
        "run",
    ),
    Case(
        "embedder-folder-empty",
        "models",
        lambda t: [
            "eval.arms=[rag]",
            f"retriever.embedder.model={(t / 'emb').mkdir() or t / 'emb'}",
        ],
        ("retriever.embedder.model", "no config.json", "save_pretrained"),
        "run",
    ),
    Case(
        "model-hub-id-offline",
        "models",
        ["generator.model=nobody/no-such-model"],
        ("generator.model='nobody/no-such-model'", "HF_HUB_OFFLINE=1", "local model folder"),
        "run",
    ),
    # --- disk
    Case(
        "cache-dir-is-a-file",
        "disk",
        lambda t: ["paths.cache_dir=" + str(_write(t / "cachefile", "x"))],
        ("paths.cache_dir", "cachefile", "not a writable folder"),
    ),
    Case(
        "output-dir-under-a-file",
        "disk",
        lambda t: [f"hydra.run.dir={_write(t / 'outfile', 'x')}/run"],
        ("outfile", "hydra.run.dir"),
    ),
    Case(
        "unknown-key-in-a-group",
        "config",
        ["retriever.top_kk=3"],
        ("retriever.top_kk", "Did you mean retriever.top_k?"),
    ),
    Case(
        "qa-answer-of-wrong-type",
        "questions",
        lambda t: _questions(
            t,
            [
                {"question": "When was it built?", "answer": "1871"},
                {"question": "Who built it?", "answers": {"x": "y"}},
            ],
        ),
        ("questions.jsonl", "line 2", "'answers' must be a text or a list of texts", "dict"),
        "run",
    ),
]
TINY: list[str] = []  # the tiny model's folder, set by the fixture below


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory, tiny_model_dir) -> Path:
    TINY[:] = [tiny_model_dir]
    return Path(tiny_model_dir).parents[1]  # the session's model cache: tiny model built once


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from evaluate.cli import CONF_DIR

    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        return compose("config", overrides=overrides)


def _leftovers(cache: Path) -> list[str]:
    return [
        str(p)
        for p in cache.rglob("*")
        if ".tmp-" in p.name or ".trash-" in p.name or p.name.startswith(".work-")
    ]


def _one_line(message: str, expect: tuple[str, ...]) -> None:
    assert "\n" not in message.strip(), message
    assert "Traceback" not in message
    for part in expect:
        assert part in message, f"{part!r} not in {message!r}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_clearly(case: Case, shared_cache: Path, tmp_path: Path):
    extra = case.overrides(tmp_path) if callable(case.overrides) else case.overrides
    base = (
        [o for o in BASE if not o.startswith("experiment=")]
        if any(o.startswith("experiment=") for o in extra)
        else BASE
    )
    out = [] if any(o.startswith("hydra.run.dir=") for o in extra) else ["hydra.run.dir=out"]
    proc = ragtune(tmp_path, *base, *extra, *out, cache=shared_cache, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-3000:]
    assert "Traceback" not in output and "HYDRA_FULL_ERROR" not in output, output[-3000:]
    lines = [line for line in output.splitlines() if all(p in line for p in case.expect)]
    assert lines, output[-3000:]  # the whole message on one line (the budget guard may warn too)
    assert not (tmp_path / "out" / "results.json").is_file()
    assert _leftovers(shared_cache) == []


def test_top_k_above_the_corpus_stops_before_embedding_or_training(tiny_model_dir, tmp_path):
    """Every arm (training included), as the smoke experiment runs them; the tiny corpus has
    a few dozen chunks at most."""
    cache = cache_with_tiny_model(tmp_path / "cache", tiny_model_dir)
    proc = ragtune(
        tmp_path, "experiment=smoke", "tracking=none", "retriever.top_k=500", "hydra.run.dir=out",
        cache=cache, timeout=300,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-3000:]
    (error,) = [line for line in output.splitlines() if "ERROR" in line]  # the log's one error
    # the tiny corpus: 9 documents of fewer than 120 words, one chunk each
    assert "retriever.top_k=500 exceeds the 9 chunks of the corpus" in error
    assert "set retriever.top_k to at most 9" in error
    assert "Traceback" not in output
    assert not (tmp_path / "out" / "results.json").exists()
    built = sorted(p.name for p in cache.iterdir())
    assert built == ["models"], built  # no adapter, index or embeddings entry was started


def test_answers_missing_from_the_corpus_are_a_warning_not_an_error(tmp_path, caplog):
    from rag.corpus.ingest import load_user_corpus
    from rag.qa.sets import load_qa_file

    docs, _ = load_user_corpus([_write(tmp_path / "d" / "a.txt", GOOD_DOC).parent])
    path = _write(
        tmp_path / "q.jsonl",
        json.dumps({"question": "When was it built?", "answer": "1871"})
        + "\n"
        + json.dumps({"question": "Who painted it?", "answer": "Nobody Known"}),
    )
    with caplog.at_level(logging.WARNING):
        pairs, report = load_qa_file(path, docs)
    assert len(pairs) == 2 and report.answers_not_found == 1
    assert any("no answer occurs in the corpus" in r.getMessage() for r in caplog.records)


def test_duplicate_questions_are_dropped_and_counted(tmp_path):
    from rag.qa.sets import load_qa_file

    row = {"question": "When was it built?", "answer": "1871"}
    pairs, report = load_qa_file(
        _write(tmp_path / "q.jsonl", f"{json.dumps(row)}\n{json.dumps(row)}")
    )
    assert len(pairs) == 1 and report.duplicates == 1


def test_missing_package_names_the_install_command(monkeypatch):
    from evaluate.config.checks import _validate_model_name
    from evaluate.config.schema import ConfigError
    from rag.core import models

    alias = next(iter(models.GENERATOR_ALIASES))
    spec = models.GENERATOR_ALIASES[alias]
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ConfigError) as err:
        _validate_model_name("generator.model", alias)
    _one_line(str(err.value), ("generator.model", spec.distribution, "pip install"))


def test_unreachable_tracking_server_still_writes_results(shared_cache, tmp_path):
    """The CLI version lives in tests/integration/test_integration.py; this is the in-process
    one."""
    from omegaconf import OmegaConf

    from evaluate.cli import to_config
    from evaluate.pipeline.runner import run_experiment
    from evaluate.records.tracking import TrackingUnavailable

    cfg = _compose(
        [
            *BASE,
            f"paths.cache_dir={shared_cache}",
            "tracking=mlflow",
            "tracking.uri=http://127.0.0.1:9",
        ]
    )
    with pytest.raises(TrackingUnavailable) as err:
        run_experiment(to_config(cfg), OmegaConf.to_container(cfg, resolve=True), tmp_path)
    _one_line(str(err.value), ("tracking.uri=http://127.0.0.1:9", "unreachable", "tracking=none"))
    assert json.loads((tmp_path / "results.json").read_text())["arms"]["closed_book"]


def test_no_write_permission_on_the_output_folder(shared_cache, tmp_path):
    if os.geteuid() == 0:
        pytest.skip(
            "running as root: chmod does not stop root writing (see output-dir-under-a-file)"
        )
    from evaluate.cli import to_config, user_errors
    from evaluate.pipeline.runner import run_experiment

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    cfg = _compose([*BASE, f"paths.cache_dir={shared_cache}"])
    with pytest.raises(user_errors()) as err:
        run_experiment(to_config(cfg), {}, locked / "run")
    _one_line(str(err.value), ("locked", "writable"))


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


@pytest.mark.parametrize(
    "target,arms",
    [
        ("rag.retrieval.index.write_entry", "[rag]"),
        ("finetune.training.run_training", "[finetune]"),
        ("evaluate.pipeline.runner.write_results", "[closed_book]"),
    ],
)
def test_interrupt_marks_the_run_failed_and_leaves_no_partial_entry(
    target, arms, shared_cache, mlflow_store, tmp_path, monkeypatch
):
    """Ctrl-C while the index entry is written, during training, or while writing results."""
    import importlib

    from mlflow.tracking import MlflowClient
    from omegaconf import OmegaConf

    from evaluate.cli import to_config
    from evaluate.pipeline.runner import run_experiment

    module, name = target.rsplit(".", 1)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module(module), name, interrupt)
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / Path(TINY[0]).name).symlink_to(TINY[0])
    overrides = [
        *BASE,
        f"paths.cache_dir={cache}",
        "tracking=mlflow",
        f"tracking.uri={mlflow_store}",
        f"tracking.artifact_dir={tmp_path / 'art'}",
        f"eval.arms={arms}",
    ]
    cfg = _compose(overrides)
    out = tmp_path / f"out-{name}"
    with pytest.raises(KeyboardInterrupt):
        run_experiment(to_config(cfg), OmegaConf.to_container(cfg, resolve=True), out)
    assert not (out / "results.json").exists()
    assert _leftovers(cache) == []
    for kind in ("indexes", "adapters"):  # at most lock files: no entry, finished or partial
        assert [p.name for p in (cache / kind).glob("*") if p.suffix != ".lock"] == []
    client = MlflowClient(tracking_uri=mlflow_store)
    (run,) = client.search_runs(
        [client.get_experiment_by_name("smoke").experiment_id],
        filter_string=f"attributes.run_name = 'smoke-{out.name}'",
    )
    assert run.info.status == "FAILED" and "KeyboardInterrupt" in run.data.tags["error"]


def test_catalog_size(capsys):
    by_stage = {stage: sum(c.stage == stage for c in CASES) for stage in ("config", "run")}
    dedicated = sorted(
        name
        for name, value in globals().items()
        if name.startswith("test_")
        and callable(value)
        and name not in ("test_bad_input_fails_clearly", "test_catalog_size")
    )
    with capsys.disabled():  # shown in every run, -q included
        print(
            f"\nbad-input catalog: {len(CASES)} cases through the CLI ({by_stage['config']} at "
            f"config time, {by_stage['run']} in a run stage) + {len(dedicated)} dedicated tests"
        )
    assert len(CASES) >= 40 and sum(by_stage.values()) == len(CASES)


def test_a_file_size_limit_ends_in_one_line_with_exit_code_2(shared_cache, tmp_path):
    """RLIMIT_FSIZE of 64 KB: the first larger write (a model or an index file, in Python or in
    a Rust library) fails with EFBIG; the run says so on one line and writes no results."""
    import resource
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    cache = tmp_path / "cache"  # empty: the tiny model is built, and its weights are > 64 KB
    proc = subprocess.run(
        [sys.executable, "-m", "evaluate.cli", *BASE, "tracking=none", "hydra.run.dir=out"],
        cwd=tmp_path,
        env={**os.environ, "RAGTUNE_CACHE_DIR": str(cache)},
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=limit,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-3000:]
    assert "Traceback" not in output
    assert [
        line for line in output.splitlines() if "cannot write" in line and "File too large" in line
    ]
    assert not (tmp_path / "out" / "results.json").exists()
    assert _leftovers(cache) == []
