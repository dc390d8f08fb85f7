"""Agents for ``Spep-v0``: baselines, SPEP with demand predictors, learned agents, evaluation.

``agents.make("shortest")`` makes an agent by name; ``agents.evaluate(agent, runs=20)`` evaluates one.
Heavy libraries (torch, statsmodels, stable-baselines3) load only when an agent that needs them is made.
"""

# agents.evaluate is the module and, being callable, also the function: agents.evaluate(agent, runs=20)
# calls agents.evaluate.evaluate, and agents.evaluate.run_episode still works.
from agents import baselines as _baselines  # noqa: F401  (registers the baselines)
from agents import evaluate
from agents import learned as _learned  # noqa: F401  (registers sb3: trained stable-baselines3 models)
from agents import oracle as _oracle  # noqa: F401  (registers spep-oracle)
from agents import spep as _spep  # noqa: F401  (registers spep-frequency, -lstm, -arima)
from agents.base import Agent, make, names, register

__all__ = ["Agent", "evaluate", "make", "names", "register"]
