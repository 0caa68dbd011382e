"""Attention through torch.nn.functional.scaled_dot_product_attention, for comparison.

torch is imported only when this runs. A boolean attn_mask marks allowed
pairs; grouped heads are expanded with repeat_interleave, which is exactly
what the reference does.
"""

from __future__ import annotations

import numpy as np

from workbench_engines.attention.reference import allowed_mask


def attention(q, k, v, *, causal=False, window=None, key_mask=None, scale=None):
    import torch
    from torch.nn.functional import scaled_dot_product_attention

    tq, tk, tv = (torch.from_numpy(np.ascontiguousarray(a)) for a in (q, k, v))
    group = tq.shape[1] // tk.shape[1]
    if group > 1:
        tk, tv = tk.repeat_interleave(group, dim=1), tv.repeat_interleave(group, dim=1)
    mask = None
    if causal and not window and key_mask is None and q.shape[2] == k.shape[2]:
        # torch's own causal path skips the masked half, as the flash kernel does.
        out = scaled_dot_product_attention(tq, tk, tv, is_causal=True, scale=scale)
        return out.numpy()
    if causal or window or key_mask is not None:
        keep = torch.from_numpy(allowed_mask(q.shape[2], k.shape[2], causal=causal, window=window))[None, None]
        if key_mask is not None:
            keep = keep & torch.from_numpy(np.asarray(key_mask, dtype=bool))[:, None, None, :]
        mask = keep
    out = scaled_dot_product_attention(tq, tk, tv, attn_mask=mask, scale=scale)
    # torch gives NaN where a query sees nothing; the engines' contract is zeros.
    return torch.nan_to_num(out, nan=0.0).numpy()
