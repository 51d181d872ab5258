"""The machine a measurement ran on: CPU model, the instruction sets that decide CPU matmul
speed, and the threads PyTorch uses. Recorded with every run (results.json ``environment``) and
every benchmark part, so a timing is never read without its machine."""

from __future__ import annotations

import platform
from pathlib import Path

_CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in _CPUINFO.read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """``model name`` from /proc/cpuinfo, else what ``platform`` knows."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    return set((_cpuinfo_field("flags") or "").split())


def isa(flags: set[str]) -> dict[str, bool]:
    """AVX2 (with FMA), AVX-512F and AMX, named as /proc/cpuinfo spells them (Linux
    arch/x86/include/asm/cpufeatures.h)."""
    return {
        "avx2": "avx2" in flags and "fma" in flags,
        "avx512f": "avx512f" in flags,
        "amx": any(f.startswith("amx") for f in flags),
    }


def torch_threads() -> dict[str, object]:
    """PyTorch's intra- and inter-op threads and the kernel level it dispatches to."""
    import torch

    return {
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
