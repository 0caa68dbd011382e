"""Cases for ``workbench bench decode``: KV caches, cache memory, top-p selection, speculative decoding.

All decoding runs the shipped target model (and its draft) on one thread
group, greedy, from the same 16-token prompt, so every contender of a case
must produce the same tokens.
"""

from __future__ import annotations

from functools import partial

from workbench_engines.profiling.bench import Case, Contender

PROMPT = "**HAMLET**  \nTo be, or not to be, that is the question:  \n"


def _same_tokens(expected, got) -> str | None:
    a, b = expected.tokens, got.tokens
    if a == b:
        return None
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"tokens differ from position {first}"


def _tokens_per_s(result) -> str:
    return f"{len(result.tokens) / result.seconds:,.0f} tok/s"


def generation_case(model, prompt: list[int], n: int, caches: tuple[str, ...] = ("none", "contiguous", "paged"),
                    ) -> Case:
    """Greedy generation of n tokens without a cache and with each kind of cache: the same tokens, faster."""
    from workbench_engines.generation import generate
    from workbench_engines.kvcache import paged_attention

    run = partial(generate, model, prompt, n)
    names = {"none": "no cache", "contiguous": "contiguous cache", "paged": "paged cache (16)"}
    contenders = []
    for kind in caches:
        # Without a cache each step reruns the whole sequence: one timed run is plenty.
        slow = {"repeats": 1, "warmup": 0} if kind == "none" else {}
        backend = paged_attention(model.config, 16).name if kind == "paged" else "torch"
        contenders.append(Contender(names[kind], partial(run, cache=kind), backend, **slow))
    reference = names["contiguous"] if "contiguous" in caches else contenders[0].name
    return Case(f"generate {n} tokens", contenders, _same_tokens, reference,
                tuple(names[k] for k in ("none", "contiguous") if k in caches), repeats=5 if n >= 512 else None,
                describe=_tokens_per_s, figures=lambda result: {"tokens": len(result.tokens)}, interleave=True)


def _waste_case(quick: bool) -> Case:
    from workbench_engines.kvcache import mixed_requests, serve_stream

    requests = mixed_requests(50 if quick else 500, seed=0)

    def check(expected, got) -> str | None:
        return None if expected.stored == got.stored else "different tokens stored"

    def describe(report) -> str:
        return f"{100 * report.waste_fraction:.1f}% of allocated KV memory unused"

    return Case(
        f"KV memory on {len(requests)} mixed requests (8 at a time)",
        [Contender("contiguous (prompt + 512 reserved)", partial(serve_stream, requests, "contiguous"), "python",
                   repeats=1, warmup=0),
         Contender("paged, 16-token blocks", partial(serve_stream, requests, "paged", block_size=16), "python",
                   repeats=1, warmup=0)],
        check, "contiguous (prompt + 512 reserved)", (), describe=describe,
    )


def _describe_speculative(result) -> str:
    if not hasattr(result, "acceptance_rate"):
        return _tokens_per_s(result)
    return f"acceptance {100 * result.acceptance_rate:.0f}%, {result.tokens_per_round:.2f} tokens per target pass"


def _speculative_figures(result) -> dict[str, float]:
    if not hasattr(result, "acceptance_rate"):
        return {}
    return {"acceptance": result.acceptance_rate, "tokens_per_round": result.tokens_per_round}


def speculative_case(target, draft, prompt: list[int], n: int, ks: tuple[int, ...], *, sampled: bool = False,
                     with_alone: bool = True) -> Case:
    """The target alone, the draft alone and speculative decoding at each draft length k.

    Greedy: speculative decoding must give exactly the target's tokens (the
    check). At temperature 1 the text is random, so only its length is
    checked; the target alone and every k then draw with seed 1.
    """
    from workbench_engines.generation import generate, speculative_generate
    from workbench_engines.sampling.settings import GREEDY, Sampler

    sampler = Sampler(temperature=1.0) if sampled else GREEDY
    contenders = []
    if with_alone:
        contenders += [Contender("target alone", partial(generate, target, prompt, n, sampler=sampler, seed=1), "torch"),
                       Contender("draft alone", partial(generate, draft, prompt, n, sampler=sampler, seed=1), "torch")]
    for k in ks:
        contenders.append(Contender(f"speculative, k={k}",
                                    partial(speculative_generate, target, draft, prompt, n, k=k, sampler=sampler,
                                            seed=1), "torch", repeats=3 if sampled else None))

    def check(expected, got) -> str | None:
        # Greedy speculative runs must equal the target's text; the draft alone writes its own.
        if not sampled and hasattr(got, "acceptance_rate"):
            return _same_tokens(expected, got)
        return None if len(got.tokens) == len(expected.tokens) else "wrong length"

    reference = contenders[0].name
    return Case(f"speculative decoding, {n} tokens, {'temperature 1' if sampled else 'greedy'}", contenders, check,
                reference, (reference,), describe=_describe_speculative, figures=_speculative_figures,
                interleave=True)


def _top_p_cases(quick: bool) -> list[Case]:
    from workbench_engines.sampling.bench import cases as sampling_cases

    # One decoding step of one sequence over a 100k vocabulary.
    return [case for case in sampling_cases(quick) if case.name.startswith("top-p") and ", 1×" in case.name]


def cases(quick: bool = False) -> list[Case]:
    from workbench_engines.models import small_gpt

    target, draft = small_gpt.load("target"), small_gpt.load("draft")
    prompt = target.tokenizer.encode_ordinary(PROMPT)
    lengths = (16, 32) if quick else (128, 256, 512, 1024)
    result = [generation_case(target.model, prompt, n) for n in lengths]
    result.append(_waste_case(quick))
    result += _top_p_cases(quick)
    n, ks = (32, (2, 4)) if quick else (256, (2, 4, 6))
    result.append(speculative_case(target.model, draft.model, prompt, n, ks))
    result.append(speculative_case(target.model, draft.model, prompt, n, ks, sampled=True, with_alone=False))
    return result
