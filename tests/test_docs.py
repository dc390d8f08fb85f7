"""Every Python snippet of the docs and the README runs, and the reference pages cover the code.

Snippets: the ```python blocks of each page run in order in one fresh namespace per page, in a
temporary working directory. A block right after a line ``<!-- no-test -->`` is skipped (for
illustrative or long-running code; use sparingly). A snippet that warns fails.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import spep_gym
from spep_gym.config import SpepConfig

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]
NO_TEST = "<!-- no-test -->"


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, code) of every ```python fenced block not preceded by the no-test marker."""
    blocks: list[tuple[int, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i + 1
            end = start
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            previous = next((s.strip() for s in reversed(lines[:i]) if s.strip()), "")
            if previous != NO_TEST:
                blocks.append((start + 1, textwrap.dedent("\n".join(lines[start:end]))))
            i = end + 1
        else:
            i += 1
    return blocks


def test_block_extraction_honours_the_marker() -> None:
    text = "a\n```python\nx = 1\n```\n\n<!-- no-test -->\n\n```python\nraise SystemExit\n```\n"
    text += "- item\n\n  ```python\n  y = 2\n  ```\n"
    assert python_blocks(text) == [(3, "x = 1"), (14, "y = 2")]


# A snippet that warns shows its reader the warning: fix the snippet. (TorchRL's at import is about
# its own classes, as in pyproject.toml's filterwarnings.)
TORCHRL_IMPORT = "ignore:Creating .*WeightUpdater which inherits from WeightUpdaterBase"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
@pytest.mark.filterwarnings("error", TORCHRL_IMPORT)
def test_snippets_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # snippets that write files write them here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict[str, Any] = {"__name__": f"docs_{page.stem}"}
    for line, code in python_blocks(page.read_text(encoding="utf-8")):
        # The filename and blank lines make a traceback point at the page and its line.
        source = "\n" * (line - 1) + code
        exec(compile(source, str(page), "exec"), namespace)


def _literal(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def test_config_page_lists_every_field_with_its_default() -> None:
    text = (DOCS / "config.md").read_text(encoding="utf-8")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| `([^`]*)` \|", text, re.M)}
    fields = {f.name: f.default for f in dataclasses.fields(SpepConfig)}
    assert set(rows) == set(fields), "config.md rows differ from the SpepConfig fields"
    for name, default in fields.items():
        assert rows[name] == _literal(default), f"config.md: default of {name}"


def test_environment_page_names_every_info_and_metrics_key() -> None:
    import gymnasium as gym

    text = (DOCS / "environment.md").read_text(encoding="utf-8")
    env = gym.make("Spep-v0", config=SpepConfig.tiny())
    env.action_space.seed(0)
    _, info = env.reset(seed=0)
    keys = set(info) | set(info["metrics"])
    records = {"arrived": 0, "served": 0, "placed": 0}
    truncated = False
    while not truncated:
        _, _, _, truncated, info = env.step(env.action_space.sample())
        keys |= set(info)
        for item in records:  # the fields of the event records
            for record in info[item]:
                keys |= set(record)
                records[item] += 1
    assert all(records.values()), f"the episode should have every kind of event: {records}"
    missing = sorted(k for k in keys if f"`{k}`" not in text)
    assert not missing, f"docs/environment.md does not name these info keys: {missing}"


def test_env_docstring_tables_every_observation_key() -> None:
    doc = spep_gym.SpepEnv.__doc__ or ""
    env = spep_gym.SpepEnv(SpepConfig.tiny())
    for key, space in env.observation_space.spaces.items():
        row = re.search(rf"^\s*\| {key} \| \(([^)]*)\) \|", doc, re.M)
        assert row is not None, f"SpepEnv docstring has no table row for observation {key!r}"
        P, Q = env.num_pairs, env.config.queue_obs_size
        dims = [d.strip().replace(" ", " * ") for d in row.group(1).split(",") if d.strip()]
        shape = tuple(eval(d, {"P": P, "Q": Q}) for d in dims)
        assert shape == space.shape, f"observation {key}: documented {shape}, space {space.shape}"
    assert np.all(env.action_space.nvec == env.num_pairs + 1)


def load_hooks() -> Any:
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    return hooks


def test_docs_hook_inserts_the_env_docstring() -> None:
    page = (DOCS / "environment.md").read_text(encoding="utf-8")
    assert "<!-- docstring: spep_gym.env.SpepEnv -->" in page
    out = load_hooks().on_page_markdown(page, page=None, config=None, files=None)
    assert "<!-- docstring:" not in out
    assert (spep_gym.SpepEnv.__doc__ or "").split("\n")[0] in out
    assert "## Observation Space" in out and "## Episode End" in out


def test_docs_hook_turns_sphinx_roles_into_links() -> None:
    html = "see :class:<code>~agents.base.Agent</code> and :meth:<code>reset</code>."
    out = load_hooks().on_page_content(html, page=None, config=None, files=None)
    assert out == (
        'see <autoref identifier="agents.base.Agent" optional><code>Agent</code></autoref> and '
        '<autoref identifier="reset" optional><code>reset</code></autoref>.'
    )


def nav_pages() -> list[str]:
    """The pages of the mkdocs.yml nav, in order."""
    return re.findall(r"^\s*- [^:\n]+: (\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)


def test_every_page_is_in_the_nav() -> None:
    pages = sorted(p.name for p in DOCS.glob("*.md"))
    assert not sorted(set(pages) - set(nav_pages())), "docs pages missing from the mkdocs.yml nav"


def test_docs_home_page_is_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    page = (DOCS / "index.md").read_text(encoding="utf-8")
    out = load_hooks().on_page_markdown(page, page=None, config=None, files=None)
    assert readme.replace("](docs/", "](") in out
    assert "<!-- results:begin" in out and "<!-- results:end -->" in out
    assert "](docs/" not in out, "a README link into docs/ left unresolved on the site"


def test_readme_page_table_lists_every_page_of_the_nav() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Documentation\n", 1)[1].split("\n## ", 1)[0]
    table = re.findall(r"^\| \[[^]]+\]\(docs/(\S+\.md)\) \|", section, re.M)
    nav = [p for p in nav_pages() if p != "index.md"]
    assert sorted(table) == sorted(nav), "README's page table and the nav differ"


def test_docs_hook_quotes_data_files() -> None:
    hooks = load_hooks()
    data = "tests/data/sequence_reference.json"
    text = f"p {{{{ {data}: reference_km :.1f }}}} and {{{{ {data}: coherence_times_s.1 }}}}."
    assert hooks.on_page_markdown(text) == "p 10.0 and 1.0."
    with pytest.raises(ValueError, match=r"has no 'nothing\.here'"):
        hooks.on_page_markdown(f"{{{{ {data}: nothing.here }}}}")


def site_scripts() -> list[str]:
    """The extra_javascript entries of mkdocs.yml."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    block = text.split("\nextra_javascript:\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^  - (\S+)$", block, re.M)


def test_site_scripts_are_served_with_the_site() -> None:
    served = load_hooks().mathjax_files()
    assert any(uri.endswith(".woff") for uri in served), "MathJax's fonts are not served"
    for script in site_scripts():
        assert "//" not in script, f"{script}: fetched from the network, so offline nothing renders"
        assert (DOCS / script).is_file() or served[script].is_file(), f"{script} is not served"
    assert "js/mathjax/tex-mml-chtml.js" in site_scripts()


def chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)


@pytest.mark.slow
def test_built_site_renders_formulas_offline(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    mkdocs = [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)]
    subprocess.run(mkdocs, cwd=ROOT, env=env, check=True)
    page = site / "physics" / "index.html"
    scripts = re.findall(r'<script src="([^"]+)"', page.read_text(encoding="utf-8"))
    assert scripts and all("//" not in s and (page.parent / s).is_file() for s in scripts)
    browser = chromium()
    if browser is None:
        pytest.skip("no chromium to render the page (apt-get install chromium)")
    offline = "--host-resolver-rules=MAP * ~NOTFOUND"  # no name resolves: as with no network
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", offline]
    command += ["--virtual-time-budget=20000", "--dump-dom", page.as_uri()]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    formulas = dom.count('class="arithmatex"')
    assert formulas > 0 and dom.count("<mjx-container") >= formulas, "formulas left as raw TeX"


def test_slot_figure_script_draws(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("draw_slot", DOCS / "scripts" / "draw_slot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "slot.png"
    module.main(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (DOCS / "img" / "slot.png").is_file()
    # The figure names each phase's method; they must exist on the simulator.
    for _, _, method in module.PHASES:
        assert callable(getattr(spep_gym.Simulator, method))


def test_readme_quick_start_prints_the_same_number_every_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, code = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))[0]
    assert "action_space.sample()" in code, (
        "the README's first snippet is no longer the quick start"
    )
    printed = []
    for _ in range(2):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
        printed.append(capsys.readouterr().out)
    assert printed[0] == printed[1] and printed[0].strip()


def test_physics_page_quotes_the_sequence_reference() -> None:
    data = json.loads((ROOT / "tests" / "data" / "sequence_reference.json").read_text())
    page = load_hooks().on_page_markdown((DOCS / "physics.md").read_text(encoding="utf-8"))
    assert "{{" not in page
    measured = data["slot_model_mapping"]["per_length"]["10"]
    p, se = measured["p_attempt_measured"], measured["p_attempt_measured_se"]
    assert f"measured there {p:.4f}, standard error {se:.4f}" in page
    # The continuous-demand table (a row per chain, in the file's order): SeQUeNCe's columns.
    rows = re.findall(r"^\| [\d/]+ \| [\d.]+ m?s \| \d \| (.*) \|$", page, re.M)
    assert len(rows) == len(data["scenarios"]["chains"])
    for row, chain in zip(rows, data["scenarios"]["chains"], strict=True):
        cells = [c.strip() for c in row.split("|")]
        fidelity = chain["fidelity"]
        throughput = f"{chain['throughput_per_s']:.1f} ± {chain['throughput_se_per_s']:.1f}"
        assert cells[0] == throughput, chain["name"]
        assert [cells[3], cells[5], cells[7]] == [
            f"{fidelity[k]:.4f}" for k in ("mean", "p10", "p50")
        ], chain["name"]
    # SeQUeNCe's busy periods (a 2-hop and a 4-equal-hop chain at 10 ms).
    chains = data["slot_model_mapping"]["per_chain"]
    two = chains["chain3_10_10_tc0.01s"]["effective_busy_slots_mean"]
    four = chains["chain5_10_10_10_10_tc0.01s"]["effective_busy_slots_mean"]
    assert f"busy periods: {two:.2f} and {four:.2f} slots" in page
    assert f"on average {two:.3f} slots" in page and f"busy period is {four:.2f} slots" in page


def test_training_page_states_the_learned_agents_comparison_as_its_table_shows() -> None:
    from scipy import stats as st
    from statsmodels.stats.multitest import multipletests

    text = (DOCS / "training.md").read_text(encoding="utf-8")
    rows = re.findall(
        r"^\| (.+?) \| \**([\d.]+)\** \| ([\d.]+) – ([\d.]+) \| (?:[+−]([\d.]+)|—) \| ([\d.e-]+|—) \|$",
        text,
        re.M,
    )
    table = {
        name: tuple(float(x) if x and x != "—" else None for x in rest) for name, *rest in rows
    }
    learned = table["**MaskablePPO (learned)**"]
    oracle = table["`spep-oracle` (reads the future)"]
    # The difference from the oracle: an interval, not a claim of equivalence.
    assert "indistinguishable" not in text
    se = [(hi - lo) / 2 / st.t.ppf(0.975, 19) for _, lo, hi, *_ in (learned, oracle)]
    se_diff = float(np.hypot(*se))
    df = se_diff**4 / sum(s**4 / 19 for s in se)
    half = st.t.ppf(0.975, df) * se_diff
    diff = 100 * (learned[0] - oracle[0])
    interval = f"{diff - 100 * half:+.1f} to {diff + 100 * half:+.1f} pp".replace("-", "−")
    assert f"is {interval} (unpaired" in text
    # The wins: Holm over the table's tests, the largest of the three below 0.05 as stated.
    p_values = {name: row[-1] for name, row in table.items() if row[-1] is not None}
    holm = dict(
        zip(p_values, multipletests(list(p_values.values()), method="holm")[1], strict=True)
    )
    wins = [holm[n] for n in p_values if "oracle" not in n]
    assert len(wins) == 3 and f"tests, ≤ {max(wins):.1e})" in text
