#!/usr/bin/env python3
"""The architecture check: imports in src/ go one way, down the layers, with no circle.

Layers (docs/architecture.md), a module may import its own layer's other modules and any lower
layer, never a higher one:

    4  main, lib, startup                  the process: wiring and start-up
    3  http, cli, doctor                   the ways in
    2  service, state, audit               the use cases and their context
    1  config, db, auth, crypto, authz,    the rooms below the use cases
       limits, infra, telemetry, error
    0  domain                              pure types, no I/O

Every `use crate::...` path and every inline `crate::...` path outside `#[cfg(test)]` modules is
an edge between files (a file is its module: `db/mod.rs` is `db`). The check fails on:
  - an edge from a lower layer to a higher one;
  - a circle of files (a strongly connected component of more than one file);
  - a top-level module that is in no layer (a new room must be placed before it is used);
  - an import by a module held to a narrower rule than its layer (`ONLY`) of a module outside
    its list: `config` imports only `domain`, whatever else layer 1 holds.

Where the code does not yet have this shape, `tools/arch-baseline.txt` lists the known upward
edges and circles. The check fails on anything not listed, and on a listed entry that no longer
occurs (remove it: the baseline only shrinks). With no baseline file, nothing is excused.

Usage: tools/archcheck.py [SRC_DIR] [--baseline FILE] [--write-baseline]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import defaultdict

LAYERS: dict[str, int] = {
    "domain": 0,
    **{m: 1 for m in (
        "config", "db", "auth", "crypto", "authz", "limits", "infra", "telemetry", "error",
    )},
    **{m: 2 for m in ("service", "state", "audit")},
    **{m: 3 for m in ("http", "cli", "doctor")},
    **{m: 4 for m in ("main", "lib", "startup")},
}

# Narrower than the layers: these modules may import only the listed ones (and their own files).
# `config` types settings into domain values; it knows nothing of the rooms that use them.
ONLY: dict[str, set[str]] = {
    "config": {"domain"},
}

TEST_MODULE = re.compile(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{")
USE = re.compile(r"\buse\s+(crate|super|self)(::[^;]*);", re.S)
INLINE = re.compile(r"\bcrate((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
# Strings, character literals and comments, in one pass (a `//` inside a string is not a comment).
LITERALS = re.compile(
    r'r(#*)".*?"\1|b?"(?:\\.|[^"\\])*"|b?\'(?:\\.|[^\'\\])\'|//[^\n]*|/\*.*?\*/', re.S
)


def modules(src: str) -> dict[str, str]:
    """Module path (`db/users`) -> file, for every .rs file under src."""
    found = {}
    for d, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(d, f)
            name = os.path.relpath(path, src)[:-3].replace(os.sep, "/")
            if name == "mod" or name.endswith("/mod"):
                name = name[: -len("/mod")] if "/" in name else ""
            found[name] = path
    return found


def strip_tests(text: str) -> str:
    """The file without its `#[cfg(test)] mod x { ... }` blocks (matched by brace depth)."""
    out, pos = [], 0
    for m in TEST_MODULE.finditer(text):
        if m.start() < pos:
            continue
        out.append(text[pos : m.start()])
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        pos = i
    out.append(text[pos:])
    return "".join(out)


def expand(tree: str) -> list[str]:
    """`a::{b, c::{d, e}}` -> [`a::b`, `a::c::d`, `a::c::e`] (a use tree, spaces removed)."""
    tree = re.sub(r"\s+", "", tree)
    i = tree.find("{")
    if i < 0:
        return [re.sub(r"as\w+$", "", tree)] if tree else []
    prefix, inner = tree[:i], tree[i + 1 : tree.rfind("}")]
    parts, depth, start = [], 0, 0
    for j, ch in enumerate(inner):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(inner[start:j])
            start = j + 1
    parts.append(inner[start:])
    out = []
    for p in parts:
        if p in ("", "self"):
            out.append(prefix.rstrip(":"))
        else:
            out.extend(prefix + e for e in expand(p))
    return out


def resolve(path: list[str], mods: dict[str, str]) -> str | None:
    """The longest module that is a prefix of the path."""
    for n in range(len(path), 0, -1):
        name = "/".join(path[:n])
        if name in mods:
            return name
    return None


def edges(src: str) -> dict[str, set[str]]:
    mods = modules(src)
    graph: dict[str, set[str]] = defaultdict(set)
    for name, file in mods.items():
        with open(file, encoding="utf-8") as f:
            text = strip_tests(f.read())
        text = LITERALS.sub(" ", text)
        own = name.split("/") if name else []
        # `self` is the file's own module (`db/mod.rs` is `db`), `super` its parent.
        if name in ("lib", "main"):
            own = []
        paths = []
        for m in USE.finditer(text):
            root = {"crate": [], "super": own[:-1], "self": own}[m.group(1)]
            for p in expand(m.group(2).lstrip(":")):
                paths.append(root + [s for s in p.split("::") if s])
        for m in INLINE.finditer(text):
            paths.append([s for s in m.group(1).split("::") if s])
        for p in paths:
            target = resolve(p, mods)
            if target is None or target == name or name.startswith(target + "/"):
                continue  # the crate root, the file itself, or its own parent module
            graph[name].add(target)
    for name in mods:
        graph.setdefault(name, set())
    return graph


def top(name: str) -> str:
    return name.split("/")[0] if name else "lib"


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one file (Tarjan, iterative)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out)


def findings(src: str) -> list[str]:
    """Every breach of the layering, one line each, sorted."""
    graph = edges(src)
    out = set()
    for name, targets in graph.items():
        layer = LAYERS.get(top(name))
        if layer is None:
            out.add(f"unplaced {top(name)}")
            continue
        allowed = ONLY.get(top(name))
        for t in targets:
            tl = LAYERS.get(top(t))
            if tl is not None and tl > layer:
                out.add(f"upward {name} -> {t}")
            elif allowed is not None and top(t) not in allowed | {top(name)}:
                out.add(f"narrow {name} -> {t}")
    for comp in circles(graph):
        out.add("circle " + " ".join(comp))
    return sorted(out)


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", nargs="?", default=os.path.join(here, "..", "src"))
    ap.add_argument("--baseline", default=os.path.join(here, "arch-baseline.txt"))
    ap.add_argument("--write-baseline", action="store_true")
    args = ap.parse_args()
    found = findings(args.src)
    if args.write_baseline:
        with open(args.baseline, "w", encoding="utf-8") as f:
            f.write("# Known breaches of the layering (tools/archcheck.py); this list only shrinks.\n")
            f.writelines(line + "\n" for line in found)
        print(f"{len(found)} entries written to {args.baseline}")
        return 0
    known = set()
    if os.path.exists(args.baseline):
        with open(args.baseline, encoding="utf-8") as f:
            known = {l.strip() for l in f if l.strip() and not l.startswith("#")}
    new = [f for f in found if f not in known]
    gone = sorted(known - set(found))
    for f in new:
        print(f"NEW  {f}")
    for f in gone:
        print(f"GONE {f} (fixed: remove it from {os.path.basename(args.baseline)})")
    print(f"architecture: {len(found)} breaches, {len(found) - len(new)} known, {len(new)} new, {len(gone)} fixed")
    return 1 if new or gone else 0


if __name__ == "__main__":
    sys.exit(main())
