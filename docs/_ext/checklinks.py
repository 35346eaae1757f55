"""
Check every link inside the built HTML site: each relative ``href`` names a file that
exists and, when it has a ``#fragment``, an element with that ``id`` in it.

Run: ``python docs/_ext/checklinks.py docs/_build/html`` (``.ci/run`` does, after
``sphinx-build``).  Links to other sites are not followed (CI has no network); intersphinx
links into Twisted's and Python's documentation are checked by ``sphinx-build -n`` against
the vendored inventories instead.  Exits 1, listing the broken links, if any is broken.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    """
    Collects a page's ids and the targets of its links.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"] or "")
        if tag == "a" and values.get("name"):
            self.ids.add(values["name"] or "")
        if tag in ("a", "link") and values.get("href"):
            self.links.append(values["href"] or "")
        if tag in ("img", "script") and values.get("src"):
            self.links.append(values["src"] or "")


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(errors="replace"))
    return page


def broken(root: Path) -> list[str]:
    """
    ``"page: link"`` for every internal link under ``root`` that leads nowhere.
    """
    pages = {p: _parse(p) for p in root.rglob("*.html")}
    problems = []
    for path, page in sorted(pages.items()):
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:")):
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{path.relative_to(root)}: {link}")
                continue
            if parts.fragment and target.suffix == ".html":
                ids = (pages.get(target) or _parse(target)).ids
                if unquote(parts.fragment) not in ids:
                    problems.append(f"{path.relative_to(root)}: {link} (no such anchor)")
    return problems


def main(argv: list[str]) -> int:
    """
    Check the site built in ``argv[1]``; print what is broken.
    """
    root = Path(argv[1] if len(argv) > 1 else "docs/_build/html").resolve()
    if not (root / "index.html").exists():
        print(f"checklinks: no built site in {root}", file=sys.stderr)
        return 1
    problems = broken(root)
    for problem in problems:
        print(f"broken link: {problem}")
    print(f"checklinks: {len(problems)} broken link(s) in {root}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
