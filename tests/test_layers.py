"""The folders are the layers (STYLE.md): core is pure, driver translates, ops decides, cli formats.

Every list here is derived from the tree, so a new module is checked the moment it exists.
"""

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import labvirt

PACKAGE = Path(labvirt.__file__).parent
BANNED = ("libvirt", "typer", "rich", "subprocess")


def modules(package: str) -> list[str]:
    mod = importlib.import_module(package)
    found = [package]
    for info in pkgutil.walk_packages(mod.__path__, package + "."):
        found.append(info.name)
    return sorted(found)


def pure_modules() -> list[str]:
    pure = modules("labvirt.core")
    for package in ("labvirt.host", "labvirt.packstack"):
        pkg = importlib.import_module(package)
        pure += [f"{package}.{name}" for name in pkg.PURE]
    return pure


def test_host_and_packstack_say_of_every_module_whether_it_is_pure():
    for package in ("labvirt.host", "labvirt.packstack"):
        pkg = importlib.import_module(package)
        here = {info.name for info in pkgutil.iter_modules(pkg.__path__)}
        assert here == set(pkg.PURE) | set(pkg.EDGE), f"{package}: classify {sorted(here ^ (set(pkg.PURE) | set(pkg.EDGE)))}"
        assert not set(pkg.PURE) & set(pkg.EDGE)


PROBE = """
import sys, importlib
for banned in {banned!r}:
    sys.modules[banned] = None      # any import of them now raises ImportError
for m in {pure!r}:
    importlib.import_module(m)
from labvirt.core.loader import load_lab
from labvirt.core.identity import LabCopy
from labvirt.core.desired import desire, HostParams
from labvirt.core.plan import plan_up
from labvirt.core.observed import Observed
spec = load_lab(sys.argv[1])
plan = plan_up(desire(spec, LabCopy(spec.name), HostParams()), Observed())
print(len(plan.actions))
"""


def test_pure_modules_load_and_plan_without_libvirt_typer_rich_or_subprocess():
    from .conftest import EXAMPLES

    pure = pure_modules()
    assert "labvirt.core.plan" in pure and len(pure) > 15
    r = subprocess.run([sys.executable, "-c", PROBE.format(banned=BANNED, pure=pure), EXAMPLES["three-node"]],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) > 0


def _imports(path: Path) -> set[str]:
    """Every labvirt module a file imports, at any depth (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("labvirt"):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("labvirt"))
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; use absolute imports (labvirt.core...)")
    return found


# What each layer may import (besides itself). host/ and packstack/ are topics, not layers: their pure
# modules follow core's rule, their edge modules ops' (packstack run takes snapshots, for one).
ALLOWED = {
    "core": ("labvirt.core",),
    "driver": ("labvirt.core", "labvirt.driver"),
    "ops": ("labvirt.core", "labvirt.driver", "labvirt.ops", "labvirt.host", "labvirt.packstack"),
    "cli": ("labvirt",),
    "scaffold": ("labvirt.core", "labvirt.scaffold"),
    "web": ("labvirt.core", "labvirt.ops"),        # the dashboard's web app: a front end like cli/
}


def _layer_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE).parts
    if len(rel) == 1:
        return "top"
    if rel[0] in ("host", "packstack"):
        pkg = importlib.import_module(f"labvirt.{rel[0]}")
        name = Path(rel[1]).stem if rel[1] != "__init__.py" else None
        return "core" if name is None or name in pkg.PURE or rel[1] == "profiles" else "ops"
    return rel[0]


def test_each_layer_imports_only_what_is_beneath_it():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = _layer_of(path)
        if layer == "top":
            continue
        allowed = ALLOWED[layer]
        pure = tuple(pure_modules())
        for imported in _imports(path):
            if layer != "core" or path.relative_to(PACKAGE).parts[0] == "core":
                if imported in pure or imported.rsplit(".", 1)[0] in pure:
                    continue          # the pure modules of host/ and packstack/ are core-level

            own = imported.startswith(f"labvirt.{path.relative_to(PACKAGE).parts[0]}")
            if not own and not imported.startswith(allowed) and imported != "labvirt":
                bad.append(f"{path.relative_to(PACKAGE)} ({layer}) imports {imported}")
    assert not bad, "\n".join(bad)


def test_only_main_turns_errors_into_exit_codes():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        for needle in ("SystemExit", "sys.exit(", "typer.Exit("):
            if needle in text and path != PACKAGE / "cli" / "__init__.py":
                offenders.append(f"{path.relative_to(PACKAGE)}: {needle}")
    assert not offenders, offenders
