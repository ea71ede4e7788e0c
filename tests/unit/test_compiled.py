"""The compiled hot path: built where it should be, and never run stale."""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import os
from pathlib import Path

import pytest

from quantdesk._compiled import COMPILED_MODULES, StaleCompiledModule, check_source_tree, stale_modules

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _tree(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    src = tmp_path / "src"
    for module in COMPILED_MODULES:
        (src / module).parent.mkdir(parents=True, exist_ok=True)
        (src / module).write_text("")
    return src


def _built(src: Path, module: str, *, age_s: float) -> None:
    source = src / module
    built = source.with_name(source.stem + SUFFIX)
    built.write_bytes(b"")
    when = source.stat().st_mtime - age_s
    os.utime(built, (when, when))


def test_a_module_edited_after_its_build_is_refused_by_name(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    _built(src, "quantdesk/engine/engine.py", age_s=10)
    _built(src, "quantdesk/bus/bus.py", age_s=-10)  # built after its last edit: fine
    assert stale_modules(src) == ["quantdesk/engine/engine.py"]
    with pytest.raises(StaleCompiledModule, match=r"quantdesk/engine/engine\.py.*make build"):
        check_source_tree(src / "quantdesk")


def test_a_pure_tree_and_an_installed_package_are_not_checked(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    check_source_tree(src / "quantdesk")  # no extension at all: pure Python
    _built(src, "quantdesk/engine/engine.py", age_s=10)
    (tmp_path / "pyproject.toml").unlink()  # site-packages: one build made both
    check_source_tree(src / "quantdesk")


@pytest.mark.skipif(os.environ.get("QUANTDESK_PURE") == "1", reason="QUANTDESK_PURE=1: a pure build")
def test_every_hot_path_module_runs_compiled() -> None:
    """`make test` builds first, so the suite tests what ships; `make pure` + QUANTDESK_PURE=1
    runs it on the pure sources instead."""
    pure = []
    for path in COMPILED_MODULES:
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        if not str(module.__file__).endswith(SUFFIX):
            pure.append(path)
    assert not pure, (
        f"not compiled: {pure}. Run `make build`; a machine without a C compiler builds pure Python"
        " (setup.py warns), and then the suite runs with QUANTDESK_PURE=1"
    )


def test_no_compiled_module_defines_a_msgspec_struct() -> None:
    """Compiled, `class X(msgspec.Struct, frozen=True, gc=False)` loses its keywords: a frozen
    record comes out mutable, an identity-compared one compares by value."""
    import inspect

    import msgspec

    defined = []
    for path in COMPILED_MODULES:
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, msgspec.Struct)
                and value.__module__ == module.__name__
            ):
                defined.append(f"{path}: {name}")
    assert not defined, f"msgspec Structs defined in compiled modules: {defined}"


SRC = Path(__file__).resolve().parents[2] / "src"
# Enums whose members the per-order path compares against (see the habits in _compiled.py).
HOT_ENUMS = {"Side", "OrderStatus", "OrderType", "TimeInForce", "Leg", "ExitPolicy"}


def _functions(path: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse((SRC / path).read_text(), filename=path)
    return [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]


def test_compiled_functions_read_enum_members_from_module_constants() -> None:
    """Compiled, `Side.BUY` inside a function calls EnumType's __getattr__ hook on Python 3.11
    (~80 ns, 35 times per order before the constants): a module `_BUY: Final = Side.BUY` is a
    C static."""
    found = []
    for path in COMPILED_MODULES:
        for function in _functions(path):
            # The body only: a default in the signature is evaluated once, and reads better as
            # `TimeInForce.GTC` in the signature users see.
            for node in (n for statement in function.body for n in ast.walk(statement)):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id in HOT_ENUMS
                    and node.attr.isupper()
                ):
                    found.append(f"{path}:{node.lineno} {node.value.id}.{node.attr} in {function.name}")
    assert not found, f"enum members read through the class in compiled functions: {found}"


def test_compiled_f_strings_use_no_str_conversion() -> None:
    """Compiled, one `!s` in an f-string makes every field of it a `str.format` call that parses
    its spec; f"{str(x)}" stays one native string build (the per-order `submit` line cost 2x).
    `!r` is left to error messages, off the per-order path; ruff's RUF010 is off for this."""
    found = []
    for path in COMPILED_MODULES:
        tree = ast.parse((SRC / path).read_text(), filename=path)
        for node in ast.walk(tree):
            if isinstance(node, ast.FormattedValue) and node.conversion == ord("s"):
                found.append(f"{path}:{node.lineno}")
    assert not found, f"`!s` in f-strings of compiled modules (write str(x)): {found}"
