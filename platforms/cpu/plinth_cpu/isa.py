"""Which SIMD instruction set this CPU offers, read from the OS (no torch, no cpuinfo dep)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuInfo:
    isa: str  # best vector ISA: "avx512", "avx2", "neon" or "portable"
    extensions: tuple[str, ...]  # notable extras: avx512_bf16, avx512_vnni, amx_bf16, fma, ...
    model: str  # the CPU's model name
    cores: int  # logical cores this process may run on


_EXTRAS = ("avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_bf16", "amx_int8", "fma", "asimddp", "bf16", "sve")


def _cpuinfo_text() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def detect(cpuinfo_text: str | None = None, machine: str | None = None) -> CpuInfo:
    """Read the ISA from ``/proc/cpuinfo`` (x86 ``flags``, arm ``Features``)."""
    text = _cpuinfo_text() if cpuinfo_text is None else cpuinfo_text
    machine = (machine or platform.machine()).lower()
    flags: set[str] = set()
    model = platform.processor() or machine
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("flags", "features") and not flags:
            flags = set(value.split())
        elif key == "model name" and value.strip():
            model = value.strip()
    if "avx512f" in flags:
        isa = "avx512"
    elif "avx2" in flags:
        isa = "avx2"
    elif machine in ("aarch64", "arm64") or "asimd" in flags:
        isa = "neon"
    else:
        isa = "portable"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return CpuInfo(isa, tuple(e for e in _EXTRAS if e in flags), model, cores)
