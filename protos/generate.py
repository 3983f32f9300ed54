"""Generate the Python gRPC modules and their type stubs from protos/.

Run `python protos/generate.py` after changing a .proto file; the output goes to
service/grpc_gen/ and is committed. tests/test_protos.py fails when the committed
modules drift from the .proto files.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
DEFAULT_OUTPUT = PROTO_ROOT.parent / "service" / "grpc_gen"
# protoc writes imports relative to the proto root ("from certsvc.v1 import ..."); the
# modules live inside the service package, so those imports are rewritten.
PACKAGE_PREFIX = "service.grpc_gen."


def generate(output: Path) -> None:
    """Write the generated modules for every .proto under protos/ into output."""
    from grpc_tools import protoc

    import grpc_tools

    proto_files = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    # mypy-protobuf installs its plugin beside the interpreter, which may not be on PATH.
    grpc_stub_plugin = Path(sys.executable).parent / "protoc-gen-mypy_grpc"
    with tempfile.TemporaryDirectory() as scratch:
        arguments = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={scratch}",
            f"--pyi_out={scratch}",
            f"--grpc_python_out={scratch}",
            f"--plugin=protoc-gen-mypy_grpc={grpc_stub_plugin}",
            f"--mypy_grpc_out={scratch}",
            *proto_files,
        ]
        if protoc.main(arguments) != 0:
            raise SystemExit("protoc failed; see the messages above")
        if output.exists():
            shutil.rmtree(output)
        shutil.copytree(scratch, output)

    for path in output.rglob("*.py*"):
        text = path.read_text()
        text = re.sub(r"^from (certsvc\.\S+) import", rf"from {PACKAGE_PREFIX}\1 import", text, flags=re.M)
        text = re.sub(r"^import (certsvc\.\S+)", rf"import {PACKAGE_PREFIX}\1", text, flags=re.M)
        path.write_text(text)
    for folder in [output, *(p for p in output.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    (output / "py.typed").touch()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="target folder")
    arguments = parser.parse_args()
    generate(arguments.output)
    print(f"generated {arguments.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
