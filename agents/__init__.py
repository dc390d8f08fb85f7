"""Agents for ``Spep-v0``: the baselines, SPEP with its predictors, the oracle, learned agents.

``agents.make("shortest")`` makes an agent by name, ``agents.run_episode(agent, seed)`` runs one
episode and ``agents.evaluate(agent, runs=20)`` many. The policies and predictors are the top-level
modules (``base``, ``baselines``, ``spep``, ``oracle``, ``learned``, ``predictors``); the study
harness (evaluation, ``spep reproduce``, statistics, report) is :mod:`agents.study`, reinforcement
learning (``spep train``) is :mod:`agents.rl`, and :mod:`agents.cli` is the ``spep`` command.
Heavy libraries (torch, statsmodels, stable-baselines3) load only when an agent that needs them is
made or a command that needs them runs.
"""

from agents import baselines as _baselines  # noqa: F401  (registers the baselines)
from agents import controls as _controls  # noqa: F401  (registers managed, managed-*)
from agents import learned as _learned  # noqa: F401  (registers sb3: trained stable-baselines3 models)
from agents import oracle as _oracle  # noqa: F401  (registers spep-oracle)
from agents import spep as _spep  # noqa: F401  (registers spep-frequency, -lstm, -arima)
from agents.base import Agent, make, names, register
from agents.study.evaluate import evaluate, run_episode

__all__ = ["Agent", "evaluate", "make", "names", "register", "run_episode"]
