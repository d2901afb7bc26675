#!/usr/bin/python3
"""Checks the runtime's layering on the built objects (nm), not on the sources.

Usage: check_layers.py BUILD_DIR [--known FILE] [--graph]

Each layer is one static library, libmw_<layer>.a, listed bottom-up in LAYERS with the layers
it may use. For every object file we read the symbols it defines and the ones it needs, which
gives a graph of calls between files. The check fails when
  - a file calls a function (or reads a variable) defined in a layer it may not use, or
  - a group of files calls each other in a circle (a strongly connected component of more
    than one file), inside one layer or across layers,
unless the edge is listed in the --known file (the debt still being paid off: that list only
shrinks, and an entry that no longer occurs also fails the check, so it gets deleted).
"""
import argparse
import os
import subprocess
import sys

LAYERS = ["base", "net", "store", "hub", "vm", "app"]
USES = {
    "base": set(),
    "net": {"base"},
    "store": {"base"},
    "hub": {"base", "net", "store"},
    "vm": {"base", "net", "store", "hub"},
    "app": {"base", "net", "store", "hub", "vm"},
}


def read_library(path, layer, defines, needs, layer_of):
    """nm -A libmw_LAYER.a: 'lib.a:file.c.o:ADDR T name' or 'lib.a:file.c.o:         U name'."""
    out = subprocess.run(["nm", "-A", path], capture_output=True, text=True, check=True).stdout
    prefix = path + ":"
    for line in out.splitlines():
        if not line.startswith(prefix):
            continue
        obj, _, rest = line[len(prefix):].partition(":")
        name = obj.split(".")[0]  # mw_conn.c.o -> mw_conn
        layer_of[name] = layer
        parts = rest.split()
        if len(parts) == 2 and parts[0] == "U":
            needs.setdefault(name, set()).add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDBRC":  # global text, data, bss, read-only, common
            defines[parts[2]] = name
        needs.setdefault(name, set())


def call_graph(build_dir):
    defines, needs, layer_of = {}, {}, {}
    for layer in LAYERS:
        path = os.path.join(build_dir, f"libmw_{layer}.a")
        if not os.path.exists(path):
            sys.exit(f"check_layers: {path} not found: build the project first")
        read_library(path, layer, defines, needs, layer_of)
    edges = {}
    for name, symbols in needs.items():
        for sym in symbols:
            target = defines.get(sym)
            if target and target != name:
                edges.setdefault(name, {}).setdefault(target, set()).add(sym)
    return edges, layer_of


def cycles(nodes, edges):
    """Strongly connected components with more than one file (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = [0]
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, {}))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def read_known(path):
    known = set()
    if path and os.path.exists(path):
        for line in open(path):
            line = line.split("#", 1)[0].strip()
            if line:
                a, _, b = line.partition("->")
                known.add((a.strip(), b.strip()))
    return known


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build_dir")
    ap.add_argument("--known", help="file of 'mw_a -> mw_b' edges still allowed (being removed)")
    ap.add_argument("--graph", action="store_true", help="print every file's calls by layer")
    args = ap.parse_args()

    edges, layer_of = call_graph(args.build_dir)
    known = read_known(args.known)
    if args.graph:
        for name in sorted(edges, key=lambda n: (LAYERS.index(layer_of[n]), n)):
            targets = ", ".join(f"{t} ({layer_of[t]})" for t in sorted(edges[name]))
            print(f"{layer_of[name]:>5} {name} -> {targets}")

    problems, used_known = [], set()
    for name, targets in sorted(edges.items()):
        for target, symbols in sorted(targets.items()):
            mine, theirs = layer_of[name], layer_of[target]
            if theirs != mine and theirs not in USES[mine]:
                if (name, target) in known:
                    used_known.add((name, target))
                    continue
                problems.append(f"upward call: {name} ({mine}) uses {target} ({theirs}): "
                                f"{', '.join(sorted(symbols)[:4])}")
    for component in cycles(set(layer_of), edges):
        inner = {(a, b) for a in component for b in edges.get(a, {}) if b in component}
        if inner <= known:
            used_known |= inner
            continue
        problems.append("files calling each other in a circle: " + " <-> ".join(component) +
                        "  (" + "; ".join(f"{a} -> {b}" for a, b in sorted(inner - known)) + ")")
    for stale in sorted(known - used_known):
        problems.append(f"listed in {args.known} but no longer needed, delete the line: "
                        f"{stale[0]} -> {stale[1]}")
    if used_known:
        print(f"{len(used_known)} known edge(s) still to remove (see {args.known})")
    for p in problems:
        print(p)
    if problems:
        print(f"layer check: {len(problems)} problem(s)")
        return 1
    print(f"layer check: {len(layer_of)} files in {len(LAYERS)} layers, no upward call, no circle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
