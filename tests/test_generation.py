"""Decoding: the composed sampler, beam search, speculative decoding and constrained output."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import regex

torch = pytest.importorskip("torch")

from workbench_engines.errors import EngineError  # noqa: E402
from workbench_engines.generation import (  # noqa: E402
    beam_search,
    generate,
    generate_constrained,
    generate_json,
    speculative_generate,
)
from workbench_engines.generation.speculative import verify  # noqa: E402
from workbench_engines.models.gpt import GPT, GPTConfig  # noqa: E402
from workbench_engines.sampling.constrained import ConstraintError, TokenAutomaton, schema_regex, validate_json  # noqa: E402
from workbench_engines.sampling.settings import GREEDY, Sampler, entropy_bits  # noqa: E402


def _tiny(seed: int = 0, vocab: int = 40, sharpen: float = 10.0, **kw) -> GPT:
    torch.manual_seed(seed)
    config = {"vocab_size": vocab, "context": 64, "d_model": 32, "n_layers": 2, "n_heads": 2, **kw}
    model = GPT(GPTConfig(**config)).eval()
    with torch.no_grad():  # sharper than the 0.02 init, so distributions are far from uniform
        model.embed.weight.mul_(sharpen)
    return model


def _chi_square_ok(counts: np.ndarray, probs: np.ndarray) -> bool:
    """Pearson's test at p = 0.001, with the Wilson–Hilferty approximation of the chi-square quantile."""
    n = counts.sum()
    keep = probs * n >= 5
    observed = np.append(counts[keep], counts[~keep].sum())
    expected = np.append(probs[keep] * n, probs[~keep].sum() * n)
    if expected[-1] < 5:
        observed, expected = observed[:-1], expected[:-1]
        observed[-1] += counts[~keep].sum()
    stat = float(((observed - expected) ** 2 / expected).sum())
    df = len(observed) - 1
    critical = df * (1 - 2 / (9 * df) + 3.09 * math.sqrt(2 / (9 * df))) ** 3
    return stat < critical


def test_sampler_draws_follow_the_filtered_distribution():
    logits = np.log(np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04]))
    sampler = Sampler(temperature=0.8, top_k=4)
    probs = sampler.distribution(logits)
    assert probs[4] == probs[5] == 0 and probs.sum() == pytest.approx(1)
    rng = np.random.default_rng(11)
    counts = np.bincount([sampler.choose(logits, [], rng) for _ in range(6000)], minlength=6)
    assert _chi_square_ok(counts, probs)
    assert entropy_bits(np.array([0.5, 0.5])) == pytest.approx(1.0)
    assert GREEDY.distribution(logits).tolist() == [1, 0, 0, 0, 0, 0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": -0.5}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": 0}, "top_k"),
        ({"min_p": 2.0}, "min_p"),
        ({"repetition_penalty": 0.5}, "repetition_penalty"),
    ],
)
def test_sampler_rejects_bad_knobs(kwargs, message):
    with pytest.raises(EngineError, match=message):
        Sampler(**kwargs)


def test_generate_rejects_bad_prompts():
    model = _tiny()
    with pytest.raises(EngineError, match="exceeds the context of 64"):
        generate(model, [1] * 60, 10)
    with pytest.raises(EngineError, match="empty"):
        generate(model, [], 3)
    with pytest.raises(EngineError, match="outside the vocabulary"):
        generate(model, [1, 40], 3)
    with pytest.raises(ValueError, match="unknown cache"):
        generate(model, [1], 3, cache="ring")


def test_stop_tokens_end_generation():
    model = _tiny(1)
    free = generate(model, [3, 4], 20).tokens
    stop = free[5]
    stopped = generate(model, [3, 4], 20, stop_tokens=(stop,)).tokens
    assert stopped == free[: free.index(stop) + 1]


def test_beam_of_one_is_greedy(rng):
    model = _tiny(int(rng.integers(100)))
    prompt = rng.integers(0, 40, 5).tolist()
    assert list(beam_search(model, prompt, 12, width=1, alpha=0).best.tokens) == generate(model, prompt, 12).tokens


def _sequence_logprob(model, prompt, tokens):
    with torch.inference_mode():
        logits = model(torch.tensor([prompt + list(tokens)]))[0].double()
    logprobs = torch.log_softmax(logits, -1)
    return sum(float(logprobs[len(prompt) - 1 + i, t]) for i, t in enumerate(tokens))


def test_a_wide_enough_beam_finds_the_exact_best_sequence():
    model = _tiny(2, vocab=6)
    prompt = [1, 2]
    exhaustive = max(itertools.product(range(6), repeat=3), key=lambda s: _sequence_logprob(model, prompt, s))
    result = beam_search(model, prompt, 3, width=36, alpha=0)
    assert result.best.tokens == exhaustive
    assert result.best.logprob == pytest.approx(_sequence_logprob(model, prompt, exhaustive), abs=1e-4)
    assert [len(step) for step in result.steps] == [6, 36, 36]


def test_beam_search_sets_finished_hypotheses_aside():
    model = _tiny(4, vocab=6)
    result = beam_search(model, [0], 6, width=3, alpha=1.0, eos=5)
    scores = [h.score(1.0) for h in result.hypotheses]
    assert scores == sorted(scores, reverse=True)
    for h in result.hypotheses:
        assert (5 in h.tokens) == h.finished and (not h.finished or h.tokens[-1] == 5)
    with pytest.raises(EngineError, match="width"):
        beam_search(model, [0], 3, width=0)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_greedy_speculative_decoding_reproduces_the_target(rng, k):
    target, draft = _tiny(int(rng.integers(100))), _tiny(1000 + int(rng.integers(100)), n_layers=1)
    prompt = rng.integers(0, 40, 4).tolist()
    result = speculative_generate(target, draft, prompt, 30, k=k, sampler=GREEDY)
    assert result.tokens == generate(target, prompt, 30).tokens
    assert 0 <= result.acceptance_rate <= 1 and result.rounds >= 30 / (k + 1)
    same = speculative_generate(target, target, prompt, 30, k=k, sampler=GREEDY)
    assert same.acceptance_rate == 1.0


def test_the_acceptance_rule_emits_the_target_distribution(rng):
    """Draft from q, verify against p: the first token out follows p[0], and after an accepted
    first draft the second follows p[1], whatever q was (Leviathan et al., Theorem 1)."""
    vocab, k = 6, 2
    p = [rng.dirichlet(np.ones(vocab)) for _ in range(k + 1)]
    q = [rng.dirichlet(np.ones(vocab) * 0.5) for _ in range(k)]
    first, second = np.zeros(vocab), np.zeros(vocab)
    for _ in range(20_000):
        drafted = [int(rng.choice(vocab, p=row)) for row in q]
        taken, extra = verify(drafted, q, p, rng)
        out = drafted[:taken] + [extra]
        first[out[0]] += 1
        if taken >= 1:
            second[out[1]] += 1
    assert _chi_square_ok(first, p[0]) and _chi_square_ok(second, p[1])
    assert not _chi_square_ok(first, q[0])  # the test can tell the draft's distribution apart


@pytest.mark.slow
def test_speculative_sampling_keeps_the_target_distribution_end_to_end():
    """The first token after the prompt, 2,000 times, follows the target's distribution, not the draft's."""
    vocab = 5
    target, draft = _tiny(21, vocab=vocab, sharpen=1.0), _tiny(22, vocab=vocab, sharpen=3.0, n_layers=1)
    prompt = [0, 3]
    with torch.inference_mode():
        first = torch.softmax(target(torch.tensor([prompt]))[0, -1].double(), -1).numpy()
        draft_first = torch.softmax(draft(torch.tensor([prompt]))[0, -1].double(), -1).numpy()
    assert np.abs(draft_first - first).max() > 0.2  # the draft really differs
    counts = np.zeros(vocab)
    accepted = proposed = 0
    for seed in range(2000):
        out = speculative_generate(target, draft, prompt, 2, k=2, sampler=Sampler(temperature=1.0), seed=seed)
        counts[out.tokens[0]] += 1
        accepted, proposed = accepted + out.accepted, proposed + out.proposed
    assert _chi_square_ok(counts, first) and not _chi_square_ok(counts, draft_first)
    assert 0 < accepted < proposed


def test_speculative_decoding_rejects_mismatched_models():
    with pytest.raises(EngineError, match="vocabulary"):
        speculative_generate(_tiny(vocab=40), _tiny(vocab=41), [1], 5)
    with pytest.raises(EngineError, match="draft length"):
        speculative_generate(_tiny(), _tiny(), [1], 5, k=0)


class _CharTokenizer:
    """Single characters plus a few words, enough to spell JSON (the automaton only needs token texts)."""

    def __init__(self) -> None:
        alphabet = list('{}[]":, -.0123456789abcdefghijklmnopqrstuvwxyz') + ["true", "false", "null", '": ', ", "]
        self.texts = alphabet + ["<|endoftext|>"]
        self.special_tokens = {"<|endoftext|>": len(alphabet)}
        self.vocab_size = len(self.texts)

    def is_special(self, token: int) -> bool:
        return token == self.vocab_size - 1

    def token_bytes(self, token: int) -> bytes:
        return self.texts[token].encode()

    def decode(self, tokens) -> str:
        return "".join(self.texts[t] for t in tokens)


@pytest.mark.parametrize("seed", range(6))
def test_constrained_output_always_matches_its_regex(seed):
    tokenizer = _CharTokenizer()
    model = _tiny(seed, vocab=tokenizer.vocab_size)
    pattern = r"(yes|no)-[0-9]{2,4}(\.[a-z]+)?"
    result = generate_constrained(model, tokenizer, [0, 1], pattern, sampler=Sampler(temperature=2.0), seed=seed)
    assert result.complete and regex.fullmatch(pattern, result.text), result.text


@pytest.mark.parametrize("seed", range(6))
def test_constrained_json_always_parses_and_fits_the_schema(seed):
    tokenizer = _CharTokenizer()
    model = _tiny(seed, vocab=tokenizer.vocab_size)
    schema = {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 8},
        "age": {"type": "integer"},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3},
        "ok": {"type": "boolean"},
        "score": {"type": "number"},
    }}
    value, result = generate_json(model, tokenizer, [2], schema, sampler=Sampler(temperature=2.0), seed=seed)
    assert result.complete, result.text
    assert json.loads(result.text) == value and validate_json(value, schema) is None, result.text


def test_the_shipped_model_writes_json_that_parses():
    from workbench_engines.models import small_gpt

    target = small_gpt.load("target")
    schema = {"type": "object", "properties": {"speaker": {"type": "string", "maxLength": 16},
                                               "mood": {"enum": ["merry", "grave"]}, "lines": {"type": "integer"}}}
    prompt = target.tokenizer.encode_ordinary("**ROMEO**  \n")
    for seed in range(3):
        value, result = generate_json(target.model, target.tokenizer, prompt, schema, seed=seed)
        assert validate_json(value, schema) is None, result.text


def test_bad_regexes_and_schemas_are_reported():
    tokenizer = _CharTokenizer()
    with pytest.raises(ConstraintError, match="cannot compile"):
        TokenAutomaton("(unclosed", [t for t in tokenizer.texts], None)
    with pytest.raises(ConstraintError, match="matches nothing"):
        TokenAutomaton("a[^\\s\\S]", list(tokenizer.texts), None)
    with pytest.raises(ConstraintError, match="unsupported schema type"):
        schema_regex({"type": "date"})
    with pytest.raises(ConstraintError, match="properties"):
        schema_regex({"type": "object"})


def test_a_budget_too_small_for_any_match_is_refused_up_front():
    tokenizer = _CharTokenizer()
    model = _tiny(0, vocab=tokenizer.vocab_size)
    with pytest.raises(ConstraintError, match="shortest match needs 12"):
        generate_constrained(model, tokenizer, [1], "abcdefghijkl", max_new_tokens=11)
    short = generate_constrained(model, tokenizer, [1], "[a-z]{0,40}", max_new_tokens=5, sampler=Sampler(2.0))
    assert short.complete and len(short.tokens) <= 5
