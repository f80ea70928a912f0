"""Size and shape of the code the runtime's rules cover (issue 15): functions over ~40 lines, modules over
~400, the median function length, in services/ and crmhub/core.

    python tools/code_size.py            # the figures and the offenders
    python tools/code_size.py --check    # exit 1 when a limit is passed (outside the files being rewritten)
"""

from __future__ import annotations

import argparse
import ast
import statistics
import sys
from pathlib import Path

ROOTS = ("services", "crmhub/core")
MAX_FUNCTION, MAX_MODULE, MAX_MEDIAN = 40, 400, 10
# being rewritten in parallel (issue 14 and the notifier's state machine): reported, not checked
EXEMPT = ("crmhub/core/migrations/",)


def functions(tree: ast.AST) -> list[tuple[str, int, int]]:
    """(name, first line, length in lines) of every function, nested ones included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            end = node.end_lineno or node.lineno
            found.append((node.name, node.lineno, end - node.lineno + 1))
    return found


def survey(base: Path) -> tuple[list[int], list[str], list[str]]:
    lengths: list[int] = []
    long_functions: list[str] = []
    long_modules: list[str] = []
    for root in ROOTS:
        for path in sorted((base / root).rglob("*.py")):
            rel = path.relative_to(base).as_posix()
            text = path.read_text()
            if len(text.splitlines()) > MAX_MODULE:
                long_modules.append(f"{rel}: {len(text.splitlines())} lines")
            for name, line, length in functions(ast.parse(text)):
                lengths.append(length)
                if length > MAX_FUNCTION:
                    long_functions.append(f"{rel}:{line} {name}: {length} lines")
    return lengths, long_functions, long_modules


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    lengths, long_functions, long_modules = survey(Path(__file__).resolve().parent.parent)
    median = statistics.median(lengths)
    print(f"{len(lengths)} functions in {', '.join(ROOTS)}: median {median} lines, max {max(lengths)}")
    print(f"functions over {MAX_FUNCTION} lines: {len(long_functions)}")
    print("\n".join(f"  {f}" for f in long_functions))
    print(f"modules over {MAX_MODULE} lines: {len(long_modules)}")
    print("\n".join(f"  {m}" for m in long_modules))
    checked = [o for o in long_functions + long_modules if not o.startswith(EXEMPT)]
    if args.check and (checked or median >= MAX_MEDIAN):
        print(f"over the limits (outside {', '.join(EXEMPT)}): {len(checked)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
