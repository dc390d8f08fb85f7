"""Agents for ``Spep-v0``: baselines, SPEP with demand predictors, learned agents, evaluation.

``agents.make("shortest")`` makes an agent by name; ``agents.evaluate(agent, runs=20)`` evaluates one.
Heavy libraries (torch, statsmodels, stable-baselines3) load only when an agent that needs them is made.
"""

from agents import baselines as _baselines  # noqa: F401  (registers the baselines)
from agents.base import Agent, make, names, register

__all__ = ["Agent", "make", "names", "register"]
