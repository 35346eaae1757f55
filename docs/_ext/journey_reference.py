"""
Reference tables generated from the code, so ``--help`` and the docs cannot disagree.

``.. journey-options:: twisted_journey.tap.greet.Options``
    A table of a twistd plugin's options, read from an instance of its
    :class:`twisted.python.usage.Options` class: every long and short name, its default
    and its help text (``optFlags``, ``optParameters`` and ``opt_`` methods alike, as
    ``twistd PLUGIN --help`` prints them).

``.. journey-twin-options:: twisted_journey.fallback.greet:_parser``
    The same for a stdlib twin, read from the :mod:`argparse` parser the function returns;
    with a second argument, for that sub-command of the parser
    (``.. journey-twin-options:: twisted_journey.cli:_parser fetch`` for ``journey fetch``).

``.. journey-exit-codes::``
    The exit statuses of ``journey fetch``, from the mapping named by the
    ``journey_exit_codes`` setting in ``conf.py`` (one place to change if it moves).
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from journey_tables import _load, subcommandParser, tapOptionRows, twinOptionRows
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform


def _table(header: list[str], rows: list[list[str]], widths: list[int]) -> nodes.table:
    """
    A docutils table; cells are inline literals for the first column, text elsewhere.
    """
    table = nodes.table(classes=["journey-options"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    row = nodes.row()
    for title in header:
        row += nodes.entry("", nodes.paragraph(text=title))
    head += row
    body = nodes.tbody()
    group += body
    for cells in rows:
        row = nodes.row()
        for index, cell in enumerate(cells):
            if index == 0 or (index == 1 and cell):
                content: nodes.Node = nodes.paragraph("", "", nodes.literal(text=cell))
            else:
                content = nodes.paragraph(text=cell)
            row += nodes.entry("", content)
        body += row
    return table


class TapOptions(Directive):
    """
    ``.. journey-options:: dotted.path.to.Options``
    """

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        rows = tapOptionRows(_load(self.arguments[0]))
        return [_table(["option", "short", "default", "meaning"], rows, [22, 6, 12, 60])]


class TwinOptions(Directive):
    """
    ``.. journey-twin-options:: module:parser_function [sub-command]``
    """

    required_arguments = 1
    optional_arguments = 1

    def run(self) -> list[nodes.Node]:
        parser = _load(self.arguments[0])()
        if len(self.arguments) > 1:
            parser = subcommandParser(parser, self.arguments[1])
        rows = twinOptionRows(parser)
        return [_table(["option", "short", "default", "meaning"], rows, [22, 6, 12, 60])]


class ExitCodes(Directive):
    """
    ``.. journey-exit-codes::`` (the mapping is ``conf.py``'s ``journey_exit_codes``).
    """

    def run(self) -> list[nodes.Node]:
        env = self.state.document.settings.env
        codes = _load(env.config.journey_exit_codes)
        rows = [[str(code), "", "", meaning] for code, meaning in sorted(codes.items())]
        table = _table(["status", "", "", "meaning"], rows, [8, 1, 1, 80])
        return [table]


def howtoRole(
    name: str,
    rawtext: str,
    text: str,
    lineno: int,
    inliner: Any,
    options: Any = None,
    content: Any = None,
) -> tuple[list[nodes.Node], list[nodes.system_message]]:
    """
    ``:howto:`Title <topic>``` links to ``howto/topic`` when that page exists, and is plain
    text (the title) otherwise: the deployment guide names guides other branches are
    still writing, and must build before and after they land.
    """
    from sphinx.addnodes import pending_xref

    title, _, target = text.partition(" <")
    target = target.rstrip(">") or title
    env = inliner.document.settings.env
    if f"howto/{target}" not in env.found_docs:
        return [nodes.emphasis(text=title)], []
    ref = pending_xref(
        rawtext, refdomain="std", reftype="doc", reftarget=f"/howto/{target}", refexplicit=True,
        refdoc=env.docname, refwarn=True,
    )  # fmt: skip
    ref += nodes.inline(title, title, classes=["xref", "std", "std-doc"])
    return [ref], []


class ManualOptions(SphinxPostTransform):
    """
    In manual pages, each generated table becomes a list of terms and their meaning (what
    ``man`` pages use for options): the option with its short form and default, then the
    help text on its own indented lines, rather than a table squeezed into 80 columns.
    """

    default_priority = 100
    builders = ("man",)

    def run(self, **kwargs: Any) -> None:
        for table in list(self.document.findall(nodes.table)):
            if "journey-options" not in table["classes"]:
                continue
            items = nodes.definition_list()
            for row in table.findall(nodes.row):
                if isinstance(row.parent, nodes.thead):
                    continue
                cells = [entry.astext() for entry in row.findall(nodes.entry)]
                name, short, default, meaning = cells
                term = nodes.term()
                term += nodes.strong(text=name)
                if short:
                    term += nodes.Text(", ")
                    term += nodes.strong(text=short)
                if default:
                    term += nodes.Text(f" [{default}]")
                definition = nodes.definition("", nodes.paragraph(text=meaning))
                items += nodes.definition_list_item("", term, definition)
            table.replace_self(items)


def setup(app: Sphinx) -> dict[str, Any]:
    """
    Register the directives and the ``journey_exit_codes`` setting.
    """
    app.add_config_value("journey_exit_codes", "twisted_journey.fetch.errors.EXIT_CODES", "env")
    app.add_directive("journey-options", TapOptions)
    app.add_directive("journey-twin-options", TwinOptions)
    app.add_directive("journey-exit-codes", ExitCodes)
    app.add_role("howto", howtoRole)
    app.add_post_transform(ManualOptions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
