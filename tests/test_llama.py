"""SmolLM2-135M-Instruct from its GGUF file on the project's layers, checked against Hugging Face transformers."""

from __future__ import annotations

import json
import math
from functools import cache

import numpy as np
import pytest

from tests.conftest import needs_smollm, smollm_path
from workbench_engines.errors import EngineError
from workbench_engines.gguf_file import GGUFError, card_from, open_gguf

torch = pytest.importorskip("torch")
MODEL_PATH = smollm_path()

PROMPTS = [
    "The capital of France is",
    "To be, or not to be, that is the question:",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
    "<|im_start|>user\nWhat is 12 + 30?<|im_end|>\n<|im_start|>assistant\n",
]


@pytest.fixture(scope="module")
def fp32():
    from workbench_engines.models import llama

    return llama.load(MODEL_PATH, weights="fp32")


@pytest.fixture(scope="module")
def quantized():
    from workbench_engines.models import llama

    return llama.load(MODEL_PATH, weights="quantized")


@pytest.fixture(scope="module")
def reference():
    """transformers' own Llama on the same file (it dequantises the GGUF itself): the peer every figure is held to."""
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from workbench_engines.models.llm_bench import transformers_model

    return transformers_model()


@pytest.fixture(scope="module")
def fp32_plays_logits(fp32):
    """length -> the fp32 model's logits (1, T, V) over the first ``length`` tokens of the plays, one pass each,
    computed once a length: the 1,000-token pass is held to transformers' and is the quantised path's reference."""
    @cache
    def logits(length: int) -> torch.Tensor:
        with torch.inference_mode():
            return fp32.model(torch.tensor([plays_ids(fp32.tokenizer, length)]))

    return logits


def plays_ids(tokenizer, count: int) -> list[int]:
    from workbench_engines.corpus import read_text

    ids = tokenizer.encode(read_text(limit=40_000))
    assert len(ids) >= count
    return ids[:count]


def hf_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf permute, written out: what the file's Q and K rows went through."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def test_unpermute_undoes_the_conversion(rng):
    from workbench_engines.models.llama import unpermute_rows

    w = rng.standard_normal((9 * 64, 20))
    np.testing.assert_array_equal(unpermute_rows(hf_permute(w, 9), 9), w)
    blocks = rng.integers(0, 256, (3 * 64, 40), dtype=np.uint8)  # rows of quantised blocks move the same way
    np.testing.assert_array_equal(unpermute_rows(hf_permute(blocks, 3), 3), blocks)


def test_the_two_rope_layouts_agree_after_the_permutation(rng):
    from workbench_engines.positional import rope, rope_permutation

    q = rng.standard_normal((2, 9, 11, 64))  # (B, NH, T, HS)
    perm = rope_permutation(64)
    interleaved = rope(q[..., perm], base=100000.0, layout="interleaved")
    np.testing.assert_allclose(interleaved, rope(q, base=100000.0)[..., perm], atol=1e-12)
    # The permutation is what llama.cpp's conversion applies to each head's rows.
    np.testing.assert_array_equal(hf_permute(np.arange(64), 1), perm)


def test_quant_linear_stacks_neighbours_of_one_format(rng):
    """K over V in one product when their formats agree; a part of another format keeps its own call."""
    from workbench_engines.models.llama import MAX_QUANT_KERNEL_ROWS, QuantLinear
    from workbench_engines.quant import QuantTensor

    w = [rng.standard_normal((rows, 64)).astype(np.float32) for rows in (32, 16, 8)]
    parts = [QuantTensor.quantize(w[0], "Q4_1"), QuantTensor.quantize(w[1], "Q4_1"), QuantTensor.quantize(w[2], "Q8_0")]
    linear = QuantLinear(parts, threads=1)
    assert [(p.format, p.rows) for p in linear.parts] == [("Q4_1", 48), ("Q8_0", 8)]
    x = torch.from_numpy(rng.standard_normal((1, MAX_QUANT_KERNEL_ROWS + 4, 64)).astype(np.float32))
    want = torch.cat([x @ torch.from_numpy(p.dequantized()).T for p in parts], dim=-1)
    for rows in (x[:, :1], x):  # a decode step (the C product), a prefill (dequantised, then torch's GEMM)
        torch.testing.assert_close(linear(rows), want[:, : rows.shape[1]], rtol=1e-5, atol=1e-5)


@needs_smollm
def test_the_card_is_read_from_the_file():
    card = card_from(open_gguf(MODEL_PATH), MODEL_PATH)
    assert (card.layers, card.d_model, card.n_heads, card.kv_heads, card.head_dim) == (30, 576, 9, 3, 64)
    assert (card.d_ff, card.vocab_size, card.context, card.rope_base) == (1536, 49152, 8192, 100000.0)
    assert card.tied_embeddings and card.tensor_types == {"Q4_1": 210, "Q8_0": 1, "F32": 61}
    assert card.parameter_count == 134_515_008
    assert card.kv_bytes_per_token(2) == 2 * 30 * 3 * 64 * 2
    from workbench_engines.kvcache import REAL_MODELS

    shape = REAL_MODELS["SmolLM2-135M"]  # the KV-memory lab's entry is the file's shape
    assert (shape.layers, shape.kv_heads, shape.head_dim, shape.context) == (30, 3, 64, 8192)


@needs_smollm
def test_the_fp32_model_has_the_cards_parameters(fp32):
    assert sum(p.numel() for p in fp32.model.parameters()) == fp32.card.parameter_count


@needs_smollm
@pytest.mark.slow
@pytest.mark.parametrize("length", [1, 7, 100, 1000])
def test_logits_match_transformers(fp32, reference, fp32_plays_logits, length):
    """fp32 against fp32: the same weights and formulas, summed in another order (fused K/V, SDPA), so the
    logits differ by float32 round-off accumulated over 30 layers: a relative error near 1e-6."""
    ids = torch.tensor([plays_ids(fp32.tokenizer, length)])
    with torch.inference_mode():
        ours, theirs = fp32_plays_logits(length), reference(ids).logits
    worst = float((ours - theirs).abs().max())
    relative = float((ours - theirs).norm() / theirs.norm())
    assert worst < 2e-3 and relative < 2e-5, (worst, relative)
    assert bool((ours.argmax(-1) == theirs.argmax(-1)).float().mean() >= 0.999)


def greedy_with_transformers(model, ids: list[int], steps: int) -> list[int]:
    """transformers' forward with its own KV cache, argmax each step, nothing else: the plain greedy loop.

    (``generate(min_new_tokens=...)`` would also forbid <|im_end|> until the
    length is reached, which changes the tokens once the model wants to stop.)
    """
    out, past, feed = [], None, ids
    with torch.inference_mode():
        for _ in range(steps):
            result = model(torch.tensor([feed]), cache=past, use_cache=True)
            past = result.past_key_values
            out.append(int(result.logits[0, -1].argmax()))
            feed = [out[-1]]
    return out


@needs_smollm
@pytest.mark.slow
def test_greedy_continuations_are_identical_to_transformers(fp32, reference):
    """32 greedy tokens after each prompt, token for token (160 in all; 64 each took 40 s of a loaded suite)."""
    from workbench_engines.generation import generate

    for prompt in PROMPTS:
        ids = fp32.prompt_ids(prompt)
        assert generate(fp32.model, ids, 32).tokens == greedy_with_transformers(reference, ids, 32), prompt


def logits_in_chunks(model, ids: list[int], chunk: int) -> torch.Tensor:
    """Logits (T, V) of ids fed ``chunk`` tokens per pass through a KV cache: the same function as one pass."""
    from workbench_engines.kvcache import make_cache

    cache = make_cache("contiguous", model.config, max_len=len(ids))
    with torch.inference_mode():
        return torch.cat([model(torch.tensor([ids[i:i + chunk]]), cache)[0] for i in range(0, len(ids), chunk)])


def agreement_and_kl(p: torch.Tensor, model, ids: list[int]) -> tuple[float, float]:
    """Top-1 agreement and mean KL(reference || model) of the next-token distributions over ids, where p holds the
    reference's log-probabilities (float64) at the first len(ids) positions or more (a causal model's rows for a
    prefix are those of the prefix alone, so one reference pass serves every prefix).

    The model under test runs as few tokens a pass as keeps every product on the quantised kernel (a longer
    prefill would dequantise to a GEMM instead)."""
    from workbench_engines.models.llama import MAX_QUANT_KERNEL_ROWS

    p = p[: len(ids)]
    q = torch.log_softmax(logits_in_chunks(model, ids, MAX_QUANT_KERNEL_ROWS).double(), -1)
    return float((p.argmax(-1) == q.argmax(-1)).double().mean()), float((p.exp() * (p - q)).sum(-1).mean())


@needs_smollm
@pytest.mark.slow
def test_the_quantized_path_agrees_with_fp32(fp32, quantized, fp32_plays_logits):
    """Issue 13: top-1 agreement of at least 99% over the plays, with the KL divergence reported (1,000
    tokens here; the issue's 2,000 gave 100% and a KL of 1.2e-11 too, and took a minute of a loaded suite).

    The quantised kernels keep the activation in float32, so they compute the float32 model's function to
    round-off; rounding the activation to int8 as llama.cpp does costs a few percent of the next tokens.
    """
    from workbench_engines.models import llama

    ids = plays_ids(fp32.tokenizer, 1000)
    reference = torch.log_softmax(fp32_plays_logits(1000)[0].double(), -1)  # all 1,000 tokens in a single forward
    agreement, kl = agreement_and_kl(reference, quantized.model, ids)
    int8 = llama.load(MODEL_PATH, weights="quantized", activations="int8")
    int8_agreement, int8_kl = agreement_and_kl(reference, int8.model, ids[:500])
    print(f"quantized vs fp32 over 1000 tokens: top-1 agreement {agreement:.4f}, KL {kl:.2e} nats/token; "
          f"int8 activations over 500: {int8_agreement:.4f}, KL {int8_kl:.2e}")
    assert agreement >= 0.99 and 0 <= kl < 1e-4
    assert 0.9 < int8_agreement < 1 and kl < int8_kl < 0.05


@needs_smollm
def test_decoding_with_every_cache_gives_the_same_tokens(quantized):
    from workbench_engines.generation import generate

    ids = quantized.prompt_ids(quantized.chat([{"role": "user", "content": "Name a colour."}]))
    # The chat prompt alone fills several of the paged cache's 16-slot blocks; six decoded tokens are enough to
    # compare, and the reference path (no C build) decodes slowly.
    tokens = 6
    runs = [generate(quantized.model, ids, tokens, cache=cache, stop_tokens=quantized.stop_tokens).tokens
            for cache in ("contiguous", "paged")]
    assert runs[0] == runs[1] and 0 < len(runs[0]) <= tokens
    if len(runs[0]) < tokens:
        assert runs[0][-1] in quantized.stop_tokens  # stopped at the end of the turn


@needs_smollm
def test_chat_prompt_uses_the_files_template(fp32):
    text = fp32.chat([{"role": "user", "content": "Hi"}])
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    ids = fp32.prompt_ids(text)
    assert ids[0] == fp32.tokenizer.special_tokens["<|im_start|>"]


# ---- bad input -------------------------------------------------------------------------------------------


def _write_gguf(path, architecture: str, *, quant: str | None = None) -> None:
    from gguf import GGMLQuantizationType, GGUFWriter

    writer = GGUFWriter(str(path), architecture)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 32), dtype=np.float32))
    if quant:
        qtype = GGMLQuantizationType[quant]
        from gguf.constants import GGML_QUANT_SIZES

        writer.add_tensor("blk.0.x.weight", np.zeros((1, GGML_QUANT_SIZES[qtype][1]), dtype=np.uint8), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_a_missing_or_foreign_file_is_refused(tmp_path):
    from workbench_engines.models import llama

    with pytest.raises(GGUFError, match="no such GGUF file"):
        llama.load(tmp_path / "missing.gguf")
    (tmp_path / "notes.gguf").write_text("hello")
    with pytest.raises(GGUFError, match="not a GGUF file"):
        llama.load(tmp_path / "notes.gguf")


def test_threads_zero_is_refused_not_read_as_the_default(tmp_path):
    # Issue 18 review: load() took `threads or default_threads()`, so 0 meant "all CPUs" here and an error
    # everywhere else; it is checked before the file is opened.
    from workbench_engines.models import llama

    with pytest.raises(ValueError, match="threads must be an integer from 1 to"):
        llama.load(tmp_path / "missing.gguf", threads=0)
    with pytest.raises(TypeError, match="threads must be an integer"):
        llama.load(tmp_path / "missing.gguf", weights="quantized", threads=2.0)


def test_another_architecture_or_quant_type_is_refused(tmp_path):
    from workbench_engines.models import llama

    _write_gguf(tmp_path / "gpt2.gguf", "gpt2")
    with pytest.raises(GGUFError, match="architecture 'gpt2' is not supported"):
        llama.load(tmp_path / "gpt2.gguf")
    _write_gguf(tmp_path / "k.gguf", "llama", quant="Q5_K")
    with pytest.raises(GGUFError, match="Q5_K have no kernel"):
        llama.load(tmp_path / "k.gguf")
    with pytest.raises(EngineError, match="unknown weights"):
        llama.load(tmp_path / "k.gguf", weights="int3")


@needs_smollm
def test_a_truncated_file_is_refused(tmp_path):
    from workbench_engines.models import llama

    with MODEL_PATH.open("rb") as source:
        (tmp_path / "cut.gguf").write_bytes(source.read(5_000_000))
    with pytest.raises(GGUFError, match="damaged or truncated"):
        llama.load(tmp_path / "cut.gguf")


@needs_smollm
def test_empty_and_overlong_prompts_are_refused(quantized):
    from workbench_engines.generation import generate

    with pytest.raises(EngineError, match="empty"):
        quantized.prompt_ids("")
    with pytest.raises(EngineError, match="exceeds the context"):
        generate(quantized.model, [1] * quantized.card.context, 1)
    assert math.isfinite(float(quantized.model(torch.tensor([[1, 2, 3]]))[0, -1, 0]))


@needs_smollm
@pytest.mark.slow
def test_sliding_window_perplexity_matches_transformers_stride_loop(fp32, reference):
    """engines.evaluation against Hugging Face's perplexity recipe (labels −100 before each window's new tokens),
    on the same windows; here to share the transformers model this module loads once."""
    from workbench_engines import corpus
    from workbench_engines.evaluation import sliding_window_nll

    ours, hf = fp32, reference
    ids = ours.tokenizer.encode_ordinary(corpus.read_text(limit=4000))[:300]
    window, stride = 128, 48
    score = sliding_window_nll(ours.model, ids, window=window, stride=stride)
    expected, previous_end = 0.0, 0
    with torch.inference_mode():
        for begin in range(0, len(ids), stride):
            end = min(begin + window, len(ids))
            new = end - previous_end
            inputs = torch.tensor([ids[begin:end]])
            labels = inputs.clone()
            labels[:, :-new] = -100
            scored = int((labels[:, 1:] != -100).sum())
            expected += hf(inputs, labels=labels).loss.item() * scored
            previous_end = end
            if end == len(ids):
                break
    assert score.nll == pytest.approx(expected, rel=1e-4)


# ``workbench bench llm`` lives here, beside the reference fixture: both use transformers_model(), cached per
# process, and loading transformers' Llama from the GGUF file takes some 15 s that one test file pays once.


@needs_smollm
@pytest.mark.slow
def test_bench_llm_quick_validates_every_output(reference, capsys):
    from workbench.cli import main
    from workbench_engines.models.llm_bench import RACE_TITLE

    assert main(["bench", "llm", "--quick", "--repeats", "1", "--warmup", "0", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = report["rows"]
    assert all(row["matches"] for row in rows), [row["mismatch"] for row in rows if not row["matches"]]
    decode = {row["name"] for row in rows if row["case"].startswith("decode")}
    assert {"ours fp32", "ours quantized", "ours quantized, int8 x", "transformers fp32"} <= decode
    # Under the table, for each decode row: the weight bytes a token reads and the ceiling they put on tokens/s;
    # then, under the verify case, one break-even line per T > 1.
    summary = report["summary"].splitlines()
    split = next(i for i, line in enumerate(summary) if line.startswith("speculative break-even"))
    race_at = next(i for i, line in enumerate(summary) if line.startswith(RACE_TITLE))
    roofline, break_even, race = summary[:split], summary[split:race_at], summary[race_at:]
    assert [line for line in roofline if not line.startswith("  ")] == [
        case for case in dict.fromkeys(row["case"] for row in rows) if case.startswith("decode")]
    assert len(roofline) == sum(row["case"].startswith("decode") for row in rows) + 2  # two headings
    quantized = next(line for line in roofline if line.startswith("  ours quantized:"))
    assert "97 MB of weights a token" in quantized, quantized
    verify = [row for row in rows if row["case"].startswith("speculative break-even")]
    assert [row["name"] for row in verify] == ["verify 1 token"] + [f"verify {t} tokens" for t in (2, 3, 4, 5, 8)]
    assert [line.split(":")[0] for line in break_even[1:]] == [f"  T {t}" for t in (2, 3, 4, 5, 8)]
    # The race with the distilled draft: plain greedy, the draft, fixed k and the draft that stops when unsure,
    # every speculative run's tokens the target's own (the rows match); then one line per run and the best.
    names = [row["name"] for row in rows if row["case"].startswith(RACE_TITLE)]
    assert names == ["target alone", "draft alone", "speculative, k=2", "speculative, k=3",
                     "speculative, k≤6, stop below 0.4"]
    assert [line.split(":")[0] for line in race[1:4]] == [f"  {name}" for name in names[2:]]
    assert race[4].startswith("  best: speculative") and "goal 1.3x" in race[4]
    assert report["environment"]["cpu"]


def test_needed_acceptance_solves_the_speculative_speedup():
    from workbench_engines.models.llm_bench import needed_acceptance

    # k = 1 drafted token, a round costing 1.2 decode steps: (1 + a) / 1.2 = 1.3 at a = 0.56.
    assert needed_acceptance(1.2, 1) == pytest.approx(0.56)
    # k = 3, a round of 1.5 steps: 1 + a + a^2 + a^3 = 1.95.
    alpha = needed_acceptance(1.5, 3)
    assert 1 + alpha + alpha ** 2 + alpha ** 3 == pytest.approx(1.95)
    # Even perfect drafts give (k + 1) / cost: two tokens for 1.6 steps is 1.25x, short of 1.3x.
    assert needed_acceptance(1.6, 1) is None
    assert needed_acceptance(0.5, 2) == pytest.approx(0.0, abs=1e-12)  # a round cheaper than a step pays at once


