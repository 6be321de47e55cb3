#!/usr/bin/env python3
"""Fails when the docs name what the tree does not have.

- Every file a Markdown page names in backticks (`crates/x/src/y.rs`, `scripts/z.sh`,
  `feed/local.rs`) exists: at that path, or as the end of a tracked file's path (docs often
  name a file within its crate), or as a file a tracked script writes (generated at run time).
- Every crate of the workspace is described in docs/architecture.md, and every `agora-*`
  crate it names exists.
- Every `./dev COMMAND` the docs and the README show is a command `./dev`'s usage lists.

Usage: scripts/checks/docs-references.py
"""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXTENSIONS = ("rs", "sh", "md", "toml", "json", "sql", "lua", "py", "yml", "yaml", "html", "css", "js", "conf", "txt")


def tracked() -> list:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def main() -> int:
    files = tracked()
    file_set = set(files)
    pages = [f for f in files if f.endswith(".md") and (f.startswith("docs/") or "/" not in f)]
    scripts_text = "\n".join((ROOT / f).read_text(errors="replace") for f in files if f.endswith(".sh") or f == "dev")
    problems = []

    reference = re.compile(r"`([A-Za-z0-9_.\-/]+\.(?:" + "|".join(EXTENSIONS) + r"))`")
    for page in pages:
        text = (ROOT / page).read_text()
        for number, line in enumerate(text.splitlines(), 1):
            for name in reference.findall(line):
                if name.startswith(("/", "http")) or name.startswith("../"):
                    continue
                candidates = {name, str(Path(page).parent / name)}
                if candidates & file_set:
                    continue
                if any(f.endswith("/" + name) for f in files):
                    continue
                if "/" not in name and name in scripts_text:
                    continue  # a file a script writes
                if "*" in name or "{" in name or re.search(r"(^|/)[A-Z]{2,}[_.]|/[A-Z]{2,}/", "/" + name):
                    continue  # a pattern or a placeholder (`STEM.json`)
                problems.append(f"{page}:{number}: names `{name}`, which is not in the tree")

    crates = sorted(p.parent.name for p in (ROOT / "crates").glob("*/Cargo.toml"))
    names = {}
    for crate in crates:
        manifest = (ROOT / "crates" / crate / "Cargo.toml").read_text()
        names[crate] = re.search(r'^name\s*=\s*"([^"]+)"', manifest, re.M).group(1)
    architecture = (ROOT / "docs/architecture.md").read_text()
    for crate, name in names.items():
        if f"`{name}`" not in architecture:
            problems.append(f"docs/architecture.md does not describe crate `{name}` (crates/{crate})")
    for named in sorted(set(re.findall(r"`(agora-[a-z]+)`", architecture))):
        if named not in names.values():
            problems.append(f"docs/architecture.md names crate `{named}`, which does not exist")

    usage = subprocess.run(["bash", "-c", "./dev help 2>&1 || true"], cwd=ROOT, capture_output=True, text=True).stdout
    commands = set(re.findall(r"^  ([a-z][a-z-]*)", usage, re.M))
    if not commands:
        problems.append("./dev printed no usage to read its commands from")
    for page in pages:
        for number, line in enumerate((ROOT / page).read_text().splitlines(), 1):
            for command in re.findall(r"\./dev ([a-z][a-z-]*)", line):
                if command not in commands:
                    problems.append(f"{page}:{number}: shows `./dev {command}`, which ./dev does not have")

    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} reference(s) to things the tree does not have")
        return 1
    print(f"{len(pages)} pages checked: every file, crate and ./dev command they name exists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
