"""Was anything lost when the README's text moved into docs/? (issue 34; a one-off check,
kept for the next move.)

    .venv/bin/python tools/readme_moved.py OLD_README

Splits OLD_README into paragraphs, list items, table rows and code blocks, and prints each
one found nowhere in docs/ (the pages as the site renders them, generated blocks included) nor
in the current README.md, whitespace and heading levels aside. Exit 1 if any is missing.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
import docs_hooks  # noqa: E402


def norm(text: str) -> str:
    text = re.sub(r"^#+ ", "", text, flags=re.M)
    return re.sub(r"\s+", " ", text).strip()


def pieces(markdown: str) -> list[str]:
    out: list[str] = []
    for block in re.split(r"\n\s*\n", markdown):
        if block.lstrip().startswith("```") or block.lstrip().startswith("|"):
            out += [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("```")]
        elif re.match(r"\s*[-*] |\s*\d+\. ", block):
            out += [i for i in re.split(r"\n(?=\s*(?:[-*]|\d+\.) )", block) if i.strip()]
        else:
            out.append(block)
    return [p for p in out if norm(p)]


def haystack() -> str:
    pages = [
        docs_hooks.render(p.read_text(encoding="utf-8"))
        for p in sorted((ROOT / "docs").rglob("*.md"))
    ]
    return norm("\n".join([*pages, (ROOT / "README.md").read_text(encoding="utf-8")]))


def main(old_readme: str) -> int:
    have = haystack()
    missing = [
        p for p in pieces(Path(old_readme).read_text(encoding="utf-8")) if norm(p) not in have
    ]
    for p in missing:
        print("---- not found:\n" + p)
    print(f"{len(missing)} piece(s) of {old_readme} not found in docs/ or README.md")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
