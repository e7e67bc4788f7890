"""Regenerate the Python stubs in shared/stubs from protos/.

Run as `make generate`. `--out DIR` writes elsewhere: `make check-generated` regenerates
into a temporary copy and diffs it against the committed tree. protoc names Python
modules after the proto paths (`hookshelf.library.v1`); the stubs live inside the
`shared` package, so the generated absolute imports are rewritten to
`shared.stubs.hookshelf...`.
The proto paths seen by reflection stay `hookshelf/...`.

It also writes `hookshelf/descriptor_set.binpb`: the same files as a FileDescriptorSet
that keeps the source info (the .proto comments), which the generated *_pb2.py modules
drop. Reflection can serve it so that `grpcurl describe` shows the comments.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "shared" / "stubs"
DESCRIPTOR_SET = "descriptor_set.binpb"
IMPORT = re.compile(r"^(from|import) hookshelf\.", re.MULTILINE)


def generate(out: Path) -> int:
    """Generate _pb2, _pb2_grpc and .pyi for every proto into out; return protoc's status."""
    target = out / "hookshelf"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    protos = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    status = protoc.main(
        [
            "protoc",
            f"-I{PROTOS}",
            f"-I{include}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            f"--plugin=protoc-gen-mypy={Path(sys.executable).parent / 'protoc-gen-mypy'}",
            f"--mypy_out={out}",
            f"--descriptor_set_out={target / DESCRIPTOR_SET}",
            "--include_source_info",
            *protos,
        ]
    )
    if status != 0:
        return status
    for path in target.rglob("*"):
        if path.suffix in {".py", ".pyi"}:
            text = IMPORT.sub(r"\1 shared.stubs.hookshelf.", path.read_text())
            path.write_text(text)
    for directory in [target, *[d for d in target.rglob("*") if d.is_dir()]]:
        (directory / "__init__.py").touch()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="stubs root (default shared/stubs)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    return generate(args.out.resolve())


if __name__ == "__main__":
    sys.exit(main())
