#!/usr/bin/env python3
"""The house rules that keep the code readable, checked (run by integration/run-tests.sh):

* no file under src/ holds more than 600 lines of non-test code (a `#[cfg(test)]` module
  at the end of a file is test code, and so are files under a `tests` directory);
* no function in src/ is longer than 80 lines (signature to closing brace);
* no import circles between modules (a cycle of any length, found as strongly
  connected components: `crate::a::…` used in `a`'s files and so on, for the top-level
  modules and, inside `server` and `client`, their submodules);
* the module map at the top of src/lib.rs names every module of the crate, each
  `a::b` it names exists, and each module's line ends with "Calls:" and exactly the
  top-level modules its non-test code imports ("Calls: nothing." for none).

Prints each violation with its file and line and exits 1 if there is any."""
import os
import re
import sys
from collections import defaultdict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "src")
MAX_FILE = 600
MAX_FN = 80


def rust_files():
    for dirpath, _, names in os.walk(SRC):
        for n in sorted(names):
            if n.endswith(".rs"):
                yield os.path.join(dirpath, n)


def code_lines(text):
    """The lines before the file's test module (`#[cfg(test)]` followed by `mod`)."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.strip() == "#[cfg(test)]":
            nxt = next((l for l in lines[i + 1:] if l.strip()), "")
            if re.match(r"\s*(pub(\(crate\))? )?mod \w+", nxt):
                return lines[:i]
    return lines


FN_RE = re.compile(r"^(\s*)(pub(\([^)]*\))? )?(const )?(async )?(unsafe )?(extern \"C\" )?fn (\w+)")


def long_functions(path, lines):
    out = []
    i = 0
    while i < len(lines):
        m = FN_RE.match(lines[i])
        if not m:
            i += 1
            continue
        indent = m.group(1)
        name = m.group(8)
        # Find the body's closing brace at the same indentation.
        j = i
        while j < len(lines) and not lines[j].rstrip().endswith("{") and not lines[j].rstrip().endswith(";"):
            j += 1
        if j < len(lines) and lines[j].rstrip().endswith(";"):
            i = j + 1
            continue
        k = j + 1
        while k < len(lines) and lines[k].rstrip() != indent + "}":
            k += 1
        length = k - i + 1
        if length > MAX_FN:
            out.append((i + 1, name, length))
        i = k + 1
    return out


def module_of(path):
    rel = os.path.relpath(path, SRC)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel in (["lib"], ["main"]) or rel[0] == "bin":
        return None
    return rel


def unit(parts):
    """The unit an import circle is checked between: top-level modules, and the
    submodules of server and client."""
    if parts[0] in ("server", "client") and len(parts) > 1:
        return "::".join(parts[:2])
    return parts[0]


def imports(text, own):
    found = set()
    for m in re.finditer(r"crate::((?:\w+)(?:::\w+)?)", text):
        parts = m.group(1).split("::")
        found.add(unit(parts) if parts[0] in ("server", "client") else parts[0])
    if own[0] in ("server", "client"):
        for m in re.finditer(r"\bsuper::(\w+)", text):
            found.add(f"{own[0]}::{m.group(1)}")
    return found


def circles(edges):
    """Each strongly connected component of more than one module, as a path through it
    (Tarjan's algorithm, iterative)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
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
    return out


def check_map(header, modules, top_imports):
    """The map's lines (`//! * `name` — … Calls: …`) against the code."""
    problems = []
    listed = "\n".join(l for l in header.split("\n") if l.startswith("//! * `"))
    for name in sorted(set(re.findall(r"`((?:\w+)(?:::\w+)+)`", listed))):
        parts = name.split("::")
        if parts[0] not in modules:
            continue
        base = os.path.join(SRC, *parts)
        if not (os.path.isfile(base + ".rs") or os.path.isdir(base)):
            problems.append(f"src/lib.rs: the module map names `{name}`, which does not exist")
    lines = {}
    for line in header.split("\n"):
        m = re.match(r"//! \* `(\w+)` — .*", line)
        if m:
            lines[m.group(1)] = line
    for m in sorted(modules):
        line = lines.get(m)
        if line is None:
            problems.append(f"src/lib.rs: the module map has no line `//! * `{m}` — …`")
            continue
        calls = re.search(r"Calls: (.*)\.$", line)
        if not calls:
            problems.append(f"src/lib.rs: the map's line for `{m}` does not end with \"Calls: ….\"")
            continue
        said = set() if calls.group(1) == "nothing" else set(re.findall(r"`(\w+)`", calls.group(1)))
        real = top_imports.get(m, set()) & modules
        for x in sorted(real - said):
            problems.append(f"src/lib.rs: `{m}` calls `{x}`, which its map line does not list")
        for x in sorted(said - real):
            problems.append(f"src/lib.rs: the map says `{m}` calls `{x}`, which it does not")
    return problems


def main():
    problems = []
    edges = defaultdict(set)
    top_imports = defaultdict(set)
    modules = set()
    for path in rust_files():
        rel = os.path.relpath(path, ROOT)
        with open(path) as f:
            text = f.read()
        code = code_lines(text)
        if os.sep + "tests" + os.sep not in path:
            n = len(code)
            if n > MAX_FILE:
                problems.append(f"{rel}: {n} lines of non-test code (at most {MAX_FILE})")
            for line, name, length in long_functions(path, code):
                problems.append(f"{rel}:{line}: fn {name} is {length} lines (at most {MAX_FN})")
        parts = module_of(path)
        if parts is None:
            continue
        modules.add(parts[0])
        top_imports[parts[0]] |= {i.split("::")[0] for i in imports("\n".join(code), parts)
                                  if i.split("::")[0] != parts[0]}
        me = unit(parts)
        for other in imports("\n".join(code), parts):
            if other != me and not other.startswith(me + "::") and not me.startswith(other + "::"):
                edges[me].add(other)
    for circle in circles(edges):
        problems.append("import circle: " + " -> ".join(circle + circle[:1]))
    with open(os.path.join(SRC, "lib.rs")) as f:
        lib = f.read()
    header = "\n".join(l for l in lib.split("\n") if l.startswith("//!"))
    for m in sorted(modules):
        if not re.search(rf"`{m}(::\w+)*`", header):
            problems.append(f"src/lib.rs: the module map does not name `{m}`")
    problems += check_map(header, modules, top_imports)
    for p in problems:
        print(p)
    if problems:
        print(f"check-layout: {len(problems)} problem(s)")
        return 1
    print("check-layout: files, functions, imports and the module map are in order")
    return 0


sys.exit(main())
