"""us3l.profiler.fingerprint: the CPU features a profile records, and the INT8 benchmarks' CPU line built on them."""

from __future__ import annotations

import pytest

from us3l.profiler import fingerprint, provenance

X86_EPYC = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx fma avx2 sha_ni\nprocessor\t: 1\n"
X86_SPR = ("model name\t: Intel(R) Xeon(R) Platinum 8480+\n"
           "flags\t\t: avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8 fma\n")
ARM_N1 = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes asimdhp asimddp\nCPU part\t: 0xd0c\n"


@pytest.mark.parametrize(("text", "isa"), [
    (X86_EPYC, ["avx2", "fma"]),
    (X86_SPR, ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"]),
    (ARM_N1, ["asimd", "asimdhp", "asimddp"]),
    ("processor\t: 0\n", []),
    ("", []),
])
def test_isa_features_of_x86_flags_and_arm_features(text: str, isa: list[str]) -> None:
    assert fingerprint.isa_features(text) == isa


def test_cpu_info_records_the_features_and_leaves_them_out_where_none_are_listed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    texts = {"/proc/cpuinfo": X86_SPR}
    monkeypatch.setattr(fingerprint, "_read", texts.get)
    info = fingerprint.cpu_info()
    assert info["model"] == "Intel(R) Xeon(R) Platinum 8480+" and "amx_int8" in info["isa"]
    texts["/proc/cpuinfo"] = "processor\t: 0\n"
    assert "isa" not in fingerprint.cpu_info()


@pytest.mark.parametrize(("text", "line"), [
    (X86_EPYC, "AMD EPYC; avx2 fma; int8 dot-product instructions (VNNI/AMX/dotprod): no"),
    (X86_SPR, "Intel(R) Xeon(R) Platinum 8480+; avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_int8 amx_bf16; "
              "int8 dot-product instructions (VNNI/AMX/dotprod): yes"),
    (ARM_N1 + "Hardware\t: Neoverse\n", "Neoverse; asimd asimdhp asimddp; "
                                        "int8 dot-product instructions (VNNI/AMX/dotprod): yes"),
])
def test_the_int8_benchmarks_cpu_line(monkeypatch: pytest.MonkeyPatch, text: str, line: str) -> None:
    monkeypatch.setattr(fingerprint, "_read", {"/proc/cpuinfo": text}.get)
    assert provenance.cpu_isa() == line
