"""Serving roofline (``ragtune-cost serve``) against published figures typed in from their sources.

Every check runs the real ``ragtune-cost`` console script and compares with a number printed in
the source, never with this code's own output.
"""

from __future__ import annotations

import pytest

from costing.catalog import load_hardware_catalog
from costing.serving import ModelShape, Roofline, batch_table, knee_batch, shape_from_config
from tests.helpers.cost_cli import DATA, ragtune_cost, ragtune_cost_json

LLAMA_7B = ["--params", "6.74b", "--model-config", str(DATA / "llama-7b.json")]
GPT_J = ["--params", "6.05b", "--model-config", str(DATA / "gpt-j-6b.json")]
# LLaMA 7B has 6.74B parameters (Touvron et al. 2023, arXiv:2302.13971, table 2 lists "6.7B";
# 6,738,415,616 counted from the checkpoint); GPT-J 6B 6,053,381,344 (EleutherAI model card).

# TensorRT-LLM v0.6.1, docs/source/performance.md, "Peak Throughput" tables (NVIDIA, 2023;
# github.com/NVIDIA/TensorRT-LLM): output tokens/s for a static batch of equal requests, TP 1.
# (device, model, batch, input tokens, output tokens, published output tokens/s per GPU).
# The rows with 2,048 output tokens are decode-bound, which is what the KV-aware roofline models.
# One MBU (0.8) is used for all five rows, on two devices, two models and two dtypes; it is an
# assumption held fixed, not fitted per row. Rows with 128 output tokens at batch 384-1024 are
# compute-bound in decode, where attention FLOPs and kernel efficiency the 2N model does not
# capture dominate (the model is 31-67% fast there), and TP 2 rows add interconnect time the
# model does not have: those rows are not claimed.
TRT_LLM_ROWS = [  # ..., and the figure the README prints for ragtune-cost
    ("a100-80gb fp16", LLAMA_7B, 60, 128, 2048, 1928, 1956),
    ("h100-sxm fp8", LLAMA_7B, 112, 128, 2048, 6818, 7374),
    ("h100-sxm fp8", LLAMA_7B, 48, 2048, 2048, 2740, 2768),
    ("h100-sxm fp8", GPT_J, 120, 128, 2048, 8011, 8487),
    ("h100-sxm fp8", GPT_J, 64, 2048, 2048, 3327, 3271),
]
# The same tables' compute-bound rows (128 in, 128 out at large batch): not claimed; the README
# states the model is 31-67% fast on them.
TRT_LLM_COMPUTE_BOUND_ROWS = [
    ("a100-80gb fp16", LLAMA_7B, 384, 128, 128, 5586),
    ("a100-80gb fp16", GPT_J, 512, 128, 128, 6374),
    ("h100-sxm fp8", LLAMA_7B, 768, 128, 128, 19694),
    ("h100-sxm fp8", GPT_J, 1024, 128, 128, 26150),
]
TOLERANCE = 0.10
DEVICE_ARGS = {
    # A100 SXM 80GB datasheet: 312 TFLOPS BF16/FP16 dense, 2,039 GB/s (the catalog row).
    "a100-80gb fp16": [
        "--hardware",
        "a100-80gb",
        "--bytes-per-param",
        "2",
        "--kv-bytes-per-value",
        "2",
    ],
    # H100 SXM datasheet: FP8 tensor 3,958 TFLOPS with sparsity = 1,979 dense; FP8 weights and
    # FP8 KV cache (the benchmark builds with --enable_fp8 --fp8_kv_cache).
    "h100-sxm fp8": [
        "--hardware",
        "h100-sxm",
        "--peak-tflops",
        "1979",
        "--bytes-per-param",
        "1",
        "--kv-bytes-per-value",
        "1",
    ],
}


def static_batch_throughput(device, model, batch, t_in, t_out):
    out = ragtune_cost_json(
        "serve", *DEVICE_ARGS[device], *model,
        "--batch-size", str(batch), "--prompt-tokens", str(t_in), "--output-tokens", str(t_out),
        "--mbu", "0.8", "--mfu", "0.8",
    )  # fmt: skip
    return out["static_batch"]["output_tokens_per_s_per_device"]


@pytest.mark.parametrize(
    ("device", "model", "batch", "t_in", "t_out", "published", "readme"), TRT_LLM_ROWS
)
def test_tensorrt_llm_published_throughput(device, model, batch, t_in, t_out, published, readme):
    out = ragtune_cost_json(
        "serve",
        *DEVICE_ARGS[device],
        *model,
        "--batch-size",
        str(batch),
        "--prompt-tokens",
        str(t_in),
        "--output-tokens",
        str(t_out),
        "--mbu",
        "0.8",
        "--mfu",
        "0.8",
    )
    ours = out["static_batch"]["output_tokens_per_s_per_device"]
    assert ours == pytest.approx(published, rel=TOLERANCE)
    assert round(ours) == readme


@pytest.mark.parametrize(
    ("device", "model", "batch", "t_in", "t_out", "published"), TRT_LLM_COMPUTE_BOUND_ROWS
)
def test_compute_bound_rows_are_over_predicted_as_the_readme_says(
    device, model, batch, t_in, t_out, published
):
    ratio = static_batch_throughput(device, model, batch, t_in, t_out) / published
    assert 1.30 <= ratio <= 1.68


def test_without_the_kv_cache_the_same_rows_are_far_off():
    # The weights-only decode model (the earlier batch-1 formula, scaled by batch) misses the
    # published H100 LLaMA 7B 48 x (2048 in, 2048 out) figure, 2,740 tokens/s, by more than 3x.
    out = ragtune_cost_json(
        "serve",
        *DEVICE_ARGS["h100-sxm fp8"],
        "--params",
        "6.74b",
        "--batch-size",
        "48",
        "--prompt-tokens",
        "2048",
        "--output-tokens",
        "2048",
        "--mbu",
        "0.8",
        "--mfu",
        "0.8",
    )
    assert out["model"]["kv_bytes_per_token"] == 0
    assert out["static_batch"]["output_tokens_per_s_per_device"] > 3 * 2740


def test_kv_bytes_match_the_vllm_paper_and_nvidia():
    # Kwon et al. 2023 (vLLM, arXiv:2309.06180), section 3: "the KV cache of a single token
    # demands 800 KB of space for OPT-13B ... 2 x 5120 x 40 x 2", up to 1.6 GB for 2,048 tokens.
    out = ragtune_cost_json(
        "serve",
        "--hardware",
        "a100-80gb",
        "--params",
        "13b",
        "--model-config",
        str(DATA / "opt-13b.json"),
    )
    per_token = out["model"]["kv_bytes_per_token"]
    assert per_token == 800 * 1024
    assert per_token * 2048 / 2**30 == pytest.approx(1.6, abs=0.05)
    # NVIDIA, "Mastering LLM Techniques: Inference Optimization" (2023): Llama 2 7B, 16-bit,
    # batch 1, 4,096 tokens: "1 * 4096 * 2 * 32 * 4096 * 2 bytes, which is ~2 GB".
    out = ragtune_cost_json("serve", "--hardware", "a100-80gb", *LLAMA_7B)
    assert out["model"]["kv_bytes_per_token"] * 4096 == 1 * 4096 * 2 * 32 * 4096 * 2


def test_llama_65b_training_from_published_throughput():
    # Touvron et al. 2023 (LLaMA, arXiv:2302.13971), section 2.4: 65B "processes around 380
    # tokens/sec/GPU on 2048 GPU of 80GB ... 1.4T tokens takes approximately 21 days";
    # table 15: 1,022,362 GPU-hours for LLaMA-65B.
    est = ragtune_cost_json(
        "--hardware",
        "a100-80gb",
        "--devices",
        "2048",
        "--tokens",
        "1.4t",
        "--tokens-per-s-per-device",
        "380",
    )["estimate"]
    assert est["xpu_hours"] == pytest.approx(1_022_362, rel=0.01)
    assert est["wall_days"] == pytest.approx(21, abs=0.5)
    assert "utilization" not in est and "flops" not in est


def test_decode_formula_is_the_larger_of_two_limits():
    hw = load_hardware_catalog()["a100-80gb"]
    roof = Roofline(hw, devices=1, mfu=0.5, mbu=0.8)
    model = ModelShape(7e9, 2, n_layers=32, n_kv_heads=8, head_dim=128)
    kv = 2 * 32 * 8 * 128 * 2
    rows = batch_table(model, roof, [1, 64, 1024], context=1000)["rows"]
    for row in rows:
        b = row["batch_size"]
        memory = (7e9 * 2 + b * kv * 1000) / (2.039e12 * 0.8)
        compute = b * 2 * 7e9 / (312e12 * 0.5)
        assert row["s_per_output_token"] == pytest.approx(max(memory, compute))
        assert row["bound"] == ("compute" if compute > memory else "memory")
    knee = knee_batch(model, roof, 1000)
    per_seq = 2 * 7e9 / (312e12 * 0.5) - kv * 1000 / (2.039e12 * 0.8)
    assert knee == pytest.approx(7e9 * 2 / (2.039e12 * 0.8) / per_seq)
    assert [r["knee"] for r in rows] == [False, False, True]
    # Longer context: KV reads grow with the batch as fast as compute, so no knee.
    assert knee_batch(model, roof, 100_000) is None


def test_config_reading_grouped_query_attention(tmp_path):
    shape = shape_from_config(DATA / "llama-2-70b.json", 70e9)
    assert (shape.n_layers, shape.n_kv_heads, shape.head_dim) == (80, 8, 128)
    assert shape.kv_bytes_per_token == 2 * 80 * 8 * 128 * 2
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    done = ragtune_cost(
        "serve", "--hardware", "a100-80gb", "--params", "7b", "--model-config", str(bad)
    )
    assert done.returncode == 2 and "not valid JSON" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_serve_table_marks_the_knee_and_utilization_is_a_shorthand():
    out = ragtune_cost_json(
        "serve",
        "--hardware",
        "a100-80gb",
        *LLAMA_7B,
        "--context-tokens",
        "0",
        "--utilization",
        "0.5",
        "--batch-sizes",
        "1,8,64,256,1024",
    )
    assert (out["mfu"], out["mbu"]) == (0.5, 0.5)
    marked = [r["batch_size"] for r in out["table"] if r["knee"]]
    # Weights-only knee: (W / bandwidth) / (2N / peak) = peak / bandwidth (bytes per param 2).
    assert out["knee_batch_size"] == pytest.approx(312e12 / 2.039e12)
    assert marked == [256]
    text = ragtune_cost(
        "serve", "--hardware", "a100-80gb", *LLAMA_7B, "--batch-sizes", "1,256"
    ).stdout
    assert "<- knee" in text and "MFU 0.4  MBU 1.0" in text


def test_a_closed_pipe_ends_quietly():
    import subprocess

    from tests.helpers.cost_cli import command

    batches = ",".join(str(b) for b in range(1, 4000))
    proc = subprocess.Popen(
        [
            *command(),
            "serve",
            "--hardware",
            "a100-80gb",
            "--params",
            "7b",
            "--batch-sizes",
            batches,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.read(100)
    proc.stdout.close()  # what `| head` does after its lines
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_hours_output_shows_no_unused_knobs():
    out = ragtune_cost_json("--hardware", "v100", "--hours", "1")
    assert not {"utilization", "mfu", "mbu"} & set(out)
    assert not {"utilization", "flops"} & set(out["estimate"])
    text = ragtune_cost("--hardware", "v100", "--hours", "1").stdout
    assert "utilization" not in text and "flops" not in text
    flops = ragtune_cost_json("--hardware", "v100", "--flops", "1e20", "--mfu", "0.3")
    assert flops["mfu"] == 0.3 and flops["estimate"]["utilization"] == 0.3
