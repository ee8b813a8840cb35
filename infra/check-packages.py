#!/usr/bin/env python3
"""Proves `make package` produced what Terraform deploys: one zip per
function under target/lambda/<function>/bootstrap.zip, each holding an
executable `bootstrap` that is an aarch64 ELF (provided.al2023, arm64).
Exits non-zero with one line per problem."""

import stat
import sys
import zipfile
from pathlib import Path

FUNCTIONS = ["auth-exchange", "outbox-relay", "user-profile"]
EM_AARCH64 = 183  # ELF e_machine for AArch64


def problems(root: Path):
    for function in FUNCTIONS:
        archive = root / "target" / "lambda" / function / "bootstrap.zip"
        if not archive.is_file():
            yield f"{archive}: missing (run `make package`)"
            continue
        with zipfile.ZipFile(archive) as zipped:
            try:
                info = zipped.getinfo("bootstrap")
            except KeyError:
                yield f"{archive}: has no top-level `bootstrap`"
                continue
            head = zipped.read(info)[:20]
        if head[:4] != b"\x7fELF":
            yield f"{archive}: bootstrap is not an ELF binary"
            continue
        machine = int.from_bytes(head[18:20], "little")
        if machine != EM_AARCH64:
            yield f"{archive}: bootstrap is for ELF machine {machine}, not aarch64 ({EM_AARCH64})"
        mode = info.external_attr >> 16
        if mode and not mode & stat.S_IXUSR:
            yield f"{archive}: bootstrap is not executable"


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    found = list(problems(root))
    for problem in found:
        print(problem, file=sys.stderr)
    if not found:
        print(f"{len(FUNCTIONS)} Lambda zips, each with an aarch64 bootstrap")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
