"""llama.cpp's quantised matvec through ggml (engines.quant.ggml_peer), the bench quant peer: it computes what our
kernels compute, within the int8 rounding of x, and refuses what it cannot race. Skipped without llama-cpp-python
(``make llama-cpp``)."""

from __future__ import annotations

import numpy as np
import pytest

from workbench_engines import quant
from workbench_engines.errors import EngineError
from workbench_engines.quant import ggml_peer, reference

pytestmark = pytest.mark.skipif(not ggml_peer.available(), reason="llama-cpp-python is not installed (make llama-cpp)")


@pytest.mark.parametrize("fmt", ["Q4_0", "Q4_1", "Q8_0"])
def test_llama_cpp_products_match_ours_within_the_int8_rounding_of_x(rng, fmt):
    tensors = [quant.quantize((rng.standard_normal(shape) * 0.05).astype(np.float32), fmt)
               for shape in ((300, 256), (17, 96))]
    xs = [rng.standard_normal(t.cols).astype(np.float32) for t in tensors]
    got = ggml_peer.GgmlMatvec(tensors, threads=1)(xs)
    for threads in (1, 2):
        assert np.array_equal(ggml_peer.GgmlMatvec(tensors, threads=threads)(xs), got)
    exact = np.concatenate([t.dequantized().astype(np.float64) @ x for t, x in zip(tensors, xs)])
    bound = np.concatenate([reference.rounding_bound(x[None], t.dequantized())[0] for t, x in zip(tensors, xs)])
    # ggml also stores x's block scale in fp16 (ours keeps float32): a further 2^-11 of each block's share.
    magnitude = np.concatenate([np.abs(t.dequantized()).astype(np.float64) @ np.abs(x) for t, x in zip(tensors, xs)])
    assert np.all(np.abs(got - exact) <= bound + 2.0**-10 * magnitude)
    assert not np.array_equal(got, exact.astype(np.float32))  # it really rounded x


def test_unsupported_formats_and_bad_inputs_are_refused(rng):
    w = (rng.standard_normal((8, 256)) * 0.05).astype(np.float32)
    with pytest.raises(EngineError, match="not Q6_K"):
        ggml_peer.GgmlMatvec([quant.quantize(w, "Q6_K")])
    graph = ggml_peer.GgmlMatvec([quant.quantize(w, "Q8_0")])
    with pytest.raises(EngineError, match="one x per matrix"):
        graph([])
    with pytest.raises(EngineError, match="256 columns"):
        graph([np.zeros(255, np.float32)])
    with pytest.raises((TypeError, ValueError)):
        ggml_peer.GgmlMatvec([quant.quantize(w, "Q8_0")], threads=0)
