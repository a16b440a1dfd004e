"""Generate the Python modules and type stubs for everything under protos/.

This is the only way generated code enters the repository: the `alpr` package
at the root is written by this script and never edited by hand.

    python scripts/gen_protos.py          # regenerate in place
    python scripts/gen_protos.py --check  # exit 1 if the committed code is stale
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
THIRD_PARTY = ROOT / "third_party" / "googleapis"
WELL_KNOWN = Path(grpc_tools.__file__).parent / "_proto"
PACKAGE = "alpr"
PACKAGE_DOC = '"""Generated from protos/ by scripts/gen_protos.py. Do not edit."""\n'


def _plugin(name: str) -> str:
    """Find a protoc plugin installed beside this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        sys.exit(f"gen_protos: {name} not found; install the 'dev' extra")
    return found


def generate(out: Path) -> None:
    """Write the generated package for every proto file into `out`."""
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTOS}",
        f"--proto_path={THIRD_PARTY}",
        f"--proto_path={WELL_KNOWN}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *sources,
    ]
    if protoc.main(args) != 0:
        sys.exit("gen_protos: protoc failed")
    package = out / PACKAGE
    for directory in [package, *(p for p in package.rglob("*") if p.is_dir())]:
        (directory / "__init__.py").write_text(PACKAGE_DOC)
    (package / "py.typed").write_text("")


def _differences(left: Path, right: Path) -> list[str]:
    """Relative paths that differ between two trees, recursively."""
    comparison = filecmp.dircmp(left, right, ignore=["__pycache__"])
    found = [*comparison.left_only, *comparison.right_only, *comparison.diff_files]
    for name in comparison.common_files:
        if (left / name).read_bytes() != (right / name).read_bytes():
            found.append(name)
    for name in comparison.common_dirs:
        found += [f"{name}/{d}" for d in _differences(left / name, right / name)]
    return sorted(set(found))


def main() -> int:
    """Regenerate, or with --check compare against the committed package."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if stale")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        generate(Path(scratch))
        fresh, committed = Path(scratch) / PACKAGE, ROOT / PACKAGE
        if options.check:
            stale = _differences(fresh, committed) if committed.exists() else ["(missing)"]
            for path in stale:
                print(f"stale generated file: {PACKAGE}/{path}", file=sys.stderr)
            if stale:
                print("run: python scripts/gen_protos.py", file=sys.stderr)
            return 1 if stale else 0
        shutil.rmtree(committed, ignore_errors=True)
        shutil.copytree(fresh, committed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
