"""The engines that run episodes: one ``SpepEnv`` per run, or the runs of one agent as one batch.

``scalar`` (the default) runs every episode on its own :class:`spep_gym.SpepEnv`
(:func:`agents.study.evaluate.run_episode`). ``batched`` steps the runs of one agent and config
together, network i of the batch from the i-th seed, on a
:class:`spep_gym.batched.BatchedSimulator` driven by the agent's batched form
(:mod:`agents.batched`), and returns one result row per network with the columns of a scalar row.
Its random draws are ``counter`` (counter-based streams: within noise of the scalar runs, fast) or
``scalar`` (the scalar environment's own streams: the same rows as the scalar engine, exactly).
torch loads only when a batch runs (or its agents are checked). ``compiled`` runs each episode of
a non-learning agent as one compiled call (:func:`agents.study.compiled.run_compiled`, numba: the same
rows as the scalar engine, exactly); any other agent runs on the scalar path there.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agents.base import Agent, agent_config, make
from spep_gym.config import SpepConfig

__all__ = [
    "DRAWS",
    "ENGINES",
    "check_batches",
    "check_device",
    "check_engine",
    "engine_text",
    "run_batch",
]

#: The engines: ``scalar`` (one ``SpepEnv`` per run), ``batched`` (the runs as one batch) and
#: ``compiled`` (a run's whole episode in compiled code).
ENGINES = ("scalar", "batched", "compiled")
#: The random draws of the batched engine: ``counter`` (its own streams), ``scalar`` (exact).
DRAWS = ("counter", "scalar")


def check_engine(
    engine: str, draws: str | None, agents: Iterable[str] = (), option: str = ""
) -> str | None:
    """Fail before any run: an unknown engine or draws, or an agent without a batched form.

    Args:
        engine: one of :data:`ENGINES`.
        draws: one of :data:`DRAWS`, or None (``counter`` for the batched engine); only the
            batched engine has draws.
        agents: registered agent names the engine is to run.
        option: ``"--"`` to name the options as the command line spells them.

    Returns:
        The draws the engine runs with: None for ``scalar`` and ``compiled``, ``draws`` or
        ``"counter"`` for ``batched``.

    Raises:
        ValueError: one line naming the option, the value and what is allowed.
    """
    name = f"{option}engine" if option else "engine ="
    if engine not in ENGINES:
        raise ValueError(f"{name} {engine!r} is invalid: allowed {', '.join(map(repr, ENGINES))}")
    what = f"{option}draws" if option else "draws ="
    if engine in ("scalar", "compiled"):
        if draws is not None:
            raise ValueError(
                f"{what} {draws!r} is invalid with engine {engine!r}: the draws are a setting of "
                f"engine 'batched' (the {engine} engine draws from the scalar streams)"
            )
        if engine == "compiled":
            try:
                import numba  # noqa: F401
            except ImportError:  # pragma: no cover  (numba is in the dev install)
                raise ValueError("engine 'compiled' needs numba: install spep-gym[fast]") from None
        return None
    draws = "counter" if draws is None else draws
    if draws not in DRAWS:
        raise ValueError(f"{what} {draws!r} is invalid: allowed {', '.join(map(repr, DRAWS))}")
    try:
        from agents.batched import check_batched
    except ImportError as err:  # pragma: no cover  (torch is a dependency of the dev install)
        raise ValueError(
            f"engine 'batched' needs torch ({err}): install spep-gym[batched]"
        ) from None
    check_batched(agents)
    return draws


def check_device(engine: str, device: str | None, option: str = "") -> str:
    """The torch device the batched engine runs on: ``"cpu"`` unless ``device`` names another.

    The scalar engine has no device (it runs on the CPU), so any ``device`` with it, an unknown
    device, or ``"cuda"`` where torch sees no GPU is a one-line ValueError, before any run.
    Returns the device as torch spells it (``"cuda:0"`` stays ``"cuda:0"``, ``"cuda"`` stays
    ``"cuda"``).
    """
    if device is None:
        return "cpu"
    if engine != "batched":
        raise ValueError(
            f"{option}device {device!r}: only the batched engine runs on a device; "
            f"add {option}engine batched"
        )
    from spep_gym.batched.simulator import resolve_device

    return str(resolve_device(device))


def check_batches(
    agents: Iterable[str],
    configs: Iterable[Mapping[str, Any]],
    runs: int,
    device: str | None = None,
    option: str = "--runs",
) -> None:
    """Fail before any run: a batch of ``runs`` networks of an agent and config that cannot fit.

    The batched engine runs the ``runs`` seeds of one agent and config as one batch; each batch
    is held to :func:`spep_gym.resources.check_batched_memory`, a one-line ValueError naming
    ``option``.
    """
    from spep_gym.resources import check_batched_memory

    for fields in configs:
        for name in agents:
            check_batched_memory(agent_config(make(name), fields), runs, device, name=option)


def engine_text(meta: Mapping[str, Any]) -> str:
    """How a study's runs ran, for its report: ``"batched engine, counter draws (...)"``.

    ``meta`` is the study's ``meta.json`` (``engine``, ``draws`` and ``device``; a study written
    before there were engines ran on the scalar engine, one before devices on the CPU).
    """
    engine = meta.get("engine", "scalar")
    if engine == "scalar":
        return "scalar engine"
    if engine == "compiled":
        return "compiled engine (the scalar engine's runs exactly)"
    draws = meta.get("draws")
    same = {
        "scalar": "the scalar engine's streams: its runs exactly",
        "counter": "counter-based streams: within noise of the scalar engine",
    }
    where = f" on {meta['device']}" if meta.get("device", "cpu") != "cpu" else ""
    return f"{engine} engine{where}, {draws} draws ({same.get(str(draws), 'unknown draws')})"


def torch_threads() -> contextlib.AbstractContextManager[None]:
    """Run torch on one CPU thread while the block runs, unless ``OMP_NUM_THREADS`` chooses.

    The batch's tensors are small: more threads only fight for the cores (on a busy 2-core machine
    two threads ran ten times slower than one).
    """
    from spep_gym.batched.vector_env import torch_threads as pinned

    return pinned(None if "OMP_NUM_THREADS" in os.environ else 1)


def run_batch(
    agent: Agent | str,
    seeds: Sequence[int],
    config: Mapping[str, Any] | SpepConfig | None = None,
    draws: str = "counter",
    device: str = "cpu",
    return_records: bool = False,
) -> list[dict[str, Any]]:
    """Run one episode per seed, all as one batch; return one result row per seed, in order.

    Each row has the columns of :func:`agents.study.evaluate.run_episode`'s (its metrics from
    :meth:`~spep_gym.batched.BatchedSimulator.summary`, None where a rate is undefined, as the
    scalar row has it); ``wall_time_s`` is the batch's wall time divided among its runs. With
    ``return_records`` each row holds its network's per-request records under ``"records"``.

    Raises:
        ValueError: the agent has no batched form, a bad config, draws or device.
    """
    from agents.batched import batched_agent
    from agents.study.store import COLUMNS
    from spep_gym.batched import BatchedSimulator
    from spep_gym.metrics import Metrics

    if isinstance(agent, str):
        agent = make(agent)
    cfg = agent_config(agent, config)
    policy = batched_agent(agent)
    if draws not in DRAWS:
        raise ValueError(f"draws = {draws!r} is invalid: allowed {', '.join(map(repr, DRAWS))}")
    seeds = [int(s) for s in seeds]
    from spep_gym.resources import check_batched_memory

    # one line before anything is allocated: the runs of a batch are its networks
    check_batched_memory(cfg, len(seeds), device, name="runs")
    with torch_threads():
        start = time.perf_counter()
        sim = BatchedSimulator(cfg, len(seeds), device=device, draws=draws)
        sim.reset(seeds)
        policy.reset(seeds, env=sim)
        while not bool(sim.done.all()):
            action = policy.act(sim.observation(), {"next_slot": sim.t})
            sim.step(action)
        summary = {k: v.cpu().tolist() for k, v in sim.summary().items()}
        wall = (time.perf_counter() - start) / len(seeds)
    order = [k for k in COLUMNS if k in summary]
    order += [k for k in Metrics().summary() if k not in order]
    rows = []
    for b, seed in enumerate(seeds):
        row: dict[str, Any] = {
            "agent": agent.name,
            "topology": cfg.topology_name,
            "seed": seed,
            "slots": cfg.episode_slots,
        }
        for key in order:
            value = summary[key][b]  # an int counter, a float sum, a rate (NaN: undefined)
            row[key] = None if isinstance(value, float) and math.isnan(value) else value
        row["wall_time_s"] = wall
        if return_records:
            row["records"] = sim.request_records(b)
        rows.append(row)
    return rows
