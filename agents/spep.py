"""SPEP: predictive pre-positioning (paper Algorithm 2, as SPEC section 8 fixes it).

Each slot the agent hands the slot's arrivals to its demand predictor, asks it for the probability
that each node pair is requested within the next ``prediction_window`` slots, and proposes the pairs
worth pre-positioning, best first:

1. candidates: probability >= ``threshold``, no pre-positioned pair held (or in flight) for the pair, and
   the fidelity a pre-position would get now (``observation["path_fidelity"]``: the env computes it
   for the pre-positioning path under the chosen swap model, swap success left out) >= ``min_fidelity``
   and > 0 (a pair whose path lacks a link pair cannot be placed);
2. score = probability x path fidelity; sorted by score, high first; equal scores: lower pair index
   first;
3. the action is the first ``action_len`` candidates, padded with P ("none").

The environment places them in this order while fewer than ``max_prepositioned`` are held and fewer
than ``max_new_prepositions`` were placed this slot (SPEC 5.4), skipping those that fail. Algorithm 2
is therefore exact while the candidate list fits in ``action_len`` (default 8 = K). A longer list is
cut to its best ``action_len``; a cut candidate would only have been tried if more than
``action_len - max_new_prepositions`` better ones had failed (every candidate's path holds pairs
when the list is made, so only a link shared with a pair placed earlier in the slot makes one fail).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import Agent, held_or_in_flight, info_from_observation, register
from agents.predictors import PREDICTORS, Predictor, make_predictor
from spep_gym.env import SpepEnv
from spep_gym.topology import num_pairs, pair_index_matrix

#: SpepAgent's own keyword arguments; the others go to the predictor.
AGENT_KWARGS = ("threshold", "min_fidelity", "name", "routing")


def algorithm2(
    probability: np.ndarray,
    path_fidelity: np.ndarray,
    prepositioned: np.ndarray,
    threshold: float,
    min_fidelity: float,
    action_len: int,
) -> np.ndarray:
    """Paper Algorithm 2: the node pairs to pre-position, best first, padded with P (none).

    Args:
        probability: (P,) predicted probability of a request within the prediction window.
        path_fidelity: (P,) fidelity a pre-position of each pair would get now (0: impossible).
        prepositioned: (P,) pre-positioned pairs held per node pair.
        threshold: least probability of a candidate.
        min_fidelity: least path fidelity of a candidate.
        action_len: length of the action.

    Returns:
        (action_len,) int64: candidate pair indices by score (probability x path fidelity), high
        first, equal scores by lower index, then P.
    """
    probability = np.asarray(probability, dtype=np.float64)
    fidelity = np.asarray(path_fidelity, dtype=np.float64)
    none = len(probability)  # P, the "none" entry
    candidates = np.flatnonzero(
        (probability >= threshold)
        & (np.asarray(prepositioned) == 0)
        & (fidelity >= min_fidelity)
        & (fidelity > 0.0)
    )
    score = probability[candidates] * fidelity[candidates]
    # candidates ascend, so a stable sort keeps the lower index first among equal scores
    order = np.argsort(-score, kind="stable")
    chosen = candidates[order][:action_len]
    action = np.full(action_len, none, dtype=np.int64)
    action[: len(chosen)] = chosen
    return action


class SpepAgent(Agent):
    """Predictive pre-positioning with a demand predictor (paper Algorithm 2).

    Args:
        predictor: a :class:`agents.predictors.Predictor`, or a registered predictor name.
        threshold: least predicted probability of a candidate (SPEC 8: 0.05).
        min_fidelity: least path fidelity of a candidate (SPEC 8: 0.6).
        name: the agent's name in results (default ``spep-<predictor name>``).
        routing: on-demand routing the agent runs with (default ``shortest``, so that a comparison
            with the ``shortest`` baseline isolates pre-positioning).
    """

    stateful = True

    def __init__(
        self,
        predictor: Predictor | str = "frequency",
        threshold: float = 0.05,
        min_fidelity: float = 0.6,
        name: str | None = None,
        routing: str = "shortest",
    ) -> None:
        super().__init__()
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold = {threshold!r} is invalid: allowed a number in [0, 1]")
        if not 0.0 <= min_fidelity <= 1.0:
            raise ValueError(
                f"min_fidelity = {min_fidelity!r} is invalid: allowed a number in [0, 1]"
            )
        if isinstance(predictor, str):
            predictor = make_predictor(predictor)
        self.predictor = predictor
        self.threshold = float(threshold)
        self.min_fidelity = float(min_fidelity)
        self.name = name or f"spep-{predictor.name}"
        self.env_config = {"routing": routing}
        self._num_nodes = 0
        self._slot = -1
        self._seed: int | None = None

    def reset(self, seed: int | None = None, env: Any = None) -> None:
        """Start an episode: the predictor forgets its history at the first :meth:`act`."""
        super().reset(seed, env)
        self._num_nodes = 0  # the predictor restarts at the first act()
        self._seed = seed

    def _start(self, env: SpepEnv) -> None:
        cfg = env.config
        self.predictor.reset(cfg.n, cfg.slots_per_day, cfg.prediction_window, self._seed)
        self._num_nodes = cfg.n
        self._pair_index = pair_index_matrix(cfg.n)
        self._slot = -1

    def act(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        """Feed the slot's arrivals to the predictor; Algorithm 2 on its probabilities.

        The arrivals are ``info["arrived"]``, or the observation's ``arrivals`` when ``info`` has
        none (SB3's ``predict``, or ``info_level`` ``counts`` / ``minimal``).

        Raises:
            RuntimeError: before ``reset(env=...)``: the agent's routing must be the env's.
        """
        self.require_env()
        assert self.env is not None
        path_fidelity = np.asarray(observation["path_fidelity"])
        if self._num_nodes == 0 or num_pairs(self._num_nodes) != len(path_fidelity):
            self._start(self.env)
        slot = int(info.get("next_slot", self._slot + 1))
        arrived = info["arrived"] if "arrived" in info else _arrived(observation)
        pairs = [
            r["pair"] if "pair" in r else self._pair_index[int(r["source"]), int(r["destination"])]
            for r in arrived
        ]
        self.predictor.observe(slot, np.asarray(pairs, dtype=np.int64))
        self._slot = slot
        probability = self.predictor.predict(slot)
        return algorithm2(
            probability,
            path_fidelity,
            held_or_in_flight(observation),
            self.threshold,
            self.min_fidelity,
            self.action_length(),
        )

    def __repr__(self) -> str:
        return (
            f"SpepAgent(name={self.name!r}, predictor={type(self.predictor).__name__}, "
            f"threshold={self.threshold}, min_fidelity={self.min_fidelity}, "
            f"routing={self.env_config['routing']!r})"
        )


def _arrived(observation: dict[str, np.ndarray]) -> list[dict[str, int]]:
    arrived: list[dict[str, int]] = info_from_observation(observation)["arrived"]
    return arrived


def make_spep(predictor_name: str, **kwargs: Any) -> SpepAgent:
    """A SPEP agent with a registered predictor (its default settings unless given).

    Agent keywords (:data:`AGENT_KWARGS`) go to the agent, the rest to the predictor.
    """
    agent_kw = {k: kwargs.pop(k) for k in AGENT_KWARGS if k in kwargs}
    predictor = make_predictor(predictor_name, **kwargs)
    agent_kw.setdefault("name", f"spep-{predictor_name}")
    return SpepAgent(predictor, **agent_kw)


for _name in PREDICTORS:
    register(f"spep-{_name}", lambda _p=_name, **kw: make_spep(_p, **kw))
