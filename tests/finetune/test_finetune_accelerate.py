"""Multi-process readiness: the example ``accelerate launch`` configs parse with the keys we rely
on, and two data-parallel CPU processes train one adapter that only the main process writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import ClusterConfig
from accelerate.utils import DistributedType

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "finetune" / "accelerate"


def test_cpu_single_config_is_one_cpu_process():
    config = ClusterConfig.from_yaml_file(str(CONFIGS / "cpu_single.yaml"))  # rejects unknown keys
    assert config.distributed_type == DistributedType.NO
    assert config.num_processes == 1 and config.num_machines == 1 and config.use_cpu is True
    assert config.mixed_precision == "no"


def test_multi_gpu_config_is_data_parallel_over_the_gpus_of_one_machine():
    config = ClusterConfig.from_yaml_file(str(CONFIGS / "multi_gpu.yaml"))
    assert config.distributed_type == DistributedType.MULTI_GPU
    assert config.num_processes >= 2 and config.num_machines == 1 and config.machine_rank == 0
    assert config.use_cpu is False and config.gpu_ids == "all"
    assert config.mixed_precision == "no"  # precision is the training code's choice
    text = (CONFIGS / "multi_gpu.yaml").read_text()
    assert (
        "accelerate launch --config_file finetune/accelerate/multi_gpu.yaml -m evaluate.cli" in text
    )


JOB = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from finetune.data import TrainExample
    from finetune.lora import LoraSettings, is_main_process, train_lora

    model, cache, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    examples = [TrainExample(list(range(10, 10 + n)), list(range(10, 10 + n)), "doc")
                for n in (5, 6, 7, 8, 9, 10, 11, 12)]
    settings = LoraSettings(mode="cpt", max_length=16, batch_size=2, max_steps=3,
                            checkpoint_steps=2, warmup_ratio=0.0)
    result = train_lora(model, examples, settings, cache, progress=False)
    rank = os.environ["RANK"]
    (out / f"rank{rank}.json").write_text(json.dumps({"main": is_main_process(),
                                                      **result.to_dict()}))
    """
)


def test_two_data_parallel_processes_train_one_adapter_written_by_the_main_process(
    tiny_model_dir, tmp_path
):
    (tmp_path / "job.py").write_text(JOB)
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(tmp_path / "job.py"), tiny_model_dir, str(cache), str(tmp_path),
    ]  # fmt: skip
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if run.returncode != 0 and "gloo" in run.stderr.lower() and "unsupported" in run.stderr:
        pytest.skip("torch.distributed (gloo) is unavailable here")
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["main"] for r in ranks] == [True, False]
    assert all(r["world_size"] == 2 and r["steps"] == 3 for r in ranks)
    assert ranks[0]["adapter_dir"] == ranks[1]["adapter_dir"]
    assert ranks[0]["tokens"] == ranks[1]["tokens"]  # counted over both processes
    # 3 steps of 2 processes x 2 sequences = 12 sequences of the 8 (longest first in a batch).
    assert ranks[0]["tokens"] > sum(range(5, 13))
    entries = list((cache / "adapters").iterdir())
    assert [p.name for p in entries] == [Path(ranks[0]["adapter_dir"]).name]  # no work folder
    saved = json.loads((entries[0] / "train_result.json").read_text())
    assert saved["world_size"] == 2 and saved["loss_curve"] == [
        list(p) for p in ranks[0]["loss_curve"]
    ]
