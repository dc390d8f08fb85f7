"""LSTM demand predictor (paper section IV-B2, SPEC 8), trained online with torch.

One small network is shared by all node pairs: its batch dimension runs over pairs, so it learns
"how a pair's recent demand and the time of day predict its next window" once, from every pair's
history at the same time, and it does not depend on the number of nodes (a saved model serves
any topology).
"""

from __future__ import annotations

import contextlib
import math
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.predictors.base import CountHistory, HourlyRates, Predictor
from spep_gym.batched.vector_env import torch_threads

__all__ = ["LSTMPredictor"]

_NUM_FEATURES = 4  # log1p(pair count), log1p(total count), sin and cos of the time of day


class _DemandLSTM(nn.Module):
    """The paper's network: LSTM(50) - dropout - LSTM(50) - dropout - dense sigmoid."""

    def __init__(self, hidden_size: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            _NUM_FEATURES,
            hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, 1)
        with torch.no_grad():  # start near a small probability: most pairs are idle
            self.head.bias.fill_(-3.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (batch, seq_len, features) -> (batch,) probabilities."""
        hidden, _ = self.lstm(x)
        return torch.sigmoid(self.head(self.dropout(hidden[:, -1]))).squeeze(-1)


#: Bytes a network parameter may cost while training: float32 weights, gradients, Adam's moments.
BYTES_PER_PARAMETER = 16


def parameter_count(hidden_size: int, num_layers: int) -> int:
    """Parameters of :class:`_DemandLSTM`: the LSTM layers (4 gates each) and the dense head."""
    h = hidden_size
    lstm = sum(4 * h * ((_NUM_FEATURES if i == 0 else h) + h) + 8 * h for i in range(num_layers))
    return lstm + h + 1


def _check_fits(hidden_size: int, num_layers: int) -> None:
    from spep_gym.resources import GIB, available_memory

    count = parameter_count(hidden_size, num_layers)
    need, have = count * BYTES_PER_PARAMETER, available_memory()
    if need > have:
        raise ValueError(
            f"hidden_size = {hidden_size!r} with num_layers = {num_layers!r} is invalid: the LSTM "
            f"would have {count:,} parameters, about {need / GIB:,.1f} GiB to train, more than the "
            f"{have / GIB:,.1f} GiB available: allowed a network that fits"
        )


def unique_rows(rows: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(rows, axis=0, return_inverse=True, return_counts=True)``, sorting fewer rows.

    ``same[i] >= 0`` promises that row i equals every other row with the same value of ``same``
    (the idle pairs of one anchor); ``same[i] < 0`` promises nothing. Each promised group is
    reduced to one row before ``np.unique`` sorts, which is most of its cost when most pairs are
    idle; the unique rows, their order, the inverse and the counts are ``np.unique``'s.
    """
    grouped = same >= 0
    _, first, group_of = np.unique(same[grouped], return_index=True, return_inverse=True)
    free = np.flatnonzero(~grouped)
    uniq, inv = np.unique(
        rows[np.concatenate([free, np.flatnonzero(grouped)[first]])], axis=0, return_inverse=True
    )
    inv = inv.reshape(-1)
    inverse = np.empty(len(rows), dtype=np.int64)
    inverse[free] = inv[: len(free)]
    inverse[grouped] = inv[len(free) :][group_of.reshape(-1)]
    return uniq, inverse, np.bincount(inverse, minlength=len(uniq))


class LSTMPredictor(Predictor):
    """Shared-weight LSTM over bucketed demand, retrained online on labels already known.

    Input at slot t, for each pair: the last ``seq_len`` windows of ``bucket_slots`` slots ending
    at t (window j covers slots ``(t - (L-1-j) B - B, t - (L-1-j) B]``), each step with four
    features: log1p of the pair's count, log1p of the total count, and sin/cos of the time of day
    at the end of the window. Output: the probability that the pair is requested in t+1..t+W.
    Windows slide with t, so a prediction is available every slot and spans ``seq_len *
    bucket_slots`` slots (360 by default: 1.5 days, so "this time yesterday" is in view).

    Training (no leakage): an anchor slot a is a training example only once its label window
    (a, a+W] has been observed, i.e. ``a <= t - W``. Anchors are taken every ``anchor_stride``
    slots from the last ``train_window_slots`` slots; the k pairs with identical inputs at one
    anchor are merged into one example with their mean label, which shrinks the many all-zero
    pairs to one example. The loss is the MSE of SPEC 8 over the (anchor, pair) examples: the
    merged example is weighted by k, so that its squared error equals the k examples' sum up to a
    constant (dropout aside), an exact merge. ``sqrt_weighting=True`` weights it by sqrt(k)
    instead, a reweighted MSE in which the many idle pairs count for less than they do in the data
    (an earlier version trained so, because with weight k and most pairs idle the model could
    settle near a constant); it is off by default, so that the loss is the one SPEC 8 names, and
    kept for comparison. Training starts once ``min_train_slots`` anchor slots
    with full history exist and is repeated every ``retrain_interval`` slots for ``epochs``
    epochs, warm-started (weights and Adam state kept). Until the first training the predictor
    returns the frequency estimate of the window probability (:class:`HourlyRates`).

    Args:
        seq_len: L, sequence length in buckets.
        bucket_slots: B, slots per sequence step; None uses the prediction window.
        hidden_size: LSTM units per layer (paper: 50).
        num_layers: LSTM layers (paper: 2).
        dropout: Dropout after each LSTM layer (paper: 0.2).
        learning_rate: Adam learning rate.
        retrain_interval: Slots between trainings; 0 never trains (use with a loaded model).
        epochs: Passes over the training set per retraining (warm-started).
        first_epochs: Passes at the first training, from fresh weights.
        batch_size: Minibatch size.
        max_train_samples: Cap on merged examples per training (drawn at random, seeded).
        train_window_slots: Anchors come from this many most recent slots.
        anchor_stride: Slots between consecutive anchors.
        min_train_slots: Anchor slots with full history needed before the first training; None
            waits for a whole day of them, so that every time of day is in the training set
            (trained on part of a day, the time features extrapolate badly).
        device: torch device, "cpu" or "cuda".
        sqrt_weighting: Weight a merged example by sqrt(k) instead of k (off: the true MSE).
        num_threads: torch intra-op threads while training and predicting (restored after).

    Raises:
        ValueError: a setting out of range, or a network whose parameters (with their gradients
            and Adam's moments) would not fit in the memory available: checked here, before
            anything is allocated, so a saved file with a huge ``hidden_size`` is refused on load.
    """

    name = "lstm"

    def __init__(
        self,
        seq_len: int = 24,
        bucket_slots: int | None = None,
        hidden_size: int = 50,
        num_layers: int = 2,
        dropout: float = 0.2,
        learning_rate: float = 3e-3,
        retrain_interval: int = 240,
        epochs: int = 4,
        first_epochs: int = 20,
        batch_size: int = 64,
        max_train_samples: int = 1024,
        train_window_slots: int = 1440,
        anchor_stride: int = 3,
        min_train_slots: int | None = None,
        sqrt_weighting: bool = False,
        device: str = "cpu",
        num_threads: int = 1,
    ) -> None:
        super().__init__()
        if seq_len < 1 or (bucket_slots is not None and bucket_slots < 1):
            raise ValueError("seq_len and bucket_slots must be positive")
        if retrain_interval < 0 or epochs < 1 or batch_size < 1 or anchor_stride < 1:
            raise ValueError("retrain_interval >= 0, epochs, batch_size, anchor_stride >= 1")
        for key, value in (("hidden_size", hidden_size), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} = {value!r} is invalid: allowed an integer >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout = {dropout!r} is invalid: allowed a number in [0, 1)")
        _check_fits(hidden_size, num_layers)
        self.config: dict[str, Any] = {
            "seq_len": seq_len,
            "bucket_slots": bucket_slots,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "dropout": dropout,
            "learning_rate": learning_rate,
            "retrain_interval": retrain_interval,
            "epochs": epochs,
            "first_epochs": first_epochs,
            "batch_size": batch_size,
            "max_train_samples": max_train_samples,
            "train_window_slots": train_window_slots,
            "anchor_stride": anchor_stride,
            "min_train_slots": min_train_slots,
            "sqrt_weighting": bool(sqrt_weighting),
        }
        self.seq_len = seq_len
        self.retrain_interval = retrain_interval
        self.num_threads = num_threads
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("LSTMPredictor(device='cuda'): CUDA is not available; use 'cpu'")
        self._pretrained: dict[str, torch.Tensor] | None = None
        self.model: _DemandLSTM | None = None
        self.trained = False
        self.trainings = 0

    @property
    def bucket_slots(self) -> int:
        """B, slots per sequence step (the prediction window unless set)."""
        b = self.config["bucket_slots"]
        return int(b) if b is not None else self.prediction_window

    def history_slots(self) -> int:
        """Slots of count history the predictor reads (what its :class:`CountHistory` keeps).

        The input span of a prediction; when it trains, also the training window, the label
        window and the input span of the oldest anchor.
        """
        span = self.seq_len * self.bucket_slots
        if self.retrain_interval == 0:
            return span
        return span + self.config["train_window_slots"] + self.prediction_window

    def _reset(self) -> None:
        self._history = CountHistory(self.num_pairs, max_slots=self.history_slots())
        self._rates = HourlyRates(self.num_pairs, self.slots_per_day)
        self._rng = np.random.default_rng(self.seed)
        self._last_train: int | None = None
        self.trainings = 0
        cfg = self.config
        with self._seeded(int(self._rng.integers(2**62))):
            self.model = _DemandLSTM(cfg["hidden_size"], cfg["num_layers"], cfg["dropout"])
        if self._pretrained is not None:
            self.model.load_state_dict(self._pretrained)
        self.model.to(self.device)
        self.model.eval()  # dropout only while training
        self.trained = self._pretrained is not None
        self._optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg["learning_rate"])

    def _seeded(self, seed: int) -> contextlib.AbstractContextManager[Any]:
        """Fork torch's global generators, seed them, and restore them on exit."""
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        ctx = torch.random.fork_rng(devices=devices)

        @contextlib.contextmanager
        def seeded() -> Iterator[None]:
            with ctx:
                torch.manual_seed(seed)
                yield

        return seeded()

    # --- features -----------------------------------------------------------------------------

    def _sequences(self, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pair counts ``(A, L, P)`` and shared features ``(A, L, 3)`` for anchor slots."""
        b, length = self.bucket_slots, self.seq_len
        offsets = (np.arange(length) - (length - 1)) * b
        ends = anchors[:, None] + offsets[None, :]
        counts = self._history.window_sums(ends.reshape(-1), b).reshape(len(anchors), length, -1)
        angle = 2.0 * math.pi * ((ends + 1) % self.slots_per_day) / self.slots_per_day
        shared = np.stack([np.log1p(counts.sum(axis=2)), np.sin(angle), np.cos(angle)], axis=2)
        return counts, shared

    @staticmethod
    def _features(counts: np.ndarray, shared: np.ndarray) -> np.ndarray:
        """Stack ``(N, L)`` pair counts with ``(N, L, 3)`` shared features -> ``(N, L, 4)``."""
        return np.concatenate([np.log1p(counts)[:, :, None], shared], axis=2).astype(np.float32)

    # --- training -----------------------------------------------------------------------------

    def _observe(self, slot: int, pairs: np.ndarray) -> None:
        self._history.append(pairs)
        self._rates.add(slot, pairs)
        if self.retrain_interval == 0:
            return
        if self._last_train is not None and slot - self._last_train < self.retrain_interval:
            return
        first = self.seq_len * self.bucket_slots - 1
        last = slot - self.prediction_window
        needed = self.config["min_train_slots"] or self.slots_per_day
        if last - first + 1 < needed:
            return
        self._train(max(first, last - self.config["train_window_slots"] + 1), last)
        self._last_train = slot

    def _training_set(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Merged examples from anchors in [first, last]: inputs, mean labels, weights."""
        anchors = np.arange(last, first - 1, -self.config["anchor_stride"])[::-1]
        counts, shared = self._sequences(anchors)
        w = self.prediction_window
        labels = self._history.window_sums(anchors + w, w) > 0  # (A, P), all slots <= last + W
        a, length, p = counts.shape
        anchor = np.repeat(np.arange(a), p)
        per_pair = counts.transpose(0, 2, 1).reshape(a * p, length)
        keys = np.concatenate([anchor[:, None], per_pair], axis=1)
        idle = np.where(per_pair.any(axis=1), -1, anchor)  # idle pairs of an anchor are equal
        uniq, inverse, weights = unique_rows(keys, idle)
        mean_labels = np.bincount(inverse, weights=labels.reshape(-1)) / weights
        if len(uniq) > self.config["max_train_samples"]:
            keep = np.sort(
                self._rng.choice(len(uniq), self.config["max_train_samples"], replace=False)
            )
            uniq, mean_labels, weights = uniq[keep], mean_labels[keep], weights[keep]
        x = self._features(uniq[:, 1:], shared[uniq[:, 0]])
        if self.config["sqrt_weighting"]:
            weights = np.sqrt(weights)
        return x, mean_labels.astype(np.float32), weights.astype(np.float32)

    def _train(self, first: int, last: int) -> None:
        """A few epochs of MSE on the merged examples (weighted k, or sqrt(k)), warm-started."""
        assert self.model is not None
        x_np, y_np, w_np = self._training_set(first, last)
        x = torch.from_numpy(x_np).to(self.device)
        y = torch.from_numpy(y_np).to(self.device)
        wt = torch.from_numpy(w_np).to(self.device)
        bs = self.config["batch_size"]
        with torch_threads(self.num_threads), self._seeded(int(self._rng.integers(2**62))):
            self.model.train()
            epochs = self.config["epochs"] if self.trained else self.config["first_epochs"]
            for _ in range(epochs):
                order = torch.randperm(len(x), device=self.device)
                for start in range(0, len(x), bs):
                    idx = order[start : start + bs]
                    self._optimizer.zero_grad()
                    err = (self.model(x[idx]) - y[idx]) ** 2
                    loss = (err * wt[idx]).sum() / wt[idx].sum()
                    loss.backward()
                    self._optimizer.step()
            self.model.eval()
        self.trained = True
        self.trainings += 1

    # --- prediction ---------------------------------------------------------------------------

    def _predict(self, slot: int) -> np.ndarray:
        if not self.trained:
            return self._rates.window_probability(slot, self.prediction_window)
        assert self.model is not None
        counts, shared = self._sequences(np.array([slot]))
        per_pair = counts[0].T  # (P, L)
        uniq, inverse, _ = unique_rows(per_pair, np.where(per_pair.any(axis=1), -1, 0))
        x = self._features(uniq, np.broadcast_to(shared, (len(uniq), *shared.shape[1:])))
        with torch_threads(self.num_threads), torch.inference_mode():
            out = self.model(torch.from_numpy(x).to(self.device)).cpu().numpy()
        return out.astype(np.float64)[inverse]

    # --- persistence --------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Save the config and weights (``torch.save`` of plain dicts, loadable weights_only)."""
        if self.model is None:
            raise RuntimeError("nothing to save: call reset() (and train) first")
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        torch.save({"config": dict(self.config), "state_dict": state}, path)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", **overrides: Any) -> LSTMPredictor:
        """Load a saved predictor; call ``reset()`` before use (the weights survive resets).

        Args:
            path: File written by :meth:`save`.
            device: torch device for the loaded model.
            **overrides: Config fields to change, e.g. ``retrain_interval=0`` to freeze it.
        """
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
            raise ValueError(f"{path}: not a saved LSTMPredictor ({err})") from None
        if not isinstance(data, dict) or not {"config", "state_dict"} <= set(data):
            raise ValueError(f"{path}: allowed a file of LSTMPredictor.save (config, state_dict)")
        config = {**data["config"], **overrides}
        try:
            predictor = cls(device=device, **config)
        except TypeError as err:
            raise ValueError(f"{path}: config is invalid ({err})") from None
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        try:  # the saved weights' names and shapes, checked on a network that allocates nothing
            with torch.device("meta"):
                probe = _DemandLSTM(config["hidden_size"], config["num_layers"], config["dropout"])
            probe.load_state_dict(data["state_dict"], assign=True)
        except RuntimeError as err:  # missing keys or shapes other than the config's
            first = str(err).split("\n\t")[1:2] or [str(err)]
            raise ValueError(
                f"{path}: the saved weights do not fit its config ({first[0].strip()})"
            ) from None
        predictor._pretrained = data["state_dict"]
        return predictor
