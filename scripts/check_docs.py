"""The README's summary and its evidence cannot drift apart: ``python scripts/check_docs.py [ROOT]``.

Checks, and prints one line per failure (exit 1 if any):
1. every number quoted in the README's results summary (the table between ``<!-- summary:start -->`` and
   ``<!-- summary:end -->``) appears, written the same way, on the docs page its row links;
2. no user document (README.md, docs/**/*.md) names an issue number;
3. every relative link of the README and of the docs pages points to a file that exists.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
ISSUE = re.compile(r"(?<![\w&/])#\d+\b|\bissues? #?\d+\b", re.I)


def numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in NUMBER.findall(text)}


def summary_rows(readme: str) -> list[list[str]]:
    if "<!-- summary:start -->" not in readme or "<!-- summary:end -->" not in readme:
        return []
    table = readme.split("<!-- summary:start -->", 1)[1].split("<!-- summary:end -->", 1)[0]
    rows = [r.strip() for r in table.strip().splitlines() if r.strip().startswith("|")]
    return [[c.strip() for c in r.strip("|").split("|")] for r in rows[2:]]  # after the header and its rule


def check(root: Path) -> list[str]:
    root = Path(root)
    readme_p = root / "README.md"
    readme = readme_p.read_text()
    problems = []
    rows = summary_rows(readme)
    if not rows:
        problems.append("README.md: no results summary table between <!-- summary:start --> and <!-- summary:end -->")
    for row in rows:
        links = LINK.findall(row[-1])
        if not links:
            problems.append(f"README.md summary row {row[0]!r}: its last cell links no page")
            continue
        page = (root / links[0])
        if not page.is_file():
            problems.append(f"README.md summary row {row[0]!r}: {links[0]} does not exist")
            continue
        have = numbers(page.read_text())
        for n in sorted(numbers(" ".join(row[:-1])) - have):
            problems.append(f"README.md summary row {row[0]!r}: {n} is not on {links[0]}")
    docs = [readme_p] + sorted((root / "docs").rglob("*.md"))
    for p in docs:
        text = p.read_text()
        for m in ISSUE.finditer(text):
            problems.append(f"{p.relative_to(root)}: names an issue ({m.group(0)!r}); user documents speak of the tool")
        for target in LINK.findall(text):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (p.parent / target).exists():
                problems.append(f"{p.relative_to(root)}: link to {target} points to nothing")
    return problems


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[1]
    problems = check(root)
    for line in problems:
        print(line)
    print(f"{len(problems)} problems" if problems else "docs check: the summary's numbers are on their pages, no "
          "issue numbers, every link resolves")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
