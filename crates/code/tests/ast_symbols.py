"""Reference indexer: the definitions Python's own `ast` module sees, one JSON object a line.

Walks a tree the way the AutoCodeRover family indexes a repository (every .py file, parsed with
`ast`) and prints, for every class, function and method, the fields `ponder code symbols --json`
prints: file, kind, name, qualname (Python's __qualname__ rule) and the 1-based inclusive line span
with decorators included. Files Python cannot parse are listed on stderr as `UNPARSED <file>`.

Used by the exactness test and the indexing benchmark; it is deliberately plain Python.
"""
import ast
import json
import os
import sys


def definitions(tree):
    # (node, qualname prefix, enclosing scope kind) with an explicit stack: deep files must not
    # hit Python's recursion limit in the reference either.
    out = []
    stack = [(tree, "", None)]
    while stack:
        node, prefix, scope = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                if isinstance(child, ast.ClassDef):
                    kind = "class"
                else:
                    kind = "method" if scope == "class" else "function"
                qualname = prefix + child.name
                start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                out.append(
                    {
                        "kind": kind,
                        "name": child.name,
                        "qualname": qualname,
                        "start_line": start,
                        "end_line": child.end_lineno,
                    }
                )
                if isinstance(child, ast.ClassDef):
                    stack.append((child, qualname + ".", "class"))
                else:
                    stack.append((child, qualname + ".<locals>.", "function"))
            else:
                stack.append((child, prefix, scope))
    return out


def main():
    root = sys.argv[1]
    emit = "--quiet" not in sys.argv
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            try:
                with open(path, "rb") as f:
                    source = f.read()
                tree = ast.parse(source, filename=rel)
            except (SyntaxError, ValueError, UnicodeDecodeError, MemoryError, RecursionError):
                sys.stderr.write("UNPARSED %s\n" % rel)
                continue
            for d in definitions(tree):
                count += 1
                if emit:
                    d["file"] = rel
                    sys.stdout.write(json.dumps(d, sort_keys=True) + "\n")
    if not emit:
        sys.stdout.write("%d\n" % count)


if __name__ == "__main__":
    main()
