"""MkDocs hooks: pages pull text from the code, so the docs cannot drift from it.

- A line ``<!-- docstring: dotted.path.Object -->`` in a page is replaced by that object's docstring
  (``inspect.getdoc``), written as Markdown. ``docs/environment.md`` uses it for ``SpepEnv``.
- Sphinx roles left in docstrings (``:class:`x```, ``:meth:``, ``:func:``...) become links to the API
  reference where the object is documented there, and plain code otherwise.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

MARKER = re.compile(r"^<!-- docstring: ([\w.]+) -->$", re.MULTILINE)
ROLE = re.compile(r":(?:class|meth|func|data|mod|attr|obj|exc):<code>(~?)([\w.]+)</code>")


def docstring(path: str) -> str:
    """The docstring of the object at dotted ``path`` (module, then attributes)."""
    module_name, _, attr = path.rpartition(".")
    obj: Any = importlib.import_module(module_name)
    obj = getattr(obj, attr)
    doc = inspect.getdoc(obj)
    if not doc:
        raise ValueError(f"{path} has no docstring to insert")
    return doc


def role_to_autoref(match: re.Match[str]) -> str:
    """``:class:`~a.b.C``` as an optional autorefs link titled ``C`` (unresolved: plain code)."""
    short, identifier = match.group(1), match.group(2)
    title = identifier.rsplit(".", 1)[-1] if short else identifier
    return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return MARKER.sub(lambda m: docstring(m.group(1)), markdown)


def on_page_content(html: str, **kwargs: Any) -> str:
    return ROLE.sub(role_to_autoref, html)
