"""The training parts written out by hand: cross-entropy with its gradient, AdamW, clipping and the schedule.

Each has a parity test against torch's own (tests/test_optim.py), and the
training loop runs on them with ``TrainConfig(parts="hand")``:

- ``loss``: cross-entropy through logsumexp, its gradient softmax − one-hot, and an autograd op using it;
- ``adamw``: AdamW with bias-corrected moments and decoupled weight decay (Loshchilov & Hutter, 2019);
- ``clip``: global-norm gradient clipping (Pascanu et al., 2013);
- ``schedule``: linear warm-up, then a cosine down to a floor;
- ``compare``: one small GPT trained on torch's parts and on these, step for step;
- ``bench``: benchmark cases racing these against torch's at one thread.

Nothing here imports torch until a function runs.
"""

from workbench_engines.optim.adamw import AdamW, optimizer_state_bytes
from workbench_engines.optim.clip import clip_grad_norm, clip_scale, global_norm
from workbench_engines.optim.loss import IGNORE_INDEX, cross_entropy, cross_entropy_and_grad
from workbench_engines.optim.schedule import learning_rate, warmup_cosine

__all__ = [
    "IGNORE_INDEX", "AdamW", "clip_grad_norm", "clip_scale", "cross_entropy", "cross_entropy_and_grad",
    "global_norm", "learning_rate", "optimizer_state_bytes", "warmup_cosine",
]
