"""The machine recorded with every run: results.json ``environment`` names the CPU, its
instruction sets and PyTorch's threads."""

import torch

from evaluate.records.results import environment
from rag.core.machine import cpu_flags, isa


def test_run_environment_names_cpu_isa_and_threads():
    info = environment()
    expected = [name for name, present in isa(cpu_flags()).items() if present]
    assert info["cpu_isa"].split(",") == (expected or [""])
    assert info["torch_threads"] == str(torch.get_num_threads())
    assert info["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["cpu"]
