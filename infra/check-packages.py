#!/usr/bin/env python3
"""Proves `make package` produced what Terraform deploys, and nothing else:

- one zip per function under target/lambda/<function>/bootstrap.zip, each
  holding an executable `bootstrap` that is an aarch64 ELF (provided.al2023,
  arm64);
- no development or test code in it: neither the development signer's
  certificate host nor the fault-injecting fakes' messages occur in the
  binary, and `cargo tree` of each function (and of `outboxctl`) as built for
  the Lambda target enables no `testing` feature and pulls in neither the
  local stack nor the test harness;
- the functions' builds share their dependencies: every crate that two
  functions' graphs both hold has the same features in each, so the second
  and third `cargo lambda build` reuse the first's artifacts instead of
  compiling the AWS SDK again (`crates/workspace-hack` declares the union).

`--self-test` first proves the checks catch a planted marker and a bad
feature line, so a check that can no longer fail is noticed. Exits non-zero
with one line per problem."""

import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

FUNCTIONS = ["auth-exchange", "outbox-relay", "user-profile"]
SRE_TOOLS = ["outboxctl"]
EM_AARCH64 = 183  # ELF e_machine for AArch64
TARGET = "aarch64-unknown-linux-gnu"

# Strings only development or test code carries. The first is
# `local_stack::dev_signer::CERTIFICATE_HOST` (a test in that crate keeps the
# two equal); the second prefixes every message of the fault-injecting
# fakes in `auth_events_core::testing`.
FORBIDDEN_STRINGS = [
    b"securetoken.auth-events-dev-signer.local",
    b"injected: ",
]

# `cargo tree -e normal,features` lines that mean a dev or test part ships.
FORBIDDEN_TREE = ['feature "testing"', "local-stack v", "auth-events-tests v", "rcgen v"]


def binary_problems(archive: Path, binary: bytes):
    if binary[:4] != b"\x7fELF":
        yield f"{archive}: bootstrap is not an ELF binary"
        return
    machine = int.from_bytes(binary[18:20], "little")
    if machine != EM_AARCH64:
        yield f"{archive}: bootstrap is for ELF machine {machine}, not aarch64 ({EM_AARCH64})"
    for marker in FORBIDDEN_STRINGS:
        if marker in binary:
            yield f"{archive}: bootstrap contains {marker.decode()!r}: development or test code ships"


def zip_problems(archive: Path):
    if not archive.is_file():
        yield f"{archive}: missing (run `make package`)"
        return
    with zipfile.ZipFile(archive) as zipped:
        try:
            info = zipped.getinfo("bootstrap")
        except KeyError:
            yield f"{archive}: has no top-level `bootstrap`"
            return
        binary = zipped.read(info)
    yield from binary_problems(archive, binary)
    mode = info.external_attr >> 16
    if mode and not mode & stat.S_IXUSR:
        yield f"{archive}: bootstrap is not executable"


def tree_problems(package: str, tree: str):
    for line in tree.splitlines():
        if any(bad in line for bad in FORBIDDEN_TREE):
            yield f"{package}: `cargo tree -e normal,features -p {package}` shows {line.strip()!r}"


def cargo_tree(root: Path, package: str, *options: str) -> str:
    """`cargo tree` of `package` as built for the Lambda target."""
    return subprocess.run(
        ["cargo", "tree", "-q", "-p", package, "--target", TARGET, *options],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def resolved_features(root: Path, package: str) -> set:
    """`name vVERSION [features]` for every crate `package`'s build
    compiles, host crates (build scripts, proc macros) included: the
    features that decide whether two builds can share a crate's artifacts."""
    tree = cargo_tree(
        root, package, "-e", "normal,build", "--prefix", "none", "--no-dedupe", "--format", "{p} [{f}]"
    )
    return set(tree.splitlines())


def feature_drift_problems(graphs: dict):
    """One line per crate that two functions' builds compile with different
    features. `graphs` maps a function to its `resolved_features` lines."""
    by_crate = {}
    for function, lines in graphs.items():
        for line in lines:
            crate, _, features = line.partition(" [")
            crate = crate.split(" (")[0]  # drops "(proc-macro)" and local paths
            by_crate.setdefault(crate, {}).setdefault(function, set()).add(features.rstrip("]"))
    for crate, seen in sorted(by_crate.items()):
        if len(seen) > 1 and len({frozenset(f) for f in seen.values()}) > 1:
            detail = "; ".join(f"{fn}: {sorted(f)}" for fn, f in sorted(seen.items()))
            yield (
                f"{crate} is built with different features per function ({detail}): "
                "add the union to crates/workspace-hack/Cargo.toml"
            )


def problems(root: Path):
    for function in FUNCTIONS:
        yield from zip_problems(root / "target" / "lambda" / function / "bootstrap.zip")
    for package in FUNCTIONS + SRE_TOOLS:
        yield from tree_problems(package, cargo_tree(root, package, "-e", "normal,features"))
    yield from function_feature_drift(root)


def function_feature_drift(root: Path):
    return feature_drift_problems({f: resolved_features(root, f) for f in FUNCTIONS})


def self_test() -> list:
    """The checks above, run on inputs that must fail them."""
    failures = []
    elf = b"\x7fELF" + bytes(14) + EM_AARCH64.to_bytes(2, "little")
    with tempfile.TemporaryDirectory() as tmp:
        for marker in FORBIDDEN_STRINGS:
            archive = Path(tmp) / "bootstrap.zip"
            with zipfile.ZipFile(archive, "w") as zipped:
                zipped.writestr("bootstrap", elf + b"..." + marker + b"...")
            if not any(marker.decode() in p for p in zip_problems(archive)):
                failures.append(f"self-test: a bootstrap holding {marker!r} passed")
    for bad in ['auth-events-core feature "testing"', "local-stack v0.1.0 (/x)"]:
        if not list(tree_problems("auth-exchange", f"auth-exchange v0.1.0\n{bad}\n")):
            failures.append(f"self-test: a tree line {bad!r} passed")
    drifted = {
        "auth-exchange": {"tokio v1.0.0 [net,rt]", "serde v1.0.0 [std]"},
        "outbox-relay": {"tokio v1.0.0 [rt]", "mimalloc v0.1.0 []"},
    }
    if not any("tokio v1.0.0" in p for p in feature_drift_problems(drifted)):
        failures.append("self-test: a crate with different features per function passed")
    return failures


def main() -> int:
    if "--feature-drift" in sys.argv[1:]:
        root = Path(__file__).resolve().parent.parent
        drift = list(function_feature_drift(root))
        print("\n".join(drift) or "every crate the functions share has one feature set")
        return 1 if drift else 0
    if "--self-test" in sys.argv[1:]:
        failures = self_test()
        for failure in failures:
            print(failure, file=sys.stderr)
        if not failures:
            print(
                "check-packages self-test: a planted marker, a testing feature and "
                "per-function feature drift are all caught"
            )
        return 1 if failures else 0
    root = Path(__file__).resolve().parent.parent
    found = list(problems(root))
    for problem in found:
        print(problem, file=sys.stderr)
    if not found:
        print(
            f"{len(FUNCTIONS)} Lambda zips, each with an aarch64 bootstrap and no development or test code; "
            f"{len(FUNCTIONS + SRE_TOOLS)} packages without test features; "
            "one feature set for every crate the functions share"
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
