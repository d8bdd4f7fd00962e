"""Static checks shared by the site tests: every href/src resolves inside the site, offline."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class PageLinks(HTMLParser):
    """Collect every href/src, every id, the script elements and the text of one page (the
    reader's text: not the inline style sheet)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []
        self.ids: set[str] = set()
        self.scripts: list[dict] = []
        self.text: list[str] = []
        self._in_script: dict | None = None
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("href", "src"):
            if key in a:
                self.links.append((tag, a[key]))
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "script":
            self._in_script = {"attrs": a, "body": ""}
        self._in_style = self._in_style or tag == "style"

    def handle_endtag(self, tag):
        if tag == "script" and self._in_script is not None:
            self.scripts.append(self._in_script)
            self._in_script = None
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_script is not None:
            self._in_script["body"] += data
        elif not self._in_style:
            self.text.append(data)


def parse(path: Path) -> PageLinks:
    p = PageLinks()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def broken_links(site: Path) -> tuple[list[str], int]:
    """(problems, number of links checked) over every page of ``site``."""
    pages = sorted(site.rglob("*.html"))
    parsed = {p.resolve(): parse(p) for p in pages}
    problems, checked = [], 0
    root = site.resolve()
    for page, info in parsed.items():
        rel = page.relative_to(root)
        for tag, link in info.links:
            checked += 1
            parts = urlsplit(link)
            if parts.scheme or parts.netloc:
                problems.append(f"{rel}: external {tag} {link}")
                continue
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if root not in target.parents or not target.is_file():
                problems.append(f"{rel}: broken {tag} {link}")
                continue
            if parts.fragment and unquote(parts.fragment) not in parsed[target].ids:
                problems.append(f"{rel}: missing #{parts.fragment} in {target.relative_to(root)}")
        for script in info.scripts:
            if "src" in script["attrs"]:
                problems.append(f"{rel}: external script {script['attrs']['src']}")
    return problems, checked
