#!/usr/bin/env python3
"""Fails on a dependency no code of its package uses.

rustc's own `unused_crate_dependencies` lint, passed through clippy to the workspace's crates
only (so the dependencies' build cache stays valid), over every library and binary target.
A package with both a library and a binary links every dependency into both, so a dependency
counts as unused only when every such target of its package leaves it unused. Tests, benches
and examples are left out: each links all dev-dependencies and uses a few.

Written by hand because cargo-machete and cargo-udeps would be installed from source on every
cold CI machine, and udeps needs a nightly compiler.
Usage: scripts/checks/unused-dependencies.py
"""
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    run = subprocess.run(
        ["cargo", "clippy", "--workspace", "--lib", "--bins", "--locked", "--message-format=json",
         "--", "-W", "unused-crate-dependencies"],
        cwd=ROOT, capture_output=True, text=True)
    if run.returncode != 0:
        sys.stderr.write(run.stderr[-4000:])
        return 1
    targets = defaultdict(set)        # package -> its lib/bin targets
    unused = defaultdict(lambda: defaultdict(set))  # package -> dependency -> targets
    for line in run.stdout.splitlines():
        if not line.startswith("{"):
            continue
        message = json.loads(line)
        if message.get("reason") in ("compiler-artifact", "compiler-message"):
            target = message["target"]
            # A library and a binary may share a name: tell them apart by kind.
            target_key = (target["name"], tuple(target["kind"]))
        if message.get("reason") == "compiler-artifact":
            targets[message["package_id"]].add(target_key)
        if message.get("reason") != "compiler-message":
            continue
        diagnostic = message["message"]
        if (diagnostic.get("code") or {}).get("code") != "unused_crate_dependencies":
            continue
        match = re.search(r"extern crate `(\w+)` is unused", diagnostic["message"])
        if match:
            unused[message["package_id"]][match.group(1)].add(target_key)
    problems = []
    for package, dependencies in unused.items():
        name = re.search(r"#?([\w-]+)@", package) or re.search(r"/([\w-]+)#", package)
        package_name = name.group(1) if name else package
        for dependency, in_targets in sorted(dependencies.items()):
            if in_targets >= targets[package]:
                problems.append(f"{package_name}: dependency `{dependency}` is used by none of its library and binaries")
    for problem in problems:
        print(problem)
    if problems:
        print("remove them from the crate's Cargo.toml (or move them to [dev-dependencies])")
        return 1
    members = [package for package in targets if package.startswith("path+file://")]
    print(f"every dependency of the {len(members)} workspace crates is used")
    return 0


if __name__ == "__main__":
    sys.exit(main())
