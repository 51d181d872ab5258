"""Hand the run's measurements to the costing module (which imports nothing of ours)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from costing.measurement import ArmMeasurement, ModelFacts
from costing.report import build_cost_report
from evaluate.arms import Prediction
from evaluate.config import FINETUNE_ARMS, RAG_ARMS, Config, cost_settings

logger = logging.getLogger(__name__)


def count_parameters(model_path: str | None) -> int | None:
    """Parameters stored in a local safetensors checkpoint, read from the headers only."""
    if not model_path or not Path(model_path).is_dir():
        return None
    files = sorted(Path(model_path).glob("*.safetensors"))
    if not files:
        return None
    from safetensors import safe_open

    total = 0
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                shape = handle.get_slice(name).get_shape()
                count = 1
                for dim in shape:
                    count *= dim
                total += count
    return total


def arm_measurement(arm: str, preds: list[Prediction], stages: dict[str, Any]) -> ArmMeasurement:
    one_time: dict[str, float] = {}
    if arm in RAG_ARMS:
        one_time["index"] = float(stages["index"]["build_s"])
    if arm in FINETUNE_ARMS:
        one_time["train"] = float(stages["finetune"]["wall_s"])
    return ArmMeasurement(
        name=arm,
        one_time_seconds=one_time,
        query_seconds=[p.request_s for p in preds],
        ttft_s=[p.ttft_s for p in preds],
        tpot_s=[p.tpot_s for p in preds],
        input_tokens=[p.input_tokens for p in preds],
        output_tokens=[p.output_tokens for p in preds],
        correct=[p.contains > 0 for p in preds],
        retrieval_seconds=[p.request_s - p.e2e_s for p in preds],  # retrieval + prompt build
        train_tokens=int(stages["finetune"]["tokens"]) if arm in FINETUNE_ARMS else 0,
        measured_energy_kwh=_measured(arm, stages),
    )


def _measured(arm: str, stages: dict[str, Any]) -> dict[str, float | None]:
    """Measured kWh of the one-time stages this arm depends on, when they ran in this run
    (a stage served from the cache was not measured building)."""
    energy = stages.get("energy") or {}
    wanted = []
    if arm in RAG_ARMS and not stages["index"]["reused"]:
        wanted.append("index")
    if arm in FINETUNE_ARMS and not stages["finetune"]["reused"]:
        wanted.append("train")
    return {stage: energy[stage]["energy_kwh"] for stage in wanted if stage in energy}


def cost_report(
    config: Config,
    predictions: dict[str, list[Prediction]],
    stages: dict[str, Any],
    model_path: str | None,
) -> dict[str, Any] | None:
    """The costing module's full report (ledger, break-even, QoE, projections, API prices,
    freshness, hybrid), or None when the model's size is unknown (e.g. a remote endpoint)."""
    n_params = count_parameters(model_path)
    if n_params is None:
        logger.warning("cost report skipped: the parameter count of %s is unknown", model_path)
        return None
    finetune = stages.get("finetune") or {}
    model = ModelFacts(
        n_params=n_params,
        trainable_params=int(finetune.get("trainable_params", 0)),
        bytes_per_param=4.0,
    )  # every generator here runs in float32
    arms = [arm_measurement(arm, preds, stages) for arm, preds in predictions.items()]
    return build_cost_report(arms, model, cost_settings(config), config.costing)
