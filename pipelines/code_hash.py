"""A stage's code version for its checkpoint: qurate's version and the source of everything its output depends on.

Imports are followed in the source (``ast``: nothing is executed), from the stage's own modules through qurate's
core and the wiring that runs it: a change anywhere a stage reads invalidates its checkpoint, a change in another
stage's library does not.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

_WIRING = ("qurate.pipelines.decide", "qurate.pipelines.checkpoints", "qurate.pipelines.segments")
_READ = ("qurate.pipelines.read",)  # the first segment also reads the input


@lru_cache(maxsize=4096)
def _imports(name: str, path: Path, _mtime: float) -> frozenset[str]:
    """The modules a module imports (from its source, so nothing is executed)."""
    import ast

    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # ``from pkg import submodule``
    return frozenset(m for m in found if m)


def _module_files(roots: set[str]) -> dict[Path, str]:
    """The source files (and module names) of ``roots`` and of every module they import from qurate or from the
    roots' own top-level packages (a plug-in's), transitively."""
    from importlib.util import find_spec

    tops = {"qurate"} | {name.split(".", 1)[0] for name in roots}
    files: dict[Path, str] = {}
    seen: set[str] = set()
    todo = sorted(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            spec = find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue  # a name imported from a module, not a module
        path = Path(spec.origin)
        files[path] = name
        todo += sorted(m for m in _imports(name, path, path.stat().st_mtime) - seen if m.split(".", 1)[0] in tops)
    return files


def code_hash(spec: Any, first: bool) -> str:
    """qurate's version and the source of everything that decides a stage's output: the stage's modules and every
    qurate module they import (transitively), the wiring that runs and stores it, the reader (first segment),
    and the data files shipped beside the stage's code (models, word lists: by name and size). A model outside
    the package (a path in the section) is covered only by its path."""
    import qurate
    from qurate.pipelines.decide import GRAPHS

    modules = {getattr(part, "__module__", None) for part in (spec.config, spec.decider, spec.model, spec.report,
                                                              spec.check)}
    ref = GRAPHS.get(spec.graph or "") or spec.build
    if ref:
        modules.add(ref.partition(":")[0])
    roots = {m for m in modules if m} | set(_WIRING) | (set(_READ) if first else set())
    files = _module_files(roots)
    out = hashlib.sha256(f"qurate {qurate.__version__}\0".encode())
    for path in sorted(files):
        out.update(f"{path.parent.name}/{path.name}\0".encode() + path.read_bytes())
    # data files of the stage packages (not of a single-file module: its folder may be site-packages)
    packages = {f.parent for f, name in files.items() if "." in name and not name.startswith("qurate.pipelines")}
    for path in sorted(p for d in packages for p in d.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")):
        out.update(f"{path.relative_to(path.parents[1])}\0{path.stat().st_size}\0".encode())
    return out.hexdigest()
