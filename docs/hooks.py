"""MkDocs hook: pages pull text from the code, so the docs cannot drift from it.

A line ``<!-- docstring: dotted.path.Object -->`` in a page is replaced by that object's docstring
(``inspect.getdoc``), written as Markdown. ``docs/environment.md`` uses it for ``SpepEnv``.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

MARKER = re.compile(r"^<!-- docstring: ([\w.]+) -->$", re.MULTILINE)


def docstring(path: str) -> str:
    """The docstring of the object at dotted ``path`` (module, then attributes)."""
    module_name, _, attr = path.rpartition(".")
    obj: Any = importlib.import_module(module_name)
    obj = getattr(obj, attr)
    doc = inspect.getdoc(obj)
    if not doc:
        raise ValueError(f"{path} has no docstring to insert")
    return doc


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return MARKER.sub(lambda m: docstring(m.group(1)), markdown)
