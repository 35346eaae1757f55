"""
Resolve the short names docstrings use, the way a reader would.

Docstrings in this project name Twisted's and our own classes the way Twisted's own
docstrings do: ``:class:`IReactorTime```, ``:class:`FetchError```, ``usage.UsageError``;
and autodoc renders a zope interface in a signature as ``<InterfaceClass a.b.IName>``.
When Sphinx cannot resolve such a reference, this extension looks the name up as a dotted
suffix of every Python object known to this site and to the intersphinx inventories, and
links it when exactly one object matches (ours first, then Twisted's, then Python's).  An
ambiguous or unknown name stays unresolved, so ``sphinx-build -n`` still reports it.
"""

from __future__ import annotations

import re
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.nodes import make_refnode

_INTERFACE = re.compile(r"^<InterfaceClass ([\w.]+)>$")


def _candidates(name: str, names: list[str]) -> list[str]:
    suffix = "." + name
    return [n for n in names if n == name or n.endswith(suffix)]


def missingReference(
    app: Sphinx, env: Any, node: Any, contnode: nodes.Element
) -> nodes.reference | None:
    """
    Link an unresolved ``py`` reference to the one object whose dotted name ends with it.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    match = _INTERFACE.match(target.removesuffix(" | None"))
    if match:
        target = match.group(1)
    target = target.lstrip("~.")
    if target.endswith(" | None"):  # an optional interface, rendered from a type hint
        target = _INTERFACE.sub(r"\1", target[: -len(" | None")])
    domain = env.get_domain("py")
    ours = _candidates(target, list(domain.objects))
    if len(ours) == 1:
        entry = domain.objects[ours[0]]
        return make_refnode(
            app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, ours[0]
        )
    if ours:
        return None
    inventory = getattr(env, "intersphinx_inventory", {})
    found: dict[str, tuple[str, str]] = {}
    for objtype, entries in inventory.items():
        if not objtype.startswith("py:"):
            continue
        for full in _candidates(target, list(entries)):
            item = entries[full]
            if hasattr(item, "project_name"):  # Sphinx >= 9
                found.setdefault(full, (item.project_name, item.uri))
            else:
                found.setdefault(full, (item[0], item[2]))
    if not found:
        return None
    # Prefer Twisted's over Python's when both have the name (e.g. a re-export).
    for project in ("Twisted", "Python"):
        hits = sorted(n for n, (p, _) in found.items() if p == project)
        if len(hits) == 1:
            reference = nodes.reference("", "", internal=False, refuri=found[hits[0]][1])
            reference["reftitle"] = hits[0]
            if match and isinstance(contnode, nodes.Element):
                contnode = nodes.literal(hits[0].rsplit(".", 1)[-1], hits[0].rsplit(".", 1)[-1])
            reference.append(contnode)
            return reference
        if hits:
            return None
    return None


def documentConstants(
    app: Sphinx, what: str, name: str, obj: object, skip: bool, options: Any
) -> bool | None:
    """
    Document a module's public constants (``RESOLVE``, ``DEFAULT_GREETING``) even without a
    doc comment: autodoc drops a ``str`` or ``bytes`` constant otherwise, and docstrings
    refer to them by name.  (Where a module has ``__all__``, only its names get here.)
    """
    if what == "module" and name.isupper() and not name.startswith("_"):
        return False
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    """
    Register the resolver after intersphinx's own (which handles exact names).
    """
    app.connect("missing-reference", missingReference, priority=900)
    app.connect("autodoc-skip-member", documentConstants)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
