"""Secrets never reach a record: the redaction rule, safe prompt templates, credentials in URLs
refused, retries on a locked sqlite store, and a planted key searched for in every byte a run
writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import yaml

from evaluate.records.redact import (
    REDACTED,
    is_secret_key,
    redact,
    redact_hydra_folder,
    redact_override,
    redact_text,
)
from tests.helpers.ragtune_cli import ragtune

PLANTED = "sk-PLANTEDd41d8cd98f00b204e9800998ecf8427e"


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "API_KEY",
        "openai_api_key",
        "apikey",
        "OpenAIApiKey",
        "hf_token",
        "token",
        "authToken",
        "access-token",
        "password",
        "db_password",
        "passwd",
        "client_secret",
        "secret",
        "authorization",
        "credentials",
        "aws_secret_access_key",
        "tracking.tags.api_key",
    ],
)
def test_secret_looking_keys_are_redacted(key):
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "max_new_tokens",
        "context_budget_tokens",
        "input_tokens",
        "output_tokens",
        "tokens_per_s",
        "token_count",
        "max_token",
        "num_token",
        "completion_token",
        "max_new_token",
        "eos_token",
        "pad_token",
        "api_key_env",
        "generator.api_key_env",
        "tokenizer",
        "model",
        "base_url",
        "chunk_strategy",
        "keyword",
    ],
)
def test_ordinary_keys_are_kept(key):
    assert not is_secret_key(key)


def test_redact_walks_the_tree_and_keeps_everything_else():
    tree = {
        "generator": {"max_new_tokens": 8, "api_key_env": "OPENAI_API_KEY", "api_key": PLANTED},
        "tracking": {"tags": {"team": "nlp", "hf_token": PLANTED}, "uri": "sqlite:///m.db"},
        "list": [{"password": "hunter2"}, "https://bob:hunter2@example.com/v1"],
        "empty": {"token": None},
    }
    clean = redact(tree)
    assert clean["generator"] == {
        "max_new_tokens": 8,
        "api_key_env": "OPENAI_API_KEY",
        "api_key": REDACTED,
    }
    assert clean["tracking"] == {
        "tags": {"team": "nlp", "hf_token": REDACTED},
        "uri": "sqlite:///m.db",
    }
    assert clean["list"] == [{"password": REDACTED}, f"https://bob:{REDACTED}@example.com/v1"]
    assert clean["empty"] == {"token": None}  # nothing to hide
    assert tree["generator"]["api_key"] == PLANTED  # the input is not modified


def test_url_passwords_and_overrides():
    assert (
        redact_text("http://u:p4ss@h:5000/x and ftp://a@b")
        == f"http://u:{REDACTED}@h:5000/x and ftp://a@b"
    )
    assert (
        redact_override(f"+tracking.tags.api_key={PLANTED}") == f"+tracking.tags.api_key={REDACTED}"
    )
    assert redact_override("generator.max_new_tokens=8") == "generator.max_new_tokens=8"


def test_hydra_folder_is_rewritten_without_the_secret(tmp_path):
    (tmp_path / "overrides.yaml").write_text(
        yaml.safe_dump([f"+tracking.tags.api_key={PLANTED}", "a=1"])
    )
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump({"tracking": {"tags": {"api_key": PLANTED}}})
    )
    hydra = {
        "hydra": {
            "overrides": {"task": [f"+x.token={PLANTED}"]},
            "job": {"override_dirname": f"+x.token={PLANTED},a=1"},
        }
    }
    (tmp_path / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    redact_hydra_folder(tmp_path)
    for name in ("overrides.yaml", "config.yaml", "hydra.yaml"):
        text = (tmp_path / name).read_text()
        assert PLANTED not in text and REDACTED in text, name
    assert yaml.safe_load((tmp_path / "overrides.yaml").read_text())[1] == "a=1"


def test_prompt_templates_cannot_reach_object_internals():
    from rag.core.prompts import PromptTemplateError, fill_template

    assert fill_template("Q: {question} ({n}) {{literal}}", question="who {is} {n}?", n=2) == (
        "Q: who {is} {n}? (2) {literal}"
    )
    for template in (
        "{question.__class__.__mro__}",
        "{n[0]}",
        "{question!r}",
        "{n:>99}",
        "{other}",
    ):
        with pytest.raises(PromptTemplateError, match="is not allowed: use only"):
            fill_template(template, question="q", n=2)


def test_a_malicious_paraphrase_prompt_is_refused_not_swallowed():
    from rag.core.prompts import PromptTemplateError
    from rag.core.types import QAPair
    from rag.qa.paraphrase import paraphrase_questions

    qa = QAPair("q1", "Who founded Acme?", ["Ann"], ["d1"], split="train")
    calls = []

    def generate(prompt):
        calls.append(prompt)
        return "Q: x", 1, 1

    with pytest.raises(PromptTemplateError):
        paraphrase_questions(
            [qa], "lm", 1, generate=generate, prompt="{question.__init__.__globals__}"
        )
    assert calls == []  # nothing was sent to the model


@pytest.mark.parametrize(
    "override,key,fix",
    [
        (
            f"generator.base_url=https://me:{PLANTED}@api.example.com/v1",
            "generator.base_url",
            "api_key_env",
        ),
        (
            f"tracking.uri=http://me:{PLANTED}@127.0.0.1:5000",
            "tracking.uri",
            "MLFLOW_TRACKING_PASSWORD",
        ),
    ],
)
def test_credentials_in_urls_are_refused_without_echoing_them(override, key, fix):
    from hydra import compose, initialize_config_dir

    from evaluate.cli import CONF_DIR, to_config
    from evaluate.config.schema import ConfigError

    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["experiment=smoke", override])
    with pytest.raises(ConfigError) as err:
        to_config(cfg)
    assert key in str(err.value) and fix in str(err.value)
    assert PLANTED not in str(err.value)


def test_locked_sqlite_is_retried_then_succeeds(monkeypatch, tmp_path):
    from evaluate.records import tracking

    monkeypatch.setattr(tracking, "LOCKED_FIRST_WAIT_S", 0.01)
    tracker = tracking.MlflowTracker(f"sqlite:///{tmp_path / 'm.db'}", "e", str(tmp_path / "a"))
    tracker.start("r", {})
    real = tracker.client.log_batch
    failures = []

    def flaky(*args, **kwargs):
        if len(failures) < 2:
            failures.append(1)
            raise sqlite3.OperationalError("database is locked")
        return real(*args, **kwargs)

    monkeypatch.setattr(tracker.client, "log_batch", flaky)
    tracker.log_params({"a": 1, "db_password": "hunter2"})
    tracker.finish(ok=True)
    run = tracker.client.get_run(tracker.run_id)
    assert len(failures) == 2
    assert run.data.params == {"a": "1", "db_password": REDACTED}
    assert run.info.status == "FINISHED"


def test_other_errors_and_persistent_locks_are_not_hidden(monkeypatch):
    from evaluate.records import tracking

    monkeypatch.setattr(tracking, "LOCKED_FIRST_WAIT_S", 0.001)
    calls = []

    def always_locked():
        calls.append(1)
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError):
        tracking.retry_when_locked(always_locked)
    assert len(calls) == tracking.LOCKED_ATTEMPTS

    def broken():
        calls.append(1)
        raise sqlite3.OperationalError("no such table: runs")

    calls.clear()
    with pytest.raises(sqlite3.OperationalError):
        tracking.retry_when_locked(broken)
    assert len(calls) == 1


def test_a_planted_key_never_reaches_the_store_artifacts_or_outputs(tmp_path):
    """A user tags the run with a key by mistake; the smoke run records it only redacted."""
    proc = ragtune(
        tmp_path,
        "experiment=smoke",
        "eval.arms=[closed_book]",
        "eval.throughput_batch_size=0",
        "eval.semantic_similarity=false",
        f"+tracking.tags.api_key={PLANTED}",
        "+tracking.tags.team=nlp",
        "hydra.run.dir=outputs/planted",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert PLANTED not in proc.stdout + proc.stderr
    # Everything the run wrote: store (mlflow.db and its -wal/-shm if left), artifacts, outputs,
    # and the cache folder (models, indexes, answer journal, locks).
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"mlflow.db", "results.json", "resolved_config.yaml", "overrides.yaml"} <= names
    assert any("cache" in p.relative_to(tmp_path).parts for p in files)
    assert sum(p.suffix == ".json" for p in files if "mlartifacts" in p.parts) >= 1
    leaks = [str(p) for p in files if PLANTED.encode() in p.read_bytes()]
    assert leaks == []
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = client.get_experiment_by_name("smoke").experiment_id
    (run,) = client.search_runs([experiment_id], filter_string="tags.kind = 'job'")
    assert run.data.tags["api_key"] == REDACTED and run.data.tags["team"] == "nlp"
    assert run.data.params["tracking.tags.api_key"] == REDACTED


def test_no_eval_or_exec_in_the_packages():
    """Config strings are never evaluated as code (documented in README "Security")."""
    import re

    root = Path(__file__).resolve().parents[2]
    pattern = re.compile(r"(?<![\w.])(eval|exec)\(")
    hits = [
        f"{path.relative_to(root)}:{n}"
        for package in ("rag", "finetune", "evaluate", "costing")
        for path in sorted((root / package).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line.split("#", 1)[0])
    ]
    assert hits == []
