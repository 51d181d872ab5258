"""What the runner hands to the costing module for each arm."""

from __future__ import annotations

from types import SimpleNamespace

from evaluate.arms.answering import Prediction
from evaluate.pipeline.costs import arm_measurement
from evaluate.pipeline.stages import AdapterStage, CorpusStage, IndexStage, ModelStage, Stages
from finetune.settings import TrainResult
from rag.core.cache import count_parameters


def prediction(arm: str, retrieval_s: float = 0.0) -> Prediction:
    return Prediction(
        arm=arm,
        qa_id="q",
        question="q?",
        answers=["a"],
        prediction="a",
        exact_match=1.0,
        token_f1=1.0,
        contains=1.0,
        input_tokens=10,
        output_tokens=3,
        ttft_s=0.2,
        tpot_s=0.05,
        e2e_s=0.3,
        request_s=0.3 + retrieval_s,
    )


def _meter(kwh: float) -> SimpleNamespace:
    return SimpleNamespace(result=SimpleNamespace(to_dict=lambda: {"energy_kwh": kwh}))


STAGES = Stages(
    model=ModelStage("m", "transformers", path="m"),
    corpus=CorpusStage("c", [], [], [], seconds=42.0, details={"synthesis": {"method": "lm"}}),
    index=IndexStage(retriever=None, embedder=None, info={"build_s": 3.0, "reused": True}),
    adapter=AdapterStage(
        TrainResult(
            adapter_dir="a", reused=False, steps=1, epochs=1.0, examples=1, tokens=5000,
            wall_s=100.0, samples_per_s=0.0, tokens_per_s=0.0, peak_rss_mb=0.0,
            trainable_params=1, total_params=2, final_loss=0.0, loss_curve=[],
        ),
        merged=True,
    ),
    energy={"index": _meter(0.001), "train": _meter(0.02)},
)  # fmt: skip


def test_one_time_stages_follow_what_each_arm_depends_on():
    assert (
        arm_measurement("closed_book", [prediction("closed_book")], STAGES).one_time_seconds == {}
    )
    rag = arm_measurement("rag", [prediction("rag", 0.1)], STAGES)
    assert rag.one_time_seconds == {"index": 3.0}
    assert abs(rag.retrieval_seconds[0] - 0.1) < 1e-12
    both = arm_measurement("finetune_rag", [prediction("finetune_rag", 0.1)], STAGES)
    # LM-generated training questions are part of the fine-tune arms' up-front cost
    assert both.one_time_seconds == {"index": 3.0, "train": 100.0, "qa_synthesis": 42.0}
    assert both.train_tokens == 5000


def test_measured_energy_only_for_stages_built_in_this_run():
    both = arm_measurement("finetune_rag", [prediction("finetune_rag")], STAGES)
    # the index came from the cache: its meter measured loading, not building
    assert both.measured_energy_kwh == {"train": 0.02}


def test_parameter_count_reads_safetensors_headers(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    stored = {id(p): p.numel() for p in model.parameters()}  # tied weights counted once
    assert count_parameters(tiny_model_dir) == sum(stored.values())
    assert count_parameters("org/not-local") is None
