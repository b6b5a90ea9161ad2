"""The example vendor plugin is the proof that the contract is enough.

It imports nothing from ``plinth`` but the public ``plinth.platform`` package, patches
nothing of plinth, stays small, and loads through its entry point like any vendor's.
"""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import tokenize
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

PLUGIN_ROOT = Path(__file__).resolve().parents[2] / "plugins" / "example-accelerator"
SOURCES = sorted((PLUGIN_ROOT / "plinth_example").rglob("*.py"))
PUBLIC = "plinth.platform"
MAX_LINES = 300


def _is_plinth(module: str) -> bool:
    return module == "plinth" or module.startswith("plinth.")


def _is_public(module: str) -> bool:
    return module == PUBLIC or module.startswith(PUBLIC + ".")


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def test_plugin_sources_found():
    assert {p.name for p in SOURCES} >= {"descriptor.py", "platform.py", "attention.py"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_imports_only_the_public_contract(path: Path):
    bad = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            bad += [a.name for a in node.names if _is_plinth(a.name) and not _is_public(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "plinth":
                bad += [f"plinth.{a.name}" for a in node.names if f"plinth.{a.name}" != PUBLIC]
            elif _is_plinth(node.module) and not _is_public(node.module):
                bad.append(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):  # import_module("plinth.x")
            name = node.value.partition(":")[0]
            if _is_plinth(name) and not _is_public(name) and " " not in name:
                bad.append(f"string {node.value!r}")
    assert not bad, f"{path.name} uses non-public plinth modules {bad}; only {PUBLIC} is the contract"


def _plinth_names(tree: ast.Module) -> set[str]:
    """Local names bound to plinth modules or objects by imports."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if _is_plinth(a.name)}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and _is_plinth(node.module):
            names |= {a.asname or a.name for a in node.names}
    return names


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_patches_nothing(path: Path):
    """Best effort: no assignment to attributes of plinth objects, no setattr, no sys.modules."""
    tree = _tree(path)
    plinth = _plinth_names(tree)
    bad = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, ast.Delete) else [node.target]
        for target in targets:
            if isinstance(target, (ast.Attribute, ast.Subscript)) and _root_name(target) in plinth:
                bad.append(f"line {node.lineno}: assigns to {ast.unparse(target)}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            if node.args and _root_name(node.args[0]) in plinth:
                bad.append(f"line {node.lineno}: {ast.unparse(node)}")
        if isinstance(node, ast.Attribute) and node.attr == "modules" and _root_name(node) == "sys":
            bad.append(f"line {node.lineno}: touches sys.modules")
    assert not bad, f"{path.name} patches plinth; add a hook instead:\n" + "\n".join(bad)


def _code_lines(path: Path) -> int:
    """Non-blank lines that are not only a comment."""
    comment_only = set()
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type == tokenize.COMMENT and not tok.line[: tok.start[1]].strip():
            comment_only.add(tok.start[0])
    lines = path.read_text().splitlines()
    return sum(1 for i, line in enumerate(lines, 1) if line.strip() and i not in comment_only)


def test_plugin_is_small():
    total = sum(_code_lines(p) for p in SOURCES)
    assert total <= MAX_LINES, f"the example plugin has {total} code lines; the template must stay <= {MAX_LINES}"


def test_descriptor_is_cheap():
    code = "import sys, plinth_example.descriptor as d; d.DESCRIPTOR.probe(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "importing and probing the descriptor must not import torch"


def test_probe_honours_the_unavailable_switch(monkeypatch: pytest.MonkeyPatch):
    from plinth.platform import PlatformSelectionError, select_platform
    from plinth_example.descriptor import DESCRIPTOR

    assert DESCRIPTOR.probe().available
    monkeypatch.setenv("PLINTH_EXAMPLE_UNAVAILABLE", "1")
    probe = DESCRIPTOR.probe()
    assert not probe.available and "PLINTH_EXAMPLE_UNAVAILABLE" in probe.reason
    with pytest.raises(PlatformSelectionError, match="PLINTH_EXAMPLE_UNAVAILABLE"):
        select_platform("plinth_example.descriptor:DESCRIPTOR")


def test_registered_through_its_entry_point():
    try:
        dist = distribution("plinth-plugin-example-accelerator")
    except PackageNotFoundError:
        pytest.skip("plinth-plugin-example-accelerator is not installed (pip install -e plugins/example-accelerator)")
    eps = {ep.name: ep.value for ep in dist.entry_points if ep.group == "plinth.platforms"}
    assert eps == {"example": "plinth_example.descriptor:DESCRIPTOR"}


def test_only_chosen_when_named(monkeypatch: pytest.MonkeyPatch):
    from plinth.platform.discovery import choose_platform, discover_platforms

    monkeypatch.delenv("PLINTH_DEVICE", raising=False)
    statuses = discover_platforms()
    if not any(s.available and s.name != "example" for s in statuses):
        pytest.skip("no other platform installed")
    assert choose_platform(statuses).name != "example"
    assert choose_platform(statuses, "example").name == "example"


def test_select_and_run_a_step():
    """Selected by name, the platform's parts work together on a one-token decode step."""
    import torch

    from plinth.platform import AttentionLayerSpec, CommonAttentionMetadata, select_platform

    platform = select_platform("example")
    assert platform.name == "example" and platform.device.device_type == "cpu"
    backend = platform.attention_backends()[0]
    impl = backend.make_impl(AttentionLayerSpec.default(4, 2, 8))
    cache = torch.zeros(backend.kv_cache_shape(2, 16, 2, 8))
    query, key, value = torch.randn(1, 4, 8), torch.randn(1, 2, 8), torch.randn(1, 2, 8)
    slots = torch.tensor([16])  # block 1, offset 0
    impl.write_kv(key, value, cache, slots)
    starts, seq_lens = torch.tensor([0, 1], dtype=torch.int32), torch.tensor([1], dtype=torch.int32)
    common = CommonAttentionMetadata(starts, starts, seq_lens, seq_lens, torch.tensor([[1]], dtype=torch.int32),
                                     slots, num_reqs=1, num_actual_tokens=1, max_query_len=1, max_seq_len=1)
    out = impl.forward(query, key, value, cache, backend.build_metadata(common), torch.empty_like(query))
    torch.testing.assert_close(out, value.repeat_interleave(2, dim=1))
