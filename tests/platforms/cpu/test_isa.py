"""ISA detection from /proc/cpuinfo text, and the platform's declared capabilities."""

from __future__ import annotations

from plinth_cpu.isa import detect
from plinth_cpu.platform import CpuPlatform

X86 = "model name\t: Some EPYC\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16 avx512_vnni\n"
X86_AVX2 = "model name\t: Old Xeon\nflags\t\t: fpu sse2 avx avx2 fma\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes asimddp sve\n"


def test_isa_from_cpuinfo():
    assert detect(X86, "x86_64").isa == "avx512"
    assert detect(X86, "x86_64").extensions == ("avx512_bf16", "avx512_vnni", "fma")
    assert detect(X86_AVX2, "x86_64").isa == "avx2"
    arm = detect(ARM, "aarch64")
    assert arm.isa == "neon" and "asimddp" in arm.extensions
    assert detect("", "riscv64").isa == "portable"


def test_capabilities_report_isa_and_gloo():
    caps = CpuPlatform().capabilities
    assert caps.info["isa"] == detect().isa
    assert caps.distributed_backend == "gloo"
    assert "eager" in caps.graph_modes
