"""KV caches: cached generation equals uncached, paged equals contiguous, sharing and accounting are exact."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from workbench_engines.generation import generate  # noqa: E402
from workbench_engines.kvcache import (  # noqa: E402
    REAL_MODELS,
    CacheFull,
    ContiguousCache,
    PagedCache,
    kv_bytes,
    mixed_requests,
    serve_stream,
)
from workbench_engines.models.gpt import GPT, GPTConfig  # noqa: E402


def _tiny(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    config = {"vocab_size": 40, "context": 96, "d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, **kw}
    return GPT(GPTConfig(**config)).eval()


def _logits(model, ids, cache=None):
    with torch.inference_mode():
        return model(torch.tensor([ids]), cache)[0]


@pytest.mark.parametrize("cache", ["contiguous", "paged"])
def test_cached_greedy_generation_equals_uncached(rng, cache):
    model = _tiny(int(rng.integers(1000)))
    prompt = rng.integers(0, 40, int(rng.integers(1, 20))).tolist()
    plain = generate(model, prompt, 40, cache="none")
    cached = generate(model, prompt, 40, cache=cache)
    assert cached.tokens == plain.tokens and len(plain.tokens) == 40
    assert plain.memory is None and cached.memory.stored == (len(prompt) + 39) * model.config.kv_bytes_per_token()


def test_the_shipped_model_generates_the_same_with_and_without_a_cache():
    from workbench_engines.models import small_gpt

    target = small_gpt.load("target")
    prompt = target.tokenizer.encode_ordinary("**HAMLET**  \nTo be, or not to be")
    runs = {kind: generate(target.model, prompt, 48, cache=kind).tokens for kind in ("none", "contiguous", "paged")}
    assert runs["none"] == runs["contiguous"] == runs["paged"]


@pytest.mark.parametrize("block_size", [1, 3, 16])
def test_paged_and_contiguous_caches_give_the_same_logits(rng, block_size):
    model = _tiny(int(rng.integers(1000)))
    ids = rng.integers(0, 40, 50).tolist()
    contiguous = ContiguousCache(model.config, 1, 60)
    paged = PagedCache(model.config, 64, block_size)
    paged.add_sequence()
    # A prefill of uneven length, then single tokens and short chunks.
    for lo, hi in [(0, 7), (7, 8), (8, 9), (9, 21), (21, 22), (22, 50)]:
        a, b = _logits(model, ids[lo:hi], contiguous), _logits(model, ids[lo:hi], paged)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_logits(model, ids)[-1], b[-1], atol=1e-5, rtol=1e-5)
    assert paged.length == contiguous.length == 50
    assert len(paged.block_table(0)) == -(-50 // block_size)


def test_fork_shares_blocks_and_copies_on_write(rng):
    model = _tiny(5)
    cache = PagedCache(model.config, 16, 4)
    base = rng.integers(0, 40, 10).tolist()  # ends two slots into the third block
    first, _ = cache.add_sequence()
    _logits(model, base, cache)
    second = cache.fork(first)
    assert cache.block_table(first) == cache.block_table(second)
    assert cache.pool.used == 3
    tails = {first: [1, 2, 3], second: [7, 8, 9]}
    for seq, tail in tails.items():
        cache.select([seq])
        got = _logits(model, tail, cache)
        torch.testing.assert_close(got, _logits(model, base + tail)[10:], atol=1e-5, rtol=1e-5)
    # The two full blocks stay shared; the partly filled one was copied for the writer that came second.
    assert cache.block_table(first)[:2] == cache.block_table(second)[:2]
    assert cache.block_table(first)[2] != cache.block_table(second)[2]
    assert cache.stats.copies == 1
    memory = cache.memory()
    assert memory.stored == (8 + 2 * 5) * cache.bytes_per_token()
    cache.free(first)
    cache.free(second)
    assert cache.pool.used == 0 and cache.memory().allocated == 0


def test_prefix_caching_reuses_full_blocks_and_gives_identical_logits(rng):
    model = _tiny(7)
    cache = PagedCache(model.config, 32, 4)
    system = rng.integers(0, 40, 13).tolist()
    a = system + [1, 2, 3]
    b = system + [4, 5]
    seq_a, cached = cache.add_sequence(a)
    assert cached == 0
    _logits(model, a, cache)
    seq_b, cached = cache.add_sequence(b)
    assert cached == 12  # three full blocks of the shared 13-token prefix
    assert cache.stats.hits == 3
    got = _logits(model, b[cached:], cache)
    torch.testing.assert_close(got, _logits(model, b)[cached:], atol=1e-5, rtol=1e-5)
    assert cache.block_table(seq_a)[:3] == cache.block_table(seq_b)[:3]
    # Freed blocks stay findable until the pool reuses them.
    cache.free(seq_a)
    cache.free(seq_b)
    _, cached = cache.add_sequence(system + [9])
    assert cached == 12


def test_truncate_then_continue_equals_a_fresh_run(rng):
    model = _tiny(9)
    ids = rng.integers(0, 40, 30).tolist()
    for cache in (ContiguousCache(model.config, 1, 40), PagedCache(model.config, 20, 4)):
        if isinstance(cache, PagedCache):
            cache.add_sequence()
        _logits(model, ids[:20], cache)
        _logits(model, [0, 1, 2, 3, 4], cache)
        cache.truncate(18)
        got = _logits(model, ids[18:30], cache)
        torch.testing.assert_close(got, _logits(model, ids)[18:], atol=1e-5, rtol=1e-5)


def test_caches_refuse_to_overflow():
    model = _tiny()
    contiguous = ContiguousCache(model.config, 1, 8)
    _logits(model, list(range(8)), contiguous)
    with pytest.raises(CacheFull, match="reserved for 8"):
        _logits(model, [1], contiguous)
    paged = PagedCache(model.config, 2, 4)
    paged.add_sequence()
    _logits(model, list(range(8)), paged)
    with pytest.raises(CacheFull, match="all 2 blocks"):
        _logits(model, [1], paged)
    with pytest.raises(ValueError, match="equal lengths"):
        paged.add_sequence()
        paged.select([0, 1])


def test_memory_accounting_is_exact():
    model = _tiny(n_layers=3)
    per_token = 2 * 3 * 2 * 8 * 4  # K and V, layers, kv heads, head dim, fp32
    assert model.config.kv_bytes_per_token() == per_token
    contiguous = ContiguousCache(model.config, 2, 50)
    with torch.inference_mode():
        model(torch.zeros((2, 7), dtype=torch.long), contiguous)
    m = contiguous.memory()
    assert (m.reserved, m.allocated, m.stored) == (100 * per_token, 100 * per_token, 14 * per_token)
    assert contiguous.k.numel() * 4 * 2 == m.reserved
    paged = PagedCache(model.config, 10, 4)
    paged.add_sequence()
    _logits(model, list(range(7)), paged)
    m = paged.memory()
    assert (m.reserved, m.allocated, m.stored, m.wasted) == (40 * per_token, 8 * per_token, 7 * per_token, per_token)


def test_kv_bytes_of_real_models():
    # Llama-2-7B: 2 (K, V) × 32 layers × 32 heads × 128 dims × 2 bytes = 512 KiB a token in fp16.
    assert REAL_MODELS["Llama-2-7B"].bytes_per_token() == 512 * 1024
    # Grouped-query attention: Llama-3-8B keeps 8 KV heads, a quarter of that.
    assert REAL_MODELS["Llama-3-8B"].bytes_per_token() == 128 * 1024
    assert kv_bytes(4096, 32, 32, 128, "fp16", batch=2) == 2 * 4096 * 512 * 1024
    assert kv_bytes(10, 1, 1, 2, "int4") == 20
    with pytest.raises(Exception, match="unknown dtype"):
        kv_bytes(1, 1, 1, 1, "fp12")


def test_paged_cache_wastes_little_on_a_stream_of_mixed_requests():
    requests = mixed_requests(200, seed=1)
    paged = serve_stream(requests, "paged", block_size=16)
    contiguous = serve_stream(requests, "contiguous")
    assert paged.steps == contiguous.steps and paged.stored == contiguous.stored
    assert paged.waste_fraction < 0.04
    assert contiguous.waste_fraction > 0.3
    # Per live sequence the paged cache wastes less than one block.
    assert paged.allocated - paged.stored < paged.steps * 8 * 16 * 2 * 2 * 4




@pytest.mark.native
@pytest.mark.parametrize("heads, kv_heads, d, block_size, length",
                         [(6, 2, 32, 16, 1000), (4, 4, 64, 3, 7), (8, 1, 128, 5, 1), (2, 2, 20, 256, 300)])
def test_native_paged_decode_attention_matches_sdpa(rng, heads, kv_heads, d, block_size, length):
    import torch.nn.functional as F

    from workbench_engines.kvcache.native import paged_decode_attention

    n_blocks = -(-length // block_size)
    pool_blocks = n_blocks + 3
    k = torch.tensor(rng.standard_normal((kv_heads, pool_blocks, block_size, d)), dtype=torch.float32)
    v = torch.tensor(rng.standard_normal((kv_heads, pool_blocks, block_size, d)), dtype=torch.float32)
    # The key blocks are stored transposed, [d, block_size], as the kernel reads them.
    pool = torch.stack((k.transpose(2, 3).reshape(kv_heads, pool_blocks, -1), v.reshape(kv_heads, pool_blocks, -1)))
    table = torch.tensor(rng.permutation(pool_blocks)[:n_blocks])
    q = torch.tensor(rng.standard_normal((heads, d)), dtype=torch.float32)
    got = paged_decode_attention(q, pool, table, length, d ** -0.5)
    keys = k.index_select(1, table).reshape(kv_heads, -1, d)[:, :length]
    values = v.index_select(1, table).reshape(kv_heads, -1, d)[:, :length]
    expected = F.scaled_dot_product_attention(q[None, :, None], keys[None], values[None],
                                              enable_gqa=kv_heads != heads)[0, :, 0]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.native
def test_native_paged_decode_attention_refuses_bad_input():
    from workbench_engines.kvcache.native import paged_decode_attention

    pool = torch.zeros(2, 2, 4, 8 * 16)
    q = torch.zeros(4, 16)
    with pytest.raises(ValueError, match="block ids"):
        paged_decode_attention(q, pool, torch.tensor([0, 9]), 12, 0.25)
    with pytest.raises(ValueError, match="length"):
        paged_decode_attention(q, pool, torch.tensor([0, 1]), 17, 0.25)
    with pytest.raises(ValueError, match="float32"):
        paged_decode_attention(q.double(), pool, torch.tensor([0]), 3, 0.25)
    with pytest.raises(ValueError, match="pool"):
        paged_decode_attention(q, torch.zeros(2, 2, 4, 8, 16), torch.tensor([0]), 3, 0.25)


@pytest.mark.native
def test_native_decode_step_writes_the_new_token_then_attends(rng):
    """The fused call stores k, v at (block, offset), keys transposed, before it reads."""
    from workbench_engines.kvcache.native import PagedDecoder

    kv = torch.zeros(1, 2, 2, 4, 8 * 16)  # one layer, 2 KV heads, 4 blocks of 8 slots, d 16
    decoder = PagedDecoder(kv, heads=4, block_size=8)
    decoder.set_table(torch.tensor([2, 0]))
    k_new, v_new = (torch.tensor(rng.standard_normal((2, 16)), dtype=torch.float32) for _ in range(2))
    q = torch.tensor(rng.standard_normal((4, 16)), dtype=torch.float32)
    # Token 9 is block table[1] = 0, offset 1; it is the only token with a non-zero value.
    out = decoder.attend(0, q, 10, 0.25, (k_new, v_new), (0, 1))
    assert torch.equal(kv[0, 0, :, 0].view(2, 16, 8)[:, :, 1], k_new)
    assert torch.equal(kv[0, 1, :, 0].view(2, 8, 16)[:, 1], v_new)
    # Query head h reads KV head h // 2; the 9 empty slots score 0 and carry zero values.
    new_scores = (q.view(2, 2, 16) * k_new[:, None]).sum(-1).reshape(4, 1) * 0.25
    weight = torch.softmax(torch.cat([torch.zeros(4, 9), new_scores], 1), -1)[:, -1:]
    torch.testing.assert_close(out, weight * v_new.repeat_interleave(2, 0), atol=1e-5, rtol=1e-4)
    with pytest.raises(Exception, match="argument"):
        decoder.attend(0, q, 10, 0.25, (k_new, v_new), (7, 0))


@pytest.mark.native
def test_paged_cache_reads_blocks_in_place_and_gives_the_gathered_logits(rng):
    model = _tiny(int(rng.integers(1000)))
    ids = rng.integers(0, 40, 40).tolist()
    caches = {}
    for mode in ("gather", "native"):
        cache = PagedCache(model.config, 16, 4, attention=mode)
        cache.add_sequence()
        logits = [_logits(model, ids[:9], cache)]
        logits += [_logits(model, [t], cache) for t in ids[9:]]
        caches[mode] = torch.cat(logits)
    torch.testing.assert_close(caches["native"], caches["gather"], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="attention must be"):
        PagedCache(model.config, 4, 4, attention="flash")
