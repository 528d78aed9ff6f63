"""Sequence classifiers over windows of the last L feature rows: the zoo kinds 'lstm' and
'attention' (bot4.research.zoo), in PyTorch on the CPU (optional: `pip install 'bot4[deep]'`, which
pins torch 2.13.0).

Input: float32 [N, L * F], each row a window flattened oldest row first (bot4.research.windows);
the graph reshapes it to [N, L, F]. The same layout is the ONNX input, so the exported model has
the rank-2 input 'input' [N, L * F] and the output 'probabilities' [N, 2] that the core's ONNX
Runtime path takes (bot4.models.load_bytes with n_features = L * F).

Preprocessing is part of the module and so of the exported graph: a NaN feature is replaced by its
training median, then every feature is standardised by its training mean and standard deviation
(constant columns: scale 1). The statistics come from the fitting samples' own rows (the last F
columns of each window), so every feature row is counted once.

  lstm       one LSTM layer (hidden size `hidden`) over the L rows; the last step's state -> linear
             -> sigmoid.
  attention  linear embedding of each row plus a learned position embedding, then single-head
             scaled dot-product attention from the current (last) row over the L rows, a residual
             connection and LayerNorm -> linear -> sigmoid. No mask: every row of a window is at or
             before the decision.

Training: Adam on the binary cross-entropy, mini-batches shuffled by a seeded generator, a fixed
number of torch threads and torch's deterministic algorithms (restored afterwards), so a seed gives
the same weights. Early stopping on a purged validation fold: the last `validation_fraction` of the
training samples (in time) is held out, the fitting samples whose label interval [t0, t1] meets the
held-out span are dropped (bot4.research.splits.purge_mask), and the weights of the epoch with the
lowest validation loss are kept (training stops after `patience` epochs without improvement).
No sample weights (the other zoo models have none either).

Export: torch.onnx.export with the TorchScript exporter (dynamo=False; it writes the native ONNX
LSTM node), opset 17, batch dimension symbolic. ONNX Runtime agrees with torch to ~1e-7 on real
windows (the tests assert <= 1e-5, METHODS.md §12).
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

KINDS = ("lstm", "attention")
ONNX_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"

#: Training settings and their defaults (every key of `fit`'s params; others are refused).
DEFAULTS = {
    "length": 16,                 # L: feature rows per window (the input has L * F columns)
    "hidden": 16,                 # LSTM hidden size / attention model width
    "epochs": 30,                 # maximum passes over the fitting samples
    "batch_size": 128,            # samples per Adam step
    "lr": 3e-3,                   # Adam learning rate
    "weight_decay": 1e-4,         # Adam L2 penalty
    "patience": 4,                # epochs without a lower validation loss before stopping
    "validation_fraction": 0.2,   # last share of the training samples held out for early stopping
    "seed": 0,                    # torch and batch-order seed
    "n_jobs": 2,                  # torch intra-op threads while fitting
}


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise ValueError("the sequence models ('lstm', 'attention') need PyTorch: "
                         "pip install 'bot4[deep]' (torch 2.13.0, CPU)") from exc
    return torch


_MODULES: dict = {}


def _module_classes():
    """The torch module classes, defined on first use so importing this module needs no torch."""
    if _MODULES:
        return _MODULES
    torch = _torch()
    nn = torch.nn

    class _Pre(nn.Module):
        def __init__(self, length: int, n_features: int):
            super().__init__()
            self.length, self.n_features = length, n_features
            self.register_buffer("fill", torch.zeros(n_features))
            self.register_buffer("mean", torch.zeros(n_features))
            self.register_buffer("scale", torch.ones(n_features))

        def forward(self, x):
            x = x.reshape(-1, self.length, self.n_features)
            x = torch.where(torch.isnan(x), self.fill, x)
            return (x - self.mean) / self.scale

    class _Base(nn.Module):
        def forward(self, x):
            p = torch.sigmoid(self.logit(x))
            return torch.cat([1.0 - p, p], dim=1)

    class LSTMNet(_Base):
        def __init__(self, length: int, n_features: int, hidden: int):
            super().__init__()
            self.pre = _Pre(length, n_features)
            self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
            self.head = nn.Linear(hidden, 1)

        def logit(self, x):
            out, _ = self.lstm(self.pre(x))
            return self.head(out[:, -1, :])

    class AttentionNet(_Base):
        def __init__(self, length: int, n_features: int, hidden: int):
            super().__init__()
            self.pre = _Pre(length, n_features)
            self.embed = nn.Linear(n_features, hidden)
            self.position = nn.Parameter(torch.zeros(length, hidden))
            self.q = nn.Linear(hidden, hidden)
            self.k = nn.Linear(hidden, hidden)
            self.v = nn.Linear(hidden, hidden)
            self.norm = nn.LayerNorm(hidden)
            self.head = nn.Linear(hidden, 1)
            self.inv_sqrt_d = 1.0 / math.sqrt(hidden)
            nn.init.normal_(self.position, std=0.02)

        def logit(self, x):
            z = self.embed(self.pre(x)) + self.position                    # [N, L, d]
            q = self.q(z[:, -1:, :])                                         # [N, 1, d]: the current row asks
            scores = torch.matmul(q, self.k(z).transpose(1, 2)) * self.inv_sqrt_d   # [N, 1, L]
            h = torch.matmul(torch.softmax(scores, dim=-1), self.v(z))       # [N, 1, d]
            h = self.norm(z[:, -1:, :] + h)
            return self.head(h[:, 0, :])

    _MODULES.update(lstm=LSTMNet, attention=AttentionNet)
    return _MODULES


@dataclass
class SequenceClassifier:
    """A fitted sequence model: `predict_proba(X)` [N, 2] on flattened windows [N, length * n_features]
    (scikit-learn's convention), the torch module, its settings and the training history (per epoch
    the training and validation loss, the epoch kept, the purged and held-out sample counts)."""

    kind: str
    module: Any                    # the torch.nn.Module (eval mode)
    length: int                    # L, rows per window
    n_features: int                # F, features per row
    params: dict
    history: dict = field(default_factory=dict)

    @property
    def width(self) -> int:
        """Input columns, L * F."""
        return self.length * self.n_features

    def predict_proba(self, X) -> np.ndarray:
        """Float64 [N, 2] (P(0), P(1)) from torch, computed in float32 as the exported graph is."""
        torch = _torch()
        x = check_windows(X, self.length, self.n_features)
        with torch.no_grad():
            out = self.module(torch.from_numpy(x)).numpy()
        return out.astype(np.float64)


def check_windows(X, length: int, n_features: int | None = None) -> np.ndarray:
    """X as C-contiguous float32 [N, length * F]; ValueError for a wrong rank or width, an infinite
    value, or a row of a window that has no defined feature (every one NaN: not a feature row)."""
    x = np.asarray(X)
    if x.ndim != 2:
        raise ValueError(f"expected flattened windows, a 2-D array [samples, length * features], got shape {x.shape}")
    if n_features is None:
        if x.shape[1] % length or x.shape[1] == 0:
            raise ValueError(f"{x.shape[1]} columns are not windows of {length} rows (not a positive multiple)")
        n_features = x.shape[1] // length
    if x.shape[1] != length * n_features:
        raise ValueError(f"expected windows of {length} rows x {n_features} features = {length * n_features} "
                         f"columns, got {x.shape[1]} (a different window length or feature set)")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if np.isinf(x).any():
        i = int(np.argwhere(np.isinf(x))[0, 0])
        raise ValueError(f"sample {i} has an infinite feature value; features must be finite or NaN")
    empty = np.isnan(x.reshape(x.shape[0], length, n_features)).all(axis=2)
    if empty.any():
        i, k = (int(v) for v in np.argwhere(empty)[0])
        raise ValueError(f"sample {i}: row t-{length - 1 - k} of its window is all NaN ({n_features} features); "
                         "windows must be made of feature rows (bot4.research.windows.window_rows)")
    return x


def _params(params: dict) -> dict:
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown sequence-model settings {unknown} (known: {sorted(DEFAULTS)})")
    p = dict(DEFAULTS, **params)
    for key in ("length", "hidden", "epochs", "batch_size", "patience", "n_jobs"):
        if isinstance(p[key], bool) or int(p[key]) != p[key] or p[key] < 1:
            raise ValueError(f"{key} must be an integer >= 1, got {p[key]!r}")
        p[key] = int(p[key])
    if p["length"] < 2:
        raise ValueError(f"a sequence model needs windows of >= 2 rows, got length {p['length']}")
    if not 0 < p["validation_fraction"] < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {p['validation_fraction']!r}")
    if not p["lr"] > 0 or not p["weight_decay"] >= 0:
        raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {p['lr']!r}, {p['weight_decay']!r}")
    return p


def validation_split(t0, t1, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) sample indices: the last `fraction` of the samples validate, and fitting
    samples whose label interval meets the validation span [t0 of its first, max t1] are purged."""
    from bot4.research.splits import check_intervals, purge_mask

    t0, t1 = check_intervals(t0, t1)
    n = t0.size
    n_val = int(round(n * fraction))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"{n} samples cannot give a validation fold of {fraction:.0%}")
    val = np.arange(n - n_val, n, dtype=np.int64)
    fit = np.arange(n - n_val, dtype=np.int64)
    keep = purge_mask(t0[fit], t1[fit], [(int(t0[val[0]]), int(t1[val].max()))])
    return fit[keep], val


def _standardisation(x_fit: np.ndarray, length: int, n_features: int):
    """Median, mean and scale per feature from the fitting samples' own rows (last F columns)."""
    rows = x_fit.reshape(-1, length, n_features)[:, -1, :].astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # an all-NaN column: filled with 0 below
        fill = np.nanmedian(rows, axis=0)
    fill = np.where(np.isfinite(fill), fill, 0.0)
    filled = np.where(np.isnan(rows), fill, rows)
    mean = filled.mean(axis=0)
    std = filled.std(axis=0)
    scale = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    return fill, mean, scale


def fit(kind: str, X, y, params: dict | None = None, *, t0=None, t1=None) -> SequenceClassifier:
    """Fit a sequence model of `kind` ('lstm' or 'attention') on flattened windows X [N, L * F]
    (L = params['length']) with 0/1 labels y; t0, t1: each sample's label interval (ns or
    feature rows, any one unit), for the purged early-stopping fold. Settings: DEFAULTS.
    ValueError for an unknown kind or setting, bad windows (check_windows), one label class or
    too few samples."""
    if kind not in KINDS:
        raise ValueError(f"unknown sequence model {kind!r} (one of {KINDS})")
    p = _params(params or {})
    if t0 is None or t1 is None:
        raise ValueError("sequence models stop early on a purged validation fold: pass t0 and t1, "
                         "each sample's label interval")
    L = p["length"]
    x = check_windows(X, L)
    F = x.shape[1] // L
    yv = np.asarray(y)
    if yv.shape != (x.shape[0],):
        raise ValueError(f"y must be 1-D with one label per window ({x.shape[0]}), got shape {yv.shape}")
    if not np.isin(yv, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if np.asarray(t0).shape != yv.shape or np.asarray(t1).shape != yv.shape:
        raise ValueError("t0 and t1 need one value per sample")
    fit_idx, val_idx = validation_split(t0, t1, p["validation_fraction"])
    if np.unique(yv[fit_idx]).size < 2:
        raise ValueError("the fitting samples have a single label class")

    torch = _torch()
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(p["n_jobs"])
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(p["seed"])
        module = _module_classes()[kind](L, F, p["hidden"])
        fill, mean, scale = _standardisation(x[fit_idx], L, F)
        module.pre.fill.copy_(torch.from_numpy(fill.astype(np.float32)))
        module.pre.mean.copy_(torch.from_numpy(mean.astype(np.float32)))
        module.pre.scale.copy_(torch.from_numpy(scale.astype(np.float32)))
        history = _train(torch, module, x, yv.astype(np.float32), fit_idx, val_idx, p)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    module.eval()
    history.update(fit_samples=int(fit_idx.size), validation_samples=int(val_idx.size),
                   purged_samples=int(x.shape[0] - fit_idx.size - val_idx.size))
    return SequenceClassifier(kind=kind, module=module, length=L, n_features=F, params=p, history=history)


def _train(torch, module, x, y, fit_idx, val_idx, p) -> dict:
    loss_fn = torch.nn.BCEWithLogitsLoss()
    opt = torch.optim.Adam(module.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
    gen = torch.Generator().manual_seed(p["seed"])
    xf, yf = torch.from_numpy(x[fit_idx]), torch.from_numpy(y[fit_idx]).reshape(-1, 1)
    xv, yv = torch.from_numpy(x[val_idx]), torch.from_numpy(y[val_idx]).reshape(-1, 1)
    best, best_state, since = math.inf, None, 0
    train_loss, val_loss = [], []
    for _epoch in range(p["epochs"]):
        module.train()
        order = torch.randperm(xf.shape[0], generator=gen)
        total = 0.0
        for s in range(0, order.numel(), p["batch_size"]):
            b = order[s:s + p["batch_size"]]
            opt.zero_grad()
            loss = loss_fn(module.logit(xf[b]), yf[b])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * b.numel()
        module.eval()
        with torch.no_grad():
            v = float(loss_fn(module.logit(xv), yv))
        train_loss.append(total / order.numel())
        val_loss.append(v)
        if v < best:
            best, since = v, 0
            best_state = {k: t.detach().clone() for k, t in module.state_dict().items()}
        else:
            since += 1
            if since >= p["patience"]:
                break
    if best_state is None:
        raise ValueError(f"training diverged: the validation loss was never finite ({val_loss})")
    module.load_state_dict(best_state)
    return {"train_loss": train_loss, "validation_loss": val_loss, "best_epoch": int(np.argmin(val_loss)),
            "epochs_run": len(val_loss)}


def export(model: SequenceClassifier) -> bytes:
    """ONNX bytes (opset 17): input 'input' float32 [N, L * F] (N symbolic), output 'probabilities'
    float32 [N, 2]."""
    torch = _torch()
    example = torch.zeros(2, model.width)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of dynamo (which needs onnxscript), and it
        # warns about LSTM batch sizes: the windows have a fixed length, so neither applies
        warnings.simplefilter("ignore")
        torch.onnx.export(model.module, (example,), buf, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "rows"}, OUTPUT_NAME: {0: "rows"}},
                          opset_version=ONNX_OPSET, dynamo=False)
    return buf.getvalue()
