"""The benchmark suite's own logic on tiny inputs: checks against targets, the Markdown and JSON
it writes, the interleaved timing harness and the overhead measurements (tiny model, n=2).
Timing targets are measured by ``python -m bench``, never asserted here."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# bench/ is a folder of scripts at the top of the repository, not an installed package.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import __main__ as cli  # noqa: E402
from bench import overhead, parts, roofline  # noqa: E402
from bench.e2e import summarise  # noqa: E402
from bench.report import (  # noqa: E402
    Check,
    PartResult,
    format_value,
    merge_results,
    render_markdown,
    write_results,
)
from bench.timing import interleaved, paired_ratio  # noqa: E402


def test_check_says_met_or_missed_and_by_how_much():
    missed = Check("encode ours/bare", 1.05, 1.03, "<=", "x")
    assert missed.met is False
    assert missed.margin == "missed by 0.02x (+2%)"
    met = Check("recall@10", 0.97, 0.95, ">=")
    assert met.met is True and met.margin == "met, 2% over target"
    slow = Check("cold run", 330.0, 300.0, "<=", "s")
    assert slow.margin == "missed by 30 s (+10%)"
    assert Check("p50", 1.5, 2.0, "<=", "ms").margin == "met, 25% under target"
    nothing = Check("x", math.nan, 1.0, "<=")
    assert nothing.met is None and nothing.margin == "not measured"
    assert slow.to_dict()["met"] is False
    with pytest.raises(ValueError, match="op must be one of"):
        Check("x", 1.0, 1.0, "<")


def test_format_value_units():
    assert format_value(1.0234, "x") == "1.02x"
    assert format_value(0.00123, "s") == "0.00123 s"
    assert format_value(0.94982) == "0.9498"  # not rounded up onto a 0.95 target
    assert format_value(1500.2, "s") == "1,500 s"
    assert format_value(None) == "n/a"
    assert format_value(math.inf, "s") == "n/a"


def _results(parts_: dict) -> dict:
    return {"command": "python -m bench", "machine": {"cpu": "test", "cores": 2}, "parts": parts_}


def test_markdown_has_summary_rows_errors_and_tables():
    ok = PartResult("overhead", settings={"repeats": 2})
    ok.checks = [Check("encode ours/bare", 1.10, 1.03, "<=", "x")]
    ok.details = {
        "tables": [{"columns": ["stage", "ratio"], "rows": [{"stage": "a|b", "ratio": 1.1}]}]
    }
    ok.notes = ["a note"]
    failed = PartResult("index", error="Traceback ...\nMemoryError: no room")
    text = render_markdown(_results({"overhead": ok.to_dict(), "index": failed.to_dict()}))
    assert "| overhead | encode ours/bare | <= 1.03x | 1.1x | missed by 0.07x (+7%) |" in text
    assert "| index | (failed) | | | MemoryError: no room |" in text
    assert "| a\\|b | 1.1 |" in text  # cells escape the pipe
    assert "## overhead" in text and "a note" in text and "repeats=2" in text


def test_merge_keeps_parts_not_run_and_orders_them():
    previous = _results({"index": {"name": "index", "old": True}, "e2e": {"name": "e2e"}})
    run = _results({"overhead": {"name": "overhead"}, "e2e": {"name": "e2e", "new": True}})
    merged = merge_results(previous, run)
    assert list(merged["parts"]) == ["e2e", "overhead", "index"]
    assert merged["parts"]["e2e"] == {"name": "e2e", "new": True}
    assert merged["parts"]["index"]["old"] is True
    assert list(merge_results(None, run)["parts"]) == ["e2e", "overhead"]


def test_write_results_writes_both_files_atomically(tmp_path):
    results = _results({"ingest": PartResult("ingest").to_dict()})
    json_path, md_path = write_results(results, tmp_path)
    assert json.loads(json_path.read_text())["parts"]["ingest"]["name"] == "ingest"
    assert md_path.read_text().startswith("# Benchmark results")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.json", "latest.md"]


def test_interleaved_rotates_order_and_drops_warmup():
    calls = []
    samples = interleaved(
        {"a": lambda: calls.append("a") or 1, "b": lambda: calls.append("b") or 2},
        repeats=3,
        warmup=1,
    )
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert samples["a"].n == 3 and samples["b"].values == [2, 2, 2]
    assert all(s >= 0 for s in samples["a"].seconds)
    with pytest.raises(ValueError):
        interleaved({"a": lambda: None}, repeats=0)


def test_paired_ratio_is_the_median_of_round_ratios():
    assert paired_ratio([2.0, 4.0, 9.0], [1.0, 2.0, 3.0]) == 2.0
    with pytest.raises(ValueError):
        paired_ratio([1.0], [1.0, 2.0])


def test_search_overhead_on_a_small_flat_index():
    row = overhead.search_overhead(vectors=400, dim=16, queries=20, top_k=3, repeats=2)
    assert row["n"] == 2 and row["items"] == 20
    assert row["same_results"] is True
    assert row["ours_s"] > 0 and row["bare_s"] > 0 and row["ratio"] > 0


def test_generate_overhead_on_the_tiny_model(tiny_model_dir):
    rows = overhead.generate_overhead(tiny_model_dir, max_new_tokens=4, repeats=2)
    assert [r["stage"] for r in rows] == ["generate", "generate: token clock alone"]
    assert all(r["n"] == 2 and r["items"] == rows[0]["items"] for r in rows)
    assert 1 <= rows[0]["items"] <= 4 and rows[0]["tokens_per_s"] > 0


def test_lora_step_overhead_on_the_tiny_model(tiny_model_dir):
    settings = overhead.lora_settings_from_config(REPO / "conf" / "finetune" / "lora.yaml")
    settings = replace(settings, batch_size=2)
    row = overhead.lora_step_overhead(
        tiny_model_dir, settings, seq_len=16, steps_per_block=3, blocks=2
    )
    # 2 blocks of each; the first step of a block is not timed: 2 x 2 intervals
    assert row["n"] == 4 and row["batch"] == "2 x 16 tokens"
    assert row["ours_s"] > 0 and row["bare_s"] > 0
    assert row["target_modules"] == "llama-all"
    # the same steps: the Trainer's logged loss at each of the 2 x 3 steps equals the bare loop's
    assert len(row["losses_ours"]) == len(row["losses_bare"]) == 6
    assert row["losses_ours"] == pytest.approx(row["losses_bare"], abs=overhead.LOSS_TOLERANCE)
    assert row["same_results"] is True and row["ratio"] > 0


def test_a_ratio_from_unlike_work_is_not_a_verdict():
    part = PartResult("overhead")
    row = {"stage": "LoRA training step", "ratio": None, "same_results": False}
    parts.overhead_checks(part, [row])
    assert [(c.metric, c.met) for c in part.checks] == [
        ("LoRA training step: same outputs (1 = yes)", False)
    ]


def test_encode_overhead_gives_the_same_vectors():
    corpus = ["The harbour opened in 1850.", "Ada Marsh kept the ledger.", "Tides rise."]
    row = overhead.encode_overhead("all-minilm-l6-v2", repeats=2, batch_size=2, corpus=corpus)
    assert row["max_abs_diff"] < 1e-5 and row["items"] == 3
    assert row["n"] == 2 and row["ratio"] > 0


def test_overhead_checks_skip_the_streamer_component():
    part = PartResult("overhead")
    rows = [
        {
            "stage": "generate",
            "ratio": 1.01,
            "ours_s": 0.04,
            "bare_s": 0.0396,
            "unit": "token",
            "n": 5,
        },
        {"stage": "generate: token clock alone", "ratio": 1.2, "ours_s": 1, "bare_s": 1},
    ]
    parts.overhead_checks(part, rows)
    assert [(c.metric, c.met) for c in part.checks] == [("generate ours/bare", True)]
    table = parts.overhead_table(rows[:1] + [{**rows[1], "unit": "token", "n": 3}])
    assert table["rows"][0] == {
        "stage": "generate",
        "ours": "40 ms/token",
        "bare": "39.6 ms/token",
        "ours/bare": "1.010",
        "n": 5,
    }
    assert parts.seconds_text(2.5e-6) == "2.5 µs" and parts.seconds_text(3.0) == "3 s"


def test_roofline_arithmetic_and_bandwidth():
    bound = roofline.roofline({"model_bytes": 1e9, "tpot_s": 0.15}, bandwidth_gbs=10.0)
    assert bound["roofline_tpot_s"] == pytest.approx(0.1)
    assert bound["ratio"] == pytest.approx(1.5)
    with pytest.raises(ValueError):
        roofline.roofline({"model_bytes": 1, "tpot_s": 1}, 0)
    measured = roofline.copy_bandwidth_gbs(8 * 2**20, repeats=2)
    assert measured["bytes"] == 8 * 2**20 and measured["best_gbs"] >= measured["median_gbs"] > 0
    with pytest.raises(ValueError, match="1 MiB"):
        roofline.copy_bandwidth_gbs(1024)


def test_parameter_bytes_counts_tied_weights_once():
    import torch

    embed = torch.nn.Embedding(10, 4)
    head = torch.nn.Linear(4, 10, bias=False)
    head.weight = embed.weight
    model = torch.nn.ModuleDict({"embed": embed, "head": head})
    assert roofline.parameter_bytes(model) == 10 * 4 * 4
    assert roofline.parameter_bytes(model.half()) == 10 * 4 * 2


def test_e2e_summary_of_a_results_file():
    results = {
        "duration_s": 50.0,
        "stages": {
            "model": {"seconds": 12.0},
            "index": {"reused": True, "build_s": 3.0},
            "finetune": {"reused": False, "wall_s": 30.0, "steps": 9},
        },
        "predictions": [{"request_s": 0.5}, {"request_s": 1.5}],
        "arms": {
            "rag": {
                "accuracy": {"contains": 0.475},
                "latency": {"tpot_p50_s": 0.0565, "ttft_p50_s": 0.634},
            }
        },
    }
    out = summarise(results, wall_s=58.0)
    assert out["startup_s"] == pytest.approx(8.0) and out["model_s"] == 12.0
    assert out["answer_s"] == pytest.approx(2.0) and out["predictions"] == 2
    assert out["index_reused"] is True and out["finetune_steps"] == 9
    rag = out["arm_figures"]["rag"]
    assert rag["contains"] == 0.475
    assert (rag["tpot_p50_ms"], rag["ttft_p50_ms"]) == pytest.approx((56.5, 634.0))


def test_cli_records_a_failed_part_and_keeps_the_others(tmp_path, monkeypatch, capsys):
    def good(part, settings):
        part.checks.append(Check("docs/s", 500.0, 333.0, ">=", "docs/s"))

    def bad(part, settings):
        raise MemoryError("planted failure")

    monkeypatch.setitem(cli.PARTS, "ingest", good)
    monkeypatch.setitem(cli.PARTS, "index", bad)
    previous = _results({"e2e": {"name": "e2e", "checks": [], "kept": True}})
    (tmp_path / "latest.json").write_text(json.dumps(previous))
    code = cli.main(["--only", "ingest,index", "--quick", "--results-dir", str(tmp_path)])
    assert code == 1
    saved = json.loads((tmp_path / "latest.json").read_text())
    assert list(saved["parts"]) == ["e2e", "index", "ingest"] and saved["parts"]["e2e"]["kept"]
    assert "MemoryError: planted failure" in saved["parts"]["index"]["error"]
    assert saved["parts"]["ingest"]["checks"][0]["met"] is True
    settings = saved["parts"]["index"]["settings"]
    assert settings == {
        "quick": True,
        "index_n": 20_000,
        "index_clusters": 1000,
        "index_ef_construction": 128,
    }
    assert "| ingest | docs/s | >= 333 docs/s | 500 docs/s | met" in capsys.readouterr().out
    assert (tmp_path / "latest.md").is_file()


def test_cli_rejects_an_unknown_part(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--only", "overhead,gpu"])
    assert exit_info.value.code == 2
    assert "unknown part 'gpu'" in capsys.readouterr().err


def test_hnsw_is_judged_at_the_smallest_ef_search_reaching_the_recall_target():
    row = {
        "factory": "HNSW32",
        "search_p50_ms": 0.4,
        "recall_at_10": 0.80,
        "ef_sweep": [
            {"ef_search": 128, "search_p50_ms": 0.9, "recall_at_10": 0.93},
            {"ef_search": 256, "search_p50_ms": 1.6, "recall_at_10": 0.96},
            {"ef_search": 512, "search_p50_ms": 2.9, "recall_at_10": 0.99},
        ],
    }
    recall, p50 = parts.hnsw_checks(row)
    assert recall.metric == "HNSW32 efSearch=256 recall@10" and recall.met
    assert p50.measured == 1.6 and p50.met
    short = {**row, "ef_sweep": row["ef_sweep"][:1]}  # no point reaches 0.95: the best recall
    recall, p50 = parts.hnsw_checks(short)
    assert recall.metric.startswith("HNSW32 efSearch=128") and recall.met is False
    assert recall.margin == "missed by 0.02 (-2%)"


def test_isa_reads_avx2_avx512_and_amx_from_cpu_flags():
    from rag.core.machine import isa

    # flag names as /proc/cpuinfo spells them (Linux arch/x86/include/asm/cpufeatures.h)
    assert isa({"fma", "avx2"}) == {"avx2": True, "avx512f": False, "amx": False}
    assert isa({"avx2"})["avx2"] is False  # AVX2 without FMA is not the AVX2 matmul class
    assert isa({"fma", "avx2", "avx512f", "amx_tile", "amx_bf16"}) == {
        "avx2": True,
        "avx512f": True,
        "amx": True,
    }


def test_machine_names_threads_and_dispatch(monkeypatch):
    import torch

    from bench.report import machine

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    info = machine()
    assert set(info["isa"]) == {"avx2", "avx512f", "amx"}
    assert info["threads"]["torch_threads"] == torch.get_num_threads()
    assert info["threads"]["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["threads"]["env"]["OMP_NUM_THREADS"] == "2"
    assert info["load_avg_1min"] >= 0


def test_the_avx2_emulation_reaches_numpys_openblas():
    """README "Benchmarks": OPENBLAS_CORETYPE=Haswell makes numpy's OpenBLAS (the decoder's
    products) run its AVX2 kernels, and the machine record says so."""
    import json
    import os
    import subprocess
    import sys

    code = (
        "import json; from bench.report import thread_settings; "
        "print(json.dumps(thread_settings()))"
    )
    env = {**os.environ, "OPENBLAS_CORETYPE": "Haswell"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True
    )
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["env"]["OPENBLAS_CORETYPE"] == "Haswell"
    pools = [p for p in info["blas"] if p["internal_api"] == "openblas"]
    if not pools:
        pytest.skip("numpy is not built with OpenBLAS here")
    assert pools[0]["architecture"] == "Haswell"


def test_matmul_peak_is_the_best_size():
    from bench.compute import matmul_peak_flops

    peak = matmul_peak_flops(sizes=(64, 128), repeats=2)
    assert set(peak["per_size_flops"]) == {"64", "128"}
    assert peak["peak_flops"] == max(peak["per_size_flops"].values()) > 0
    assert str(peak["at_size"]) in peak["per_size_flops"]


def test_lora_step_flops_use_the_counting_rule(tiny_model_dir):
    from bench.compute import lora_step_flops
    from costing.formulas import lora_training_flops

    settings = overhead.lora_settings_from_config(REPO / "conf" / "finetune" / "lora.yaml")
    step = lora_step_flops(tiny_model_dir, replace(settings, batch_size=2), seq_len=16, steps=3)
    assert step["tokens_per_step"] == 2 * 16 and step["steps_timed"] == 2
    expected = lora_training_flops(step["total_params"], step["trainable_params"], 32)
    assert step["step_flops"] == expected
    assert step["achieved_flops"] == pytest.approx(expected / step["step_s"])


def test_lora_step_profile_finds_the_dropout_masks_only_with_dropout(tiny_model_dir):
    """peft draws a dropout mask (aten::bernoulli_) per LoRA layer only when dropout > 0."""
    from bench.compute import lora_step_profile

    settings = overhead.lora_settings_from_config(REPO / "conf" / "finetune" / "lora.yaml")
    assert settings.dropout > 0
    with_dropout = lora_step_profile(tiny_model_dir, replace(settings, batch_size=2), seq_len=16)
    without = lora_step_profile(
        tiny_model_dir, replace(settings, batch_size=2, dropout=0.0), seq_len=16
    )
    assert with_dropout["shares"]["dropout mask (random numbers)"] > 0
    assert without["shares"]["dropout mask (random numbers)"] == 0
    for profile in (with_dropout, without):
        assert sum(profile["shares"].values()) == pytest.approx(1.0)
        assert 0 < profile["shares"]["matmul"] < 1 and profile["tokens"] == 32


def test_decode_split_and_linear_layout_on_the_tiny_model(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from bench.roofline import decode_split, linear_layout

    split = decode_split(tiny_model_dir, max_new_tokens=4, repeats=2)
    assert split["decoder"] is True and split["tokens"] == 4
    assert split["step_s"] > 0 and split["products_s"] > 0
    assert split["rest_s"] == pytest.approx(split["step_s"] - split["products_s"])
    # the products read every linear weight once: q, k, v, o, gate, up, down and the head
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    linear_bytes = sum(
        m.weight.numel() * 4 for m in model.modules() if isinstance(m, torch.nn.Linear)
    )
    assert split["weight_bytes"] == linear_bytes
    layout = linear_layout(tiny_model_dir, rows=(1, 2), repeats=2)
    # every linear layer of the tiny Llama is counted: 7 per block (q,k,v,o,gate,up,down) + head
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_model_dir)
    assert layout["layers"] == 7 * config.num_hidden_layers + 1
    assert layout["weight_bytes"] > 4 * config.vocab_size * config.hidden_size  # head + blocks
    assert layout["max_abs_diff"] < 1e-4  # both layouts compute the same products
    assert set(layout["rows"]) == {1, 2} and "numpy_s" in layout["rows"][1]
    one = layout["rows"][1]
    assert one["row_major_gbs"] == pytest.approx(layout["weight_bytes"] / one["row_major_s"] / 1e9)


def test_attention_reproduction_computes_the_same_attention():
    from bench.roofline import attention_decode_threads

    out = attention_decode_threads(heads=2, head_dim=8, kv_tokens=16, repeats=2)
    assert out["max_abs_diff"] < 1e-5  # the library kernel and the written-out product agree
    assert out["sdpa_us_1_threads"] > 0 and out["written_out_us_1_threads"] > 0


def test_setup_part_times_the_command_in_a_fresh_clone_of_head(tmp_path):
    """The clone is of the committed HEAD (not the working tree), and the command's exit code
    and output are kept; ``make setup`` itself is what ``python -m bench --only setup`` runs."""
    import subprocess

    from bench.setup_time import run_setup

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "--quiet", str(repo)], check=True)
    (repo / "Makefile").write_text("setup:\n\t@echo committed\n")
    subprocess.run([*git, "add", "Makefile"], check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "one"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    (repo / "Makefile").write_text("setup:\n\t@echo uncommitted\n")  # not in the clone

    result = run_setup(repo, tmp_path / "work")
    assert result["exit_code"] == 0 and result["commit"] == head
    assert result["log_tail"] == "committed" and result["wall_s"] > 0

    failing = run_setup(repo, tmp_path / "again", command=("sh", "-c", "echo broken >&2; exit 3"))
    assert failing["exit_code"] == 3 and "broken" in failing["log_tail"]
