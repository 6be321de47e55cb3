#!/usr/bin/env python3
"""Checks the dependency tree: licences we may ship, and no new duplicate versions.

- Licences: every package's SPDX expression must be satisfiable from ALLOWED (permissive
  licences, and MPL-2.0, whose copyleft stays within the files it covers).
- Duplicates: a crate present in two or more versions must be listed, with the reason, in
  scripts/checks/duplicate-crates.txt; a listed crate that is no longer duplicated must be
  taken off the list, so it stays true.
- Advisories (RustSec) are not checked: their database is a git repository on GitHub, which
  this machine cannot reach (docs/dependencies.md).

This is what `cargo deny check licenses bans` does; cargo-deny itself takes longer to build
than the workspace, on a CI machine that starts cold every time, and could not fetch its
advisory database here either.
Usage: scripts/checks/dependencies.py
"""
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {
    "MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "ISC", "Zlib", "0BSD", "Unlicense",
    "BSL-1.0", "Unicode-3.0", "Unicode-DFS-2016", "CC0-1.0", "MPL-2.0",
}


def allowed(expression: str) -> bool:
    """Evaluates an SPDX expression (`A OR B`, `A AND (B OR C)`, `A WITH exception`; the old
    `A/B` form means OR)."""
    tokens = re.findall(r"\(|\)|[A-Za-z0-9.\-+]+", expression.replace("/", " OR "))
    position = 0

    def peek():
        return tokens[position] if position < len(tokens) else None

    def take():
        nonlocal position
        position += 1
        return tokens[position - 1]

    def primary():
        token = take()
        if token == "(":
            value = disjunction()
            take()  # ")"
        else:
            value = token in ALLOWED
        if peek() == "WITH":
            take()
            take()  # an exception only ever grants more
        return value

    def conjunction():
        value = primary()
        while peek() == "AND":
            take()
            value = primary() and value
        return value

    def disjunction():
        value = conjunction()
        while peek() == "OR":
            take()
            value = conjunction() or value
        return value

    return disjunction()


def main() -> int:
    metadata = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout)
    members = set(metadata["workspace_members"])
    problems = []
    versions = defaultdict(set)
    for package in metadata["packages"]:
        versions[package["name"]].add(package["version"])
        if package["id"] in members:
            continue
        licence = package.get("license")
        if not licence:
            problems.append(f"{package['name']} {package['version']}: no SPDX licence declared")
        elif not allowed(licence):
            problems.append(f"{package['name']} {package['version']}: licence '{licence}' is not among the allowed")

    listed = {}
    for line in (ROOT / "scripts/checks/duplicate-crates.txt").read_text().splitlines():
        name = line.split("#")[0].strip()
        if name:
            listed[name] = line
    duplicated = {name for name, found in versions.items() if len(found) > 1}
    for name in sorted(duplicated - set(listed)):
        problems.append(f"{name} is now in {len(versions[name])} versions ({', '.join(sorted(versions[name]))}): "
                        "align the versions, or list it with the reason in scripts/checks/duplicate-crates.txt")
    for name in sorted(set(listed) - duplicated):
        problems.append(f"{name} is listed in scripts/checks/duplicate-crates.txt but has one version now: take it off")

    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"{len(metadata['packages']) - len(members)} dependencies: licences allowed, "
          f"{len(duplicated)} duplicated crates all listed with their reason")
    return 0


if __name__ == "__main__":
    sys.exit(main())
