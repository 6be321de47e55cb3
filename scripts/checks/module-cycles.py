#!/usr/bin/env python3
"""Fails when the modules of a crate import each other in a cycle.

A module is a file under crates/*/src (`a/mod.rs` and `a.rs` are module `a`). An edge A -> B is a
path in A that names B: `crate::b::Item`, `super::b::Item`, `use crate::{b::Item, ...}`. A path
into one of A's own ancestors does not count (a child uses its parent's namespace all the time;
the parent re-exporting a child is not a layering choice), and neither does code under
`#[cfg(test)]`. Everything else must form a DAG, so each module sits above or below every
other it touches and can be read without reading its dependants first.

Written by hand: the tools that compute a crate's module graph (cargo-modules) build on
rust-analyzer and take longer to compile than the whole workspace; this needs a regex.
Usage: scripts/checks/module-cycles.py [crate dir...]   (default: every crate)
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def module_of(src: Path, file: Path) -> tuple:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    if parts in (["lib"], ["main"]):
        return ()
    if parts and parts[0] == "bin":
        return None  # binaries under src/bin are crates of their own
    return tuple(parts)


def without_tests(text: str) -> str:
    cut = re.search(r"^#\[cfg\(test\)\]\s*\n\s*mod \w+ \{", text, re.M)
    return text[: cut.start()] if cut else text


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def split_group(body: str) -> list:
    items, depth, current = [], 0, ""
    for char in body:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    return [item.strip() for item in items if item.strip()]


def paths_after(text: str, start: int) -> list:
    """Path segment lists that follow position `start` (just past `crate::` or `super::`)."""
    if text[start:start + 1] == "{":
        depth, end = 0, start
        for end in range(start, len(text)):
            if text[end] == "{":
                depth += 1
            elif text[end] == "}":
                depth -= 1
                if depth == 0:
                    break
        result = []
        for item in split_group(text[start + 1:end]):
            head = re.match(r"[\w:]*", item).group(0).strip(":")
            segments = [s for s in head.split("::") if s]
            if "{" in item and segments:
                result.append(segments)  # b::{x, y}: b is what matters
            elif segments:
                result.append(segments)
        return result
    match = re.match(r"(\w+(?:::\w+)*)", text[start:])
    return [match.group(1).split("::")] if match else []


def references(module: tuple, text: str) -> list:
    found = []
    for match in re.finditer(r"\bcrate::", text):
        for segments in paths_after(text, match.end()):
            found.append(tuple(segments))
    for match in re.finditer(r"\b((?:super::)+)", text):
        # `use` inside a file module: super is the parent module.
        up = match.group(1).count("super::")
        base = module[: len(module) - up] if up <= len(module) else ()
        for segments in paths_after(text, match.end()):
            found.append(base + tuple(segments))
    return found


def resolve(modules: set, path: tuple):
    for length in range(len(path), -1, -1):
        if path[:length] in modules:
            return path[:length]
    return ()


def cycles(graph: dict) -> list:
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for next_node in graph.get(node, ()):
            if next_node not in index:
                visit(next_node)
                low[node] = min(low[node], low[next_node])
            elif next_node in on_stack:
                low[node] = min(low[node], index[next_node])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    sys.setrecursionlimit(10000)
    for node in list(graph):
        if node not in index:
            visit(node)
    return result


def check(crate: Path) -> list:
    src = crate / "src"
    files = {}
    for file in sorted(src.rglob("*.rs")):
        module = module_of(src, file)
        if module is not None:
            files[module] = file
    modules = set(files)
    graph, evidence = {}, {}
    for module, file in files.items():
        text = strip_comments(without_tests(file.read_text()))
        for path in references(module, text):
            target = resolve(modules, path)
            if target == module or module[: len(target)] == target:
                continue
            graph.setdefault(module, set()).add(target)
            evidence.setdefault((module, target), "::".join(path))
    problems = []
    name = lambda module: "::".join(module) or "(root)"
    for component in cycles(graph):
        members = set(component)
        edges = [
            f"    {name(a)} -> {name(b)}  ({evidence[(a, b)]})"
            for a in component for b in sorted(graph.get(a, ())) if b in members
        ]
        problems.append(f"{crate.name}: modules import each other: {', '.join(map(name, component))}\n" + "\n".join(edges))
    return problems


def main() -> int:
    crates = [Path(arg) for arg in sys.argv[1:]] or sorted((ROOT / "crates").iterdir())
    problems = [problem for crate in crates if (crate / "src").is_dir() for problem in check(crate)]
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} import cycle(s); move what both sides need below both (docs/architecture.md, 'Layers')")
        return 1
    print(f"no import cycle among the modules of {len(crates)} crates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
