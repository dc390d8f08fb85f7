"""MkDocs hooks: pages pull text from the code and the data, so the docs cannot drift from them.

- A line ``<!-- docstring: dotted.path.Object -->`` in a page is replaced by that object's docstring
  (``inspect.getdoc``), written as Markdown. ``docs/environment.md`` uses it for ``SpepEnv``.
- A line ``<!-- include: README.md -->`` is replaced by that file (a path from the repository root),
  its links into ``docs/`` made relative to the site: ``docs/index.md`` is the README.
- ``{{ tests/data/file.json: key.key :.4f }}`` is replaced by that value of the JSON file, written
  with the format after the second colon (optional): measured figures are quoted from their data.
- Sphinx roles left in docstrings (``:class:`x```, ``:meth:``, ``:func:``...) become links to the API
  reference where the object is documented there, and plain code otherwise.
- MathJax is served with the site from the copy that the ``django-static-mathjax`` package ships (in
  the docs extra), under ``js/mathjax/``: formulas render offline, and the build fetches nothing.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- docstring: ([\w.]+) -->$", re.MULTILINE)
INCLUDE = re.compile(r"^<!-- include: ([\w./-]+) -->$", re.MULTILINE)
DOCS_LINK = re.compile(r"\]\(docs/")
DATA = re.compile(r"\{\{ ([\w./-]+\.json): ([\w.]+)(?: :([^ }]+))? \}\}")
ROLE = re.compile(r":(?:class|meth|func|data|mod|attr|obj|exc):<code>(~?)([\w.]+)</code>")

# The parts of MathJax's es5 tree that the site's tex-mml-chtml component loads, at once or on
# demand (TeX extensions by autoload, the CHTML fonts, the menu and its accessibility tools).
MATHJAX_SITE_DIR = "js/mathjax"
MATHJAX_PARTS = (
    "tex-mml-chtml.js",
    "input/tex/extensions",
    "input/mml/extensions",
    "output/chtml/fonts/woff-v2",
    "ui",
    "a11y",
    "sre",
)


def docstring(path: str) -> str:
    """The docstring of the object at dotted ``path`` (module, then attributes)."""
    module_name, _, attr = path.rpartition(".")
    obj: Any = importlib.import_module(module_name)
    obj = getattr(obj, attr)
    doc = inspect.getdoc(obj)
    if not doc:
        raise ValueError(f"{path} has no docstring to insert")
    return doc


def include(path: str) -> str:
    """The file at ``path`` (from the repository root), its ``](docs/`` links made site-relative."""
    return DOCS_LINK.sub("](", (ROOT / path).read_text(encoding="utf-8"))


@functools.cache
def _json(path: str) -> Any:
    return json.loads((ROOT / path).read_text(encoding="utf-8"))


def data_value(match: re.Match[str]) -> str:
    """The value a ``{{ file.json: dotted.key :format }}`` placeholder names, formatted."""
    path, dotted, spec = match.group(1), match.group(2), match.group(3) or ""
    value = _json(path)
    for key in dotted.split("."):
        try:
            value = value[int(key)] if isinstance(value, list) else value[key]
        except (KeyError, IndexError, ValueError, TypeError):
            raise ValueError(f"{match.group(0)}: {path} has no {dotted!r}") from None
    return format(value, spec)


def role_to_autoref(match: re.Match[str]) -> str:
    """``:class:`~a.b.C``` as an optional autorefs link titled ``C`` (unresolved: plain code)."""
    short, identifier = match.group(1), match.group(2)
    title = identifier.rsplit(".", 1)[-1] if short else identifier
    return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'


def mathjax_files() -> dict[str, Path]:
    """Site path -> packaged file, for MathJax's parts and its licence."""
    import mathjax  # django-static-mathjax: MathJax 3 for the browser, no Python dependency

    package = Path(mathjax.__file__).parent
    es5 = package / "static" / "mathjax" / "es5"
    files: dict[str, Path] = {}
    for part in MATHJAX_PARTS:
        found = [es5 / part] if (es5 / part).is_file() else sorted((es5 / part).rglob("*"))
        if not found:
            raise FileNotFoundError(f"MathJax's {part} is missing from {es5}")
        files |= {
            f"{MATHJAX_SITE_DIR}/{p.relative_to(es5).as_posix()}": p for p in found if p.is_file()
        }
    licence = next(package.parent.glob("django_static_mathjax-*.dist-info/LICENSE"), None)
    if licence is not None:
        files[f"{MATHJAX_SITE_DIR}/LICENSE"] = licence
    return files


def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    from mkdocs.structure.files import File

    for uri, path in mathjax_files().items():
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    markdown = INCLUDE.sub(lambda m: include(m.group(1)), markdown)
    markdown = DATA.sub(data_value, markdown)
    return MARKER.sub(lambda m: docstring(m.group(1)), markdown)


def on_page_content(html: str, **kwargs: Any) -> str:
    return ROLE.sub(role_to_autoref, html)
