"""The float32 decode product (native/src/wb_linear.c) against torch's F.linear, and its bad input."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.native


@pytest.mark.parametrize("T, rows, cols", [(1, 1536, 576), (1, 577, 33), (3, 1000, 1536), (8, 7, 1), (1, 5, 0)])
@pytest.mark.parametrize("threads", [1, 2])
def test_matches_torch(rng, T, rows, cols, threads):
    from workbench_engines.linear import PreparedLinear, forward

    x = rng.standard_normal((T, cols)).astype(np.float32)
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    expected = torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(w)).numpy()
    # float32 sums in another order: errors of a few ulps of |x|·|w|.
    atol = 1e-5 * np.sqrt(cols) * np.abs(x).max(initial=1) * np.abs(w).max(initial=1)
    np.testing.assert_allclose(forward(x, w, threads=threads), expected, atol=atol, rtol=1e-5)
    np.testing.assert_array_equal(PreparedLinear(w, threads)(x), forward(x, w, threads=threads))


def test_threads_do_not_change_the_result(rng):
    from workbench_engines.linear import forward

    x = rng.standard_normal((2, 300)).astype(np.float32)
    w = rng.standard_normal((999, 300)).astype(np.float32)
    np.testing.assert_array_equal(forward(x, w, threads=1), forward(x, w, threads=2))


def test_bad_input_raises_before_c(rng):
    from workbench_engines.linear import PreparedLinear, forward

    w = rng.standard_normal((4, 8)).astype(np.float32)
    x = rng.standard_normal((1, 8)).astype(np.float32)
    for bad_x, message in [(x.astype(np.float64), "float32"), (x[:, :7], "columns"), (np.zeros((65, 8), np.float32), "at most"),
                           (np.asfortranarray(np.zeros((2, 8), np.float32)), "C-contiguous")]:
        with pytest.raises(ValueError, match=message):
            forward(bad_x, w, backend="native")
        with pytest.raises(ValueError, match=message):
            PreparedLinear(w, 1)(bad_x)
    for threads, error in ((0, ValueError), (-1, ValueError), (10**6, ValueError), (True, TypeError),
                           (1.5, TypeError)):
        with pytest.raises(error, match="threads must be an integer"):
            forward(x, w, threads=threads)


def test_auto_leaves_a_long_prefill_to_torch():
    from workbench_engines.linear import choose_backend

    assert choose_backend(1).name == "native"
    long = choose_backend(1000)
    assert long.name == "torch" and "GEMM" in long.reason
