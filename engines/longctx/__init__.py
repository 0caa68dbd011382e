"""Long context and the alternatives to attention (issue 23): what a layer keeps per token, and what it costs.

- :mod:`.linear_attention`: causal linear attention (Katharopoulos et al.,
  2020) computed in parallel and as a recurrence, softmax attention beside it,
  and each method's state or cache bytes per layer against context length.
- :mod:`.scan`: Mamba's selective scan (Gu & Dao, 2023) as a NumPy reference,
  a torch loop and a torch log-space parallel scan; :mod:`.native` runs the C
  kernel. :func:`selective_scan` picks one with ``backend=``.
- :mod:`.rope_scaling`: position interpolation, NTK-aware scaling and YaRN
  applied to a model's RoPE tables, and perplexity by position;
  :mod:`.rope_long` measures them on SmolLM2 past its 8,192-token context.
- :mod:`.streaming`: a stream read through a dense, a sliding-window and a
  StreamingLLM cache (attention sinks, Xiao et al., 2023), per-position loss.
- :mod:`.mamba`: a tiny Mamba language model (torch), trained with the same
  loop as the GPT, decoded with constant state, and compared with a GPT.
- :mod:`.bench`: the cases of ``workbench bench longctx``.
"""

from __future__ import annotations

from workbench_engines.longctx.linear_attention import LayerShape, state_bytes
from workbench_engines.longctx.scan import BACKENDS, selective_scan

__all__ = ["BACKENDS", "LayerShape", "selective_scan", "state_bytes"]
