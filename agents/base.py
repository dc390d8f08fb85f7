"""The ``Agent`` protocol every policy follows, and the registry that makes agents by name.

An agent sees only what the environment hands it (observation and info), never its internals; the
oracle, a reference that reads the future workload, is the one named exception
(``reads_future = True``). Every agent also has stable-baselines3's ``predict`` signature, so SB3's
``evaluate_policy`` takes any agent.

An agent whose identity includes environment settings (``env_config``: the baselines' and SPEP's
on-demand routing, a trained model's network size) runs only on an environment that has them: it
checks them at :meth:`Agent.reset` and refuses to act before it has seen one
(:meth:`Agent.make_env` makes the matching environment and hands it over in one line).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from spep_gym.config import PHYSICAL, SpepConfig
from spep_gym.env import SpepEnv
from spep_gym.topology import num_nodes


def check_inputs(cfg: SpepConfig) -> None:
    """Read the input files ``cfg`` names (a ``trace``) once, so that a bad one fails before runs.

    Raises:
        ValueError: the file, line and column of the problem (as the simulator would raise it).
    """
    if cfg.trace is not None:
        from spep_gym.workload import Trace

        Trace.load(cfg.trace, cfg.n)


def agent_config(
    agent: Agent,
    config: Mapping[str, Any] | SpepConfig | None,
    base: SpepConfig | None = None,
) -> SpepConfig:
    """The config a run of ``agent`` uses: the user's fields plus the agent's own settings.

    A user field (in a mapping) that contradicts a setting the agent is defined by (e.g.
    ``routing`` for a baseline) is an error rather than silently overridden; a whole
    ``SpepConfig`` gets the agent's settings applied. A mapping applies over ``base`` (default: the
    paper preset); its ``preset`` counts as naming each field the presets set (``PHYSICAL``'s).
    """
    if isinstance(config, SpepConfig):
        base, fields = config, {}
    else:
        base, fields = base or SpepConfig(), dict(config or {})
    given = dict(fields)
    if "preset" in given:
        preset = SpepConfig.from_dict({"preset": given.pop("preset")})
        given = {**{k: getattr(preset, k) for k in PHYSICAL}, **given}
    for key, value in agent.env_config.items():
        if key in given and given[key] != value:
            raise ValueError(
                f"config field {key!r} = {given[key]!r} contradicts agent {agent.name!r}, which is "
                f"defined with {key}={value!r}"
            )
    return SpepConfig.from_dict({**fields, **agent.env_config}, base=base)


class Agent:
    """Base class: override :meth:`act` (and :meth:`reset` when the agent keeps state).

    ``env_config`` holds the environment settings the agent is defined with (for example its
    on-demand routing strategy): :func:`agents.run_episode` applies them, :meth:`reset` refuses an
    environment that lacks them, and an agent with settings refuses to act before it has seen an
    environment (the observation does not show them): call ``reset(env=env)`` first, or make the
    environment with :meth:`make_env`.
    """

    name: str = "agent"
    env_config: dict[str, Any] = {}  # noqa: RUF012  (read-only default; instances replace it)
    reads_future: bool = False  # True only for oracles (references that read the future)
    stateful: bool = False  # keeps a history across steps (then predict() takes one env at a time)

    def __init__(self) -> None:
        self.env: SpepEnv | None = None

    def reset(self, seed: int | None = None, env: Any = None) -> None:
        """Start an episode. ``env`` is handed over so the agent can read its config and spaces.

        ``env`` may be a wrapped environment (``gym.make``'s); the agent keeps ``env.unwrapped``.

        Raises:
            ValueError: ``env``'s config contradicts the agent's ``env_config``.
        """
        if env is not None:
            env = getattr(env, "unwrapped", env)
            self.check_env(env)
        self.env = env

    def check_env(self, env: SpepEnv) -> None:
        """Raise ``ValueError`` when ``env``'s config lacks a setting of :attr:`env_config`."""
        config = getattr(env, "config", None)
        if not isinstance(config, SpepConfig):
            raise ValueError(
                f"env = {type(env).__name__} is invalid for agent {self.name!r}: allowed a "
                "spep_gym SpepEnv (or a wrapper of one)"
            )
        wrong = {k: v for k, v in self.env_config.items() if getattr(config, k) != v}
        if wrong:
            have = ", ".join(f"{k}={getattr(config, k)!r}" for k in wrong)
            need = ", ".join(f"{k}={v!r}" for k, v in wrong.items())
            raise ValueError(
                f"agent {self.name!r} is defined with {need}, but the environment has {have}: "
                f"make the environment with agent.make_env(...) (or "
                f"agents.study.evaluate.agent_config) so that it has {need}"
            )

    def require_env(self) -> None:
        """Raise ``RuntimeError`` when the agent has settings and has not seen an environment.

        The observation does not show the environment's routing: an agent defined with one must
        have checked the environment (:meth:`reset` with ``env``) before it acts, or it could run
        with another routing unseen.
        """
        if self.env is None and self.env_config:
            need = ", ".join(f"{k}={v!r}" for k, v in self.env_config.items())
            raise RuntimeError(
                f"agent {self.name!r} is defined with {need}, which the environment applies: call "
                f"agent.reset(env=env) with its environment first, or make one with "
                f"env = agent.make_env(**fields)"
            )

    def make_env(self, config: Mapping[str, Any] | SpepConfig | None = None, **fields: Any) -> Any:
        """The environment this agent is defined for, handed to the agent (``reset(env=...)``).

        ``config`` (a ``SpepConfig`` or a mapping of fields) and ``fields`` apply over the paper
        preset, then the agent's :attr:`env_config`; a field that contradicts the agent is an
        error. ``evaluate_policy(agent, agent.make_env(episode_slots=500))`` runs SB3's evaluation
        with the agent's own settings.
        """
        if isinstance(config, SpepConfig):
            cfg = agent_config(self, fields, base=config)
        else:
            cfg = agent_config(self, {**dict(config or {}), **fields})
        env = SpepEnv(cfg)
        self.reset(env=env)
        return env

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        """The node pairs to pre-position this slot (see ``SpepEnv``'s action space)."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """What defines the agent's behaviour: its class and its public settings, as JSON values.

        The study's run keys hold it (:mod:`agents.study.plan`), so that a run made with other
        settings is not reused. The default walks the public attributes (nested objects such as a
        predictor included) and keeps those with a JSON form; generators, environments and models
        are state, not settings, and are left out.
        """
        return _settings(self)

    # stable-baselines3 protocol -------------------------------------------------------------
    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's signature: a batch of observations (or one) in, a batch of actions out.

        Without ``info``, the slot's arrivals are read from the observation's ``arrivals`` (every
        request of the slot, per node pair: :func:`info_from_observation`). An agent with
        :attr:`env_config` settings needs ``reset(env=...)`` (or :meth:`make_env`) first.
        """
        self.require_env()
        batched = np.asarray(observation["time_of_day"]).ndim == 2
        if not batched:
            return self.act(observation, info_from_observation(observation)), state
        size = len(observation["time_of_day"])
        if self.stateful and size > 1:
            raise ValueError(
                f"agent {self.name!r} keeps a request history: predict() takes one environment at a "
                f"time, got a batch of {size}"
            )
        actions = []
        for i in range(size):
            if episode_start is not None and bool(episode_start[i]) and self.stateful:
                self.reset(env=self.env)
            obs_i = {k: v[i] for k, v in observation.items()}
            actions.append(self.act(obs_i, info_from_observation(obs_i)))
        return np.stack(actions), state

    def none_action(self, num_pairs: int, action_len: int) -> np.ndarray:
        """The action that pre-positions nothing."""
        return np.full(action_len, num_pairs, dtype=np.int64)

    def action_length(self) -> int:
        """``action_len`` of the environment handed to :meth:`reset` (the preset's without one)."""
        return self.env.config.action_len if self.env is not None else SpepConfig.action_len

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _settings(obj: Any, depth: int = 0) -> dict[str, Any]:
    """``obj``'s class and public attributes that have a JSON form (nested objects recursed)."""
    out: dict[str, Any] = {"class": f"{type(obj).__module__}.{type(obj).__qualname__}"}
    for key, value in sorted(vars(obj).items()):
        if key.startswith("_") or key == "env":
            continue
        if _is_plain(value):
            out[key] = json.loads(json.dumps(value))
        elif (
            depth < 2
            and hasattr(value, "__dict__")
            and type(value).__module__.startswith("agents.")
        ):
            out[key] = _settings(value, depth + 1)
    return out


def _is_plain(value: Any) -> bool:
    """A value JSON writes faithfully: numbers, strings, None, and lists / dicts of them."""
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return bool(np.isfinite(value))
    if isinstance(value, list | tuple):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def info_from_observation(observation: dict[str, np.ndarray]) -> dict[str, Any]:
    """The part of ``info`` an agent can rebuild from the observation alone: this slot's arrivals.

    The observation's ``arrivals`` counts every request of the slot per node pair (the queue shows
    at most ``queue_obs_size`` requests, so it cannot be used: at high load it misses some). Each
    arrival becomes ``{"pair", "source", "destination"}`` (the lower node first); the requests'
    fidelities, deadlines and priorities are in ``info["arrived"]`` only.
    """
    if "arrivals" not in observation:
        raise ValueError(
            "observation has no 'arrivals': allowed an observation of spep_gym's SpepEnv, whose "
            "'arrivals' key counts the slot's requests per node pair"
        )
    counts = np.rint(np.asarray(observation["arrivals"], dtype=np.float64)).astype(np.int64)
    pairs = np.repeat(np.arange(len(counts)), np.maximum(counts, 0))
    n = num_nodes(len(counts))
    rows, cols = np.triu_indices(n, 1)
    arrived = [
        {"pair": int(p), "source": int(rows[p]), "destination": int(cols[p])}
        for p in pairs.tolist()
    ]
    return {"arrived": arrived}


REGISTRY: dict[str, Callable[..., Agent]] = {}
#: The entry point group of installed packages' agents: ``NAME = "module:factory"`` makes
#: ``make(NAME, **kwargs)`` call ``factory(**kwargs)``, loaded when the name is first asked for.
ENTRY_POINT_GROUP = "spep.agents"
#: The modules :func:`import_modules` imported (``spep --import``), in order: worker processes
#: import them too (:func:`agents.study.backends.run`), so that agents made by name there exist.
IMPORTED: list[str] = []


def register(name: str, factory: Callable[..., Agent]) -> None:
    """Make ``agents.make(name, **kwargs)`` call ``factory(**kwargs)``."""
    REGISTRY[name] = factory


def make(name: str, **kwargs: Any) -> Agent:
    """An agent by registered name, with keyword arguments for its parameters.

    A name not registered in this process is looked up among the installed packages' entry points
    of :data:`ENTRY_POINT_GROUP`, whose factory is loaded (and registered) then.
    """
    if name not in REGISTRY:
        entry = _entry_points().get(name)
        if entry is not None:
            factory = entry.load()
            if not callable(factory):
                raise ValueError(
                    f"agent {name!r}: entry point {entry.value!r} of group {ENTRY_POINT_GROUP!r} "
                    f"is a {type(factory).__name__}: allowed a callable that makes the agent"
                )
            register(name, factory)
    if name not in REGISTRY:
        import difflib

        known = names()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown agent {name!r}{hint}; registered: {', '.join(known)}")
    return REGISTRY[name](**kwargs)


def names() -> list[str]:
    """The registered agent names and those of installed entry points (not loaded), sorted."""
    return sorted(set(REGISTRY) | set(_entry_points()))


def _entry_points() -> dict[str, Any]:
    """The installed entry points of :data:`ENTRY_POINT_GROUP` by name (none loaded)."""
    from importlib.metadata import entry_points

    return {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}


def import_modules(modules: Iterable[str]) -> None:
    """Import ``modules`` (which register agents), the current folder searched first.

    The current folder goes first on ``sys.path``, as with ``python -m``; each module is recorded
    in :data:`IMPORTED`, which worker processes import as well.

    Raises:
        ValueError: a module that is not found, named.
    """
    import importlib
    import os
    import sys

    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if not err.name or not (module == err.name or module.startswith(f"{err.name}.")):
                raise  # the module was found, and it imports something missing
            raise ValueError(
                f"--import {module!r} is invalid: no module named {err.name!r} in the current "
                f"folder ({cwd}) or the installed packages"
            ) from None
        if module not in IMPORTED:
            IMPORTED.append(module)


def held_or_in_flight(observation: dict[str, np.ndarray]) -> np.ndarray:
    """(P,) pre-positioned pairs per node pair, held or in flight (``signalling_latency``).

    A pair in flight is on its way to its end nodes: placing the same node pair again would be a
    second pair for one prediction, so Algorithm 2 and the oracle skip both.
    """
    held = np.asarray(observation["prepositioned"])
    flying = observation.get("prepositioned_in_flight")
    return held if flying is None else held + np.asarray(flying)
