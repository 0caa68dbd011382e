"""A draft for SmolLM2-135M: a small GPT over part of its vocabulary, taught by its greedy choices.

Speculative decoding (``generation.speculative``) pays only when a draft is
cheap beside the target and agrees with it often: ``workbench bench llm``
measures that on this machine SmolLM2's quantized forward over 3 new tokens
costs about 1.4 decode steps, so drafting k = 2 tokens reaches 1.3x plain
greedy decoding only if about 60% of drafted tokens stand.

**What the draft is.** A GPT (``models.gpt``, the Llama recipe) of
``SHAPE``, over the SmolLM2 tokens that its training text uses: row 0 is one
shared "other" token for the rest of the 49,152, read as input and never
proposed. :class:`SubVocabDraft` maps ids in and scatters logits out, so to
``speculative_generate`` it is a model with the target's vocabulary. Its
embedding starts from SmolLM2's own rows, projected on their first
``d_model`` principal components, so the draft starts out knowing which tokens
are alike.

**What teaches it.** Sequence-level knowledge distillation (Kim & Rush,
2016): the student learns the teacher's outputs, not the data's. Under greedy
decoding a drafted token stands exactly when it is the target's argmax
(Leviathan et al., 2023), so every label is the quantized target's
argmax at that position:

- after each token of a ``PROMPT``-token window of the plays' first 90%
  (teacher forcing: what the target would say next in real text), and
- after each token of its own ``CONTINUATION``-token greedy continuation of
  the window: the text greedy decoding really produces, repeats and loops
  included, which a draft must learn to copy.

``workbench train smollm2-draft`` rebuilds the shipped file: on two cores,
labelling took about 37 minutes and training 17.

Example::

    >>> draft = load()                            # the shipped weights
    >>> draft(torch.tensor([[504, 3656]])).shape  # (B, T, V): SmolLM2's V
    torch.Size([1, 2, 49152])
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workbench_engines.errors import EngineError
from workbench_engines.models.gpt import GPT, GPTConfig

NAME = "smollm2-draft"
SUMMARY = "3 layers, d_model 192, over the SmolLM2 tokens its text uses, taught by SmolLM2's greedy choices"
WEIGHTS_FILE = Path(__file__).parent / "weights" / f"{NAME}.pt"
SHAPE = {"context": 512, "d_model": 192, "n_layers": 3, "n_heads": 6}
"""The draft's GPTConfig without its vocabulary, which the training text decides."""
PROMPT = 64
"""Tokens of the plays in each training window (labelled by teacher forcing)."""
CONTINUATION = 128
"""Tokens of the target's greedy continuation after each window (labelled by the next token it chose)."""
TRAIN_SHARE = 0.9
"""Windows start in this first share of the plays' tokens; the rest is held out for the bench's prompts."""
LABEL_BATCH = 48
"""Windows the target labels in one batched forward."""
WINDOWS = 52 * LABEL_BATCH
VAL_WINDOWS = 96
"""The last windows labelled, kept out of training to measure agreement (their text is from the same first 90%
of the plays, so they are unseen windows, not unseen text; the bench's prompts come from the last 10%)."""
PROPOSE_LEAST = 2
"""A token the target chose fewer times than this in the training rows is read but never proposed: the scoring
matrix, which every drafted token reads, then holds 4,267 rows instead of 10,870 and covers 99.6% of choices."""
SEED = 1
TRAIN = {"steps": 600, "batch_size": 32, "seq_len": PROMPT + CONTINUATION - 1, "lr": 3e-3, "warmup": 60,
         "eval_every": 100, "eval_windows": VAL_WINDOWS, "checkpoint_every": 50, "seed": SEED}
"""TrainConfig fields: seq_len is one whole window (its prompt and all but the continuation's last token)."""


class SubVocabDraft(nn.Module):
    """A GPT over a subset of a larger vocabulary that reads and scores ids of the larger one.

    ``keep`` lists the full-vocabulary ids the inner model knows, in the order of its rows 1..n; its row 0
    stands for every other id. ``propose``, a subset of keep, lists the ids it may propose: only their rows
    of the tied embedding are scored (a copy made once, so a decoding step reads no other row), and every
    other id's logit is −∞, so greedy and sampled decoding never draft it, and a target that wants one simply
    rejects the draft there.

    Args:
        inner: The GPT, with vocab_size = len(keep) + 1.
        keep: (n,) distinct ids of the full vocabulary, each below ``vocab_size``.
        vocab_size: The full vocabulary's size (the target's).
        propose: Ids of keep the draft may propose; None for all of keep.

    Raises:
        EngineError: keep has repeats, ids out of range, or does not match the inner model's rows; or propose
            is not a subset of keep.
    """

    def __init__(self, inner: GPT, keep: torch.Tensor, vocab_size: int, propose: torch.Tensor | None = None) -> None:
        super().__init__()
        keep = torch.as_tensor(keep, dtype=torch.long)
        if keep.ndim != 1 or len(keep) + 1 != inner.config.vocab_size:
            rows = inner.config.vocab_size
            raise EngineError(f"the inner model has {rows} rows: it needs {rows - 1} kept ids and the shared one, "
                              f"got {tuple(keep.shape)}")
        if len(keep) and (int(keep.min()) < 0 or int(keep.max()) >= vocab_size):
            raise EngineError(f"kept ids must lie in [0, {vocab_size}), got {int(keep.min())}..{int(keep.max())}")
        if len(torch.unique(keep)) != len(keep):
            raise EngineError("kept ids must be distinct")
        self.inner = inner
        self.config = dataclasses.replace(inner.config, vocab_size=vocab_size)
        self.register_buffer("keep", keep)
        to_inner = torch.zeros(vocab_size, dtype=torch.long)
        to_inner[keep] = torch.arange(1, len(keep) + 1)
        self.register_buffer("to_inner", to_inner)
        propose = torch.unique(keep if propose is None else torch.as_tensor(propose, dtype=torch.long))  # sorted
        if len(propose) and (int(propose.min()) < 0 or int(propose.max()) >= vocab_size
                             or not bool((to_inner[propose] > 0).all())):
            raise EngineError("the proposed ids must be kept ids")
        self.register_buffer("propose", propose, persistent=False)  # saved by export, beside keep
        self.refresh()
        self.register_load_state_dict_post_hook(lambda module, keys: module.refresh())

    def refresh(self) -> None:
        """Copy the proposed ids' embedding rows into the scoring matrix. ``eval()`` and ``load_state_dict`` call
        it: in eval mode scores use the rows as of the last of those; in train mode ``forward`` reads them from
        the embedding itself."""
        self.scoring = self.inner.embed.weight.detach()[self.to_inner[self.propose]].clone()  # (P, C)

    def train(self, mode: bool = True) -> SubVocabDraft:
        """nn.Module.train, refreshing the scoring matrix on the way into eval mode."""
        super().train(mode)
        if not mode:
            self.refresh()
        return self

    def inner_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """The inner model's ids for full-vocabulary ids: their rows, or 0 for an id it does not keep."""
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.config.vocab_size):
            raise EngineError(f"token ids must lie in [0, {self.config.vocab_size})")
        return self.to_inner[ids]

    def forward(self, ids: torch.Tensor, cache=None, last_only: bool = False) -> torch.Tensor:
        """Full-vocabulary logits (B, T, V) for full-vocabulary ids (B, T), as ``GPT.forward``: the proposed
        ids' scores, −∞ for every other id."""
        scoring = self.inner.embed.weight[self.to_inner[self.propose]] if self.training else self.scoring  # (P, C)
        scores = F.linear(self.inner.features(self.inner_ids(ids), cache, last_only), scoring)  # (B, T, P)
        out = scores.new_full((*scores.shape[:-1], self.config.vocab_size), float("-inf"))  # (B, T, V)
        out[..., self.propose] = scores
        return out


def label_windows(target, ids: np.ndarray, *, windows: int = WINDOWS, prompt: int = PROMPT,
                  continuation: int = CONTINUATION, batch: int = LABEL_BATCH, seed: int = SEED,
                  done: tuple[np.ndarray, np.ndarray] | None = None,
                  on_batch: Callable[[np.ndarray, np.ndarray], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Windows of text and the target's greedy choice after each of their tokens.

    Each batch draws ``batch`` window starts from the first TRAIN_SHARE of ``ids``, runs the target over the
    windows (one batched prefill: its argmax after every prompt token) and then decodes greedily for
    ``continuation`` tokens. A row's inputs are its prompt and all but the last generated token; its labels are
    the argmax after each of them, so input t + 1 equals label t wherever the target wrote the text.

    Args:
        target: A GPT-like model (``llama.load(...).model``), called as target(ids, cache).
        ids: The corpus' tokens in the target's vocabulary.
        windows: Rows in all (a multiple of ``batch``).
        prompt, continuation: Tokens of text and of greedy continuation per row.
        batch: Rows per batched forward.
        seed: Seeds the window starts (one draw of ``batch`` per batch, so a resumed run draws the same).
        done: Rows labelled by an earlier, interrupted run of the same settings; labelling resumes after them.
        on_batch: Called with (inputs, labels) so far after every batch (to save them, to show progress).
        should_stop: Polled before every batch; True stops early and returns the rows so far.

    Returns:
        (inputs, labels): int32, (rows, prompt + continuation − 1) each.

    Raises:
        EngineError: windows not a positive multiple of batch, or a corpus too short for one window.
    """
    from workbench_engines.kvcache import ContiguousCache

    if batch < 1 or windows < batch or windows % batch:
        raise EngineError(f"windows ({windows}) must be a positive multiple of the batch ({batch})")
    end = int(len(ids) * TRAIN_SHARE)
    if end <= prompt:
        raise EngineError(f"{len(ids)} tokens are too few for windows of {prompt} in their first {TRAIN_SHARE:.0%}")
    if done is not None:
        shape = done[0].shape
        if (done[1].shape != shape or len(shape) != 2 or shape[1] != prompt + continuation - 1 or shape[0] % batch
                or shape[0] > windows):
            raise EngineError(f"the saved labels ({done[0].shape} and {done[1].shape}) were made under other settings "
                              f"than {windows} windows of {prompt} + {continuation} tokens in batches of {batch}; "
                              "start over (workbench train: --fresh)")
    rng = np.random.default_rng(seed)
    inputs, labels = (list(done[0]), list(done[1])) if done is not None else ([], [])
    with torch.inference_mode():
        for first in range(0, windows, batch):
            starts = rng.integers(0, end - prompt, batch)  # drawn even for rows already done: same windows
            if first < len(inputs):
                continue
            if should_stop is not None and should_stop():
                break
            text = torch.from_numpy(np.stack([ids[s : s + prompt] for s in starts]).astype(np.int64))  # (B, P)
            cache = ContiguousCache(target.config, batch, prompt + continuation)
            taught = target(text, cache).argmax(-1)  # (B, P): the argmax after each prompt token
            token = taught[:, -1:]  # (B, 1)
            written = [token]
            for _ in range(continuation - 1):
                token = target(token, cache)[:, -1:].argmax(-1)
                written.append(token)
            wrote = torch.cat(written, 1)  # (B, N)
            inputs += list(torch.cat([text, wrote[:, :-1]], 1).numpy().astype(np.int32))
            labels += list(torch.cat([taught, wrote[:, 1:]], 1).numpy().astype(np.int32))
            if on_batch is not None:
                on_batch(np.stack(inputs), np.stack(labels))
    return np.stack(inputs), np.stack(labels)


def vocabulary(inputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The ids a draft trained on these rows keeps: every id they use, sorted."""
    return np.union1d(np.unique(inputs), np.unique(labels)).astype(np.int64)


def proposals(labels: np.ndarray, least: int = PROPOSE_LEAST) -> np.ndarray:
    """The ids a draft trained on these labels proposes: those the target chose at least ``least`` times."""
    ids, counts = np.unique(labels, return_counts=True)
    return ids[counts >= least].astype(np.int64)


def projected_embedding(rows: torch.Tensor, width: int, std: float = 0.02) -> torch.Tensor:
    """``rows`` (n, C_big) projected on their first ``width`` principal components, scaled to ``std`` per entry:
    a narrow embedding in which tokens the big model holds alike start alike."""
    centred = rows.float() - rows.float().mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)  # v: (C_big, C_big), components as rows
    projected = centred @ v[:width].T  # (n, width)
    return projected * (std / projected.std())


class LabelledRows:
    """Rows of inputs and labels in the shape ``train.train`` samples: windows (B, 2, T), inputs then labels.

    The last ``val_rows`` rows are the validation split; every window is one whole row (seq_len must be the
    rows' length), so each label was chosen after exactly the inputs the model sees.
    """

    def __init__(self, inputs: np.ndarray, labels: np.ndarray, val_rows: int) -> None:
        if inputs.shape != labels.shape or inputs.ndim != 2:
            raise EngineError(f"inputs {inputs.shape} and labels {labels.shape} must be the same (rows, T)")
        if not 0 < val_rows < len(inputs):
            raise EngineError(f"val_rows must be between 1 and {len(inputs) - 1}, got {val_rows}")
        self.rows = np.stack([inputs, labels], 1)  # (rows, 2, T)
        self.train, self.val = self.rows[:-val_rows], self.rows[-val_rows:]

    def _check(self, seq_len: int) -> None:
        if seq_len != self.rows.shape[2]:
            raise EngineError(f"seq_len must be the rows' length, {self.rows.shape[2]}, got {seq_len}")

    def windows(self, split: str, rng: np.random.Generator, batch: int, seq_len: int) -> np.ndarray:
        """``batch`` random rows of ``split`` ("train" or anything else for validation): (B, 2, T)."""
        self._check(seq_len)
        rows = self.train if split == "train" else self.val
        return rows[rng.integers(0, len(rows), batch)]

    def val_windows(self, seq_len: int, limit: int) -> np.ndarray:
        """The first ``limit`` validation rows, the same every time: (n, 2, T)."""
        self._check(seq_len)
        return self.val[:limit]


def label_loss(model: SubVocabDraft, window: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the draft's scores (on window[:, 0]) against the target's choices (window[:, 1]), over
    the inner model's rows: a choice the draft does not keep is a lesson in scoring row 0, "other"."""
    logits = model.inner(model.inner_ids(window[:, 0]))  # (B, T, n + 1)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), model.inner_ids(window[:, 1]).reshape(-1))


@torch.no_grad()
def agreement(draft: SubVocabDraft, inputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(rows, T) bool: where the draft's argmax is the target's. Its mean is greedy speculative decoding's
    acceptance on this text, were every drafted token scored after the true prefix."""
    hits = []
    for rows in np.array_split(np.arange(len(inputs)), max(1, len(inputs) // 16)):
        logits = draft(torch.from_numpy(inputs[rows].astype(np.int64)))  # (b, T, V)
        hits.append(logits.argmax(-1).numpy() == labels[rows])
    return np.concatenate(hits)


_PLAYS: dict[int, tuple[object, np.ndarray]] = {}
"""id(tokenizer) -> (the tokenizer, the plays in its tokens): a dataclass tokenizer is not hashable."""


def plays_ids(target) -> np.ndarray:
    """The plays in the target's tokens (int64; encoded once per tokenizer and process, read-only)."""
    from workbench_engines.corpus import read_text

    tokenizer = target.tokenizer
    held = _PLAYS.get(id(tokenizer))
    if held is None or held[0] is not tokenizer:
        ids = np.asarray(tokenizer.encode(read_text()), dtype=np.int64)
        ids.flags.writeable = False
        _PLAYS[id(tokenizer)] = held = (tokenizer, ids)
    return held[1]


def held_out_start(ids: np.ndarray) -> int:
    """The first token of the plays no training window starts in or reaches: bench prompts come from here on."""
    return int(len(ids) * TRAIN_SHARE) + PROMPT


@dataclasses.dataclass
class Trained:
    """A trained draft and the figures stored beside its weights."""

    model: SubVocabDraft
    meta: dict


def export(draft: SubVocabDraft, path: Path, meta: dict) -> Path:
    """Save the draft as ``small_gpt.export_weights`` saves a GPT (fp16, written whole), with its kept and proposed
    ids and the full vocabulary's size."""
    from workbench_engines.models.small_gpt import export_weights

    return export_weights(draft.inner, path, meta, {"keep": draft.keep.clone(), "propose": draft.propose.clone(),
                                                     "vocab_size": draft.config.vocab_size})


def load_file(path: Path) -> Trained:
    """A draft from a file ``export`` wrote, in float32 and eval mode.

    Raises:
        EngineError: no such file, or not a draft's weights.
    """
    from workbench_engines.models.small_gpt import read_weights

    saved = read_weights(path, NAME)
    try:
        inner = GPT(GPTConfig(**saved["config"]))
        inner.load_state_dict({k: v.float() for k, v in saved["state"].items()})
        draft = SubVocabDraft(inner, saved["keep"], int(saved["vocab_size"]), saved["propose"])
    except EngineError:
        raise
    except Exception as exc:  # noqa: BLE001 - a weights file of another model
        raise EngineError(f"{path}: not a draft's weights ({exc})") from exc
    draft.eval().requires_grad_(False)
    return Trained(draft, dict(saved.get("meta", {})))


@cache
def load() -> SubVocabDraft:
    """The shipped draft, loaded once per process."""
    return load_file(WEIGHTS_FILE).model


def train_draft(out_dir: Path, *, resume: bool = True, steps: int | None = None,
                on_label: Callable[[int, int], None] | None = None, on_step: Callable | None = None,
                should_stop: Callable[[], bool] | None = None, threads: int | None = None) -> Trained:
    """Label windows with the quantized SmolLM2, train the draft on them, and export it to out_dir.

    Labels are saved after every batch (``<NAME>-labels.npz``) and training checkpoints every
    TRAIN["checkpoint_every"] steps, so an interrupted run resumes where it stopped.

    Args:
        out_dir: Receives the labels, the checkpoint and ``<NAME>.pt``.
        resume: Continue from out_dir's labels and checkpoint.
        steps: Overrides TRAIN["steps"].
        on_label: Called with (rows labelled, rows in all) after every batch.
        on_step: Passed to train: called with each StepReport.
        should_stop: Polled between label batches and training steps.
        threads: torch's and the C kernels' thread count (default: every CPU this process may use).

    Raises:
        Cancelled: should_stop() returned True.
        EngineError: a checkpoint saved for other settings.
    """
    from workbench_engines.errors import Cancelled
    from workbench_engines.models import llama
    from workbench_engines.models.train import TrainConfig, train

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    target = llama.load(weights="quantized", threads=threads)
    labels_path = out_dir / f"{NAME}-labels.npz"
    done = None
    if resume and labels_path.exists():
        try:
            with np.load(labels_path) as saved:
                done = (saved["inputs"], saved["labels"])
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
            raise EngineError(f"{labels_path}: not this draft's saved labels ({exc}); start over with --fresh") from exc
        if on_label is not None:
            on_label(len(done[0]), WINDOWS)

    def save(inputs: np.ndarray, labels: np.ndarray) -> None:
        tmp = labels_path.with_name(labels_path.name + ".tmp.npz")
        np.savez(tmp, inputs=inputs, labels=labels)
        tmp.replace(labels_path)
        if on_label is not None:
            on_label(len(inputs), WINDOWS)

    started = time.perf_counter()
    inputs, labels = label_windows(target.model, plays_ids(target), done=done, on_batch=save, should_stop=should_stop)
    if len(inputs) < WINDOWS:
        raise Cancelled(f"labelling stopped after {len(inputs)} of {WINDOWS} windows, the labels so far saved")
    keep = vocabulary(inputs[:-VAL_WINDOWS], labels[:-VAL_WINDOWS])
    torch.manual_seed(SEED)
    inner = GPT(GPTConfig(vocab_size=len(keep) + 1, **SHAPE))
    with torch.no_grad():
        inner.embed.weight[1:] = projected_embedding(target.model.embed(torch.from_numpy(keep)), SHAPE["d_model"])
    draft = SubVocabDraft(inner, torch.from_numpy(keep), target.config.vocab_size,
                          torch.from_numpy(proposals(labels[:-VAL_WINDOWS])))
    data = LabelledRows(inputs, labels, VAL_WINDOWS)
    config = TrainConfig(**{**TRAIN, **({"steps": steps} if steps else {})})
    result = train(draft, data, config, model_config={**inner.config.as_dict(), "kept": len(keep)},
                   checkpoint=out_dir / f"{NAME}.ckpt", resume=resume, on_step=on_step, should_stop=should_stop,
                   loss_fn=label_loss)
    draft.eval().requires_grad_(False)
    hits = agreement(draft, inputs[-VAL_WINDOWS:], labels[-VAL_WINDOWS:])  # (rows, T)
    meta = {
        "parameters": inner.parameter_count(),
        "kept_tokens": len(keep),
        "proposed_tokens": len(draft.propose),
        "val_loss": result.final_val_loss,
        "steps": result.steps,
        "windows": len(inputs) - VAL_WINDOWS,
        "train_positions": int((len(inputs) - VAL_WINDOWS) * inputs.shape[1]),
        "agreement": float(hits.mean()),
        "agreement_text": float(hits[:, :PROMPT].mean()),
        "agreement_continuations": float(hits[:, PROMPT:].mean()),
        "seconds_this_run": time.perf_counter() - started,
        "train_config": asdict(config),
        "val_curve": result.val_losses,
    }
    export(draft, out_dir / f"{NAME}.pt", meta)
    return Trained(draft, meta)
