"""Cases for ``workbench bench decode``: KV caches, cache memory, top-p selection, speculative decoding.

All decoding runs the shipped target model (and its draft) on one thread
group, greedy, from the same 16-token prompt, so every contender of a case
must produce the same tokens.
"""

from __future__ import annotations

from functools import partial

from workbench_engines.errors import EngineError
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
    return {"acceptance": result.acceptance_rate, "tokens_per_round": result.tokens_per_round,
            "drafted_per_round": result.proposed / result.rounds if result.rounds else 0.0}


def joined(results: list):
    """One result for runs over several prompts: their new tokens end to end, their time (and for speculative
    runs their rounds and acceptance counts) summed."""
    import dataclasses

    from workbench_engines.generation.speculative import SpeculativeResult

    tokens = [token for result in results for token in result.tokens]
    seconds = sum(result.seconds for result in results)
    if isinstance(results[0], SpeculativeResult):
        return SpeculativeResult(tokens, sum(r.rounds for r in results), sum(r.proposed for r in results),
                                 sum(r.accepted for r in results), seconds,
                                 [taken for r in results for taken in r.accepted_per_round])
    return dataclasses.replace(results[0], prompt=[], tokens=tokens, seconds=seconds,
                               prefill_seconds=sum(r.prefill_seconds for r in results),
                               step_seconds=[s for r in results for s in r.step_seconds])


def _each_prompt(run, prompts: list[list[int]]):
    return joined([run(prompt) for prompt in prompts])


def dynamic_name(k: int, confidence: float) -> str:
    """The row of speculative decoding that drafts up to k tokens and stops after one below ``confidence``."""
    return f"speculative, k≤{k}, stop below {confidence:g}"


def speculative_case(target, draft, prompts: list[list[int]], n: int, ks: tuple[int, ...], *, sampled: bool = False,
                     with_alone: bool = True, threads: tuple = (None, None), backend: str = "torch",
                     title: str = "speculative decoding", dynamic: tuple[int, float] | None = None,
                     repeats: int | None = None) -> Case:
    """The target alone, the draft alone and speculative decoding at each draft length k, n tokens after each
    prompt in turn (one run covers them all).

    Greedy: speculative decoding must give exactly the target's tokens (the
    check). At temperature 1 the text is random, so only its length is
    checked; the target alone and every k then draw with seed 1. ``threads`` is
    every contender's (setup, teardown); ``backend`` names what runs the target.
    ``dynamic`` = (k, confidence) adds a run whose draft stops early when it
    doubts its token (``speculative_generate``'s confidence); ``repeats`` sets
    the case's timed runs, after one warm-up (slow targets).
    """
    from workbench_engines.generation import generate, speculative_generate
    from workbench_engines.sampling.settings import GREEDY, Sampler

    if not prompts:
        raise EngineError("speculative_case needs at least one prompt")
    sampler = Sampler(temperature=1.0) if sampled else GREEDY

    def alone(model, prompt):
        return generate(model, prompt, n, sampler=sampler, seed=1)

    def speculative(k, prompt, confidence=0.0):
        return speculative_generate(target, draft, prompt, n, k=k, sampler=sampler, seed=1, confidence=confidence)

    contenders = []
    if with_alone:
        contenders += [Contender("target alone", partial(_each_prompt, partial(alone, target), prompts), backend,
                                 *threads),
                       Contender("draft alone", partial(_each_prompt, partial(alone, draft), prompts), "torch",
                                 *threads)]
    for k in ks:
        contenders.append(Contender(f"speculative, k={k}", partial(_each_prompt, partial(speculative, k), prompts),
                                    backend, *threads, repeats=3 if sampled else None))
    if dynamic is not None:
        k, confidence = dynamic
        contenders.append(Contender(dynamic_name(k, confidence),
                                    partial(_each_prompt, partial(speculative, k, confidence=confidence), prompts),
                                    backend, *threads, repeats=3 if sampled else None))

    def check(expected, got) -> str | None:
        # Greedy speculative runs must equal the target's text; the draft alone writes its own.
        if not sampled and hasattr(got, "acceptance_rate"):
            return _same_tokens(expected, got)
        return None if len(got.tokens) == len(expected.tokens) else "wrong length"

    reference = contenders[0].name
    after = f" after each of {len(prompts)} prompts" if len(prompts) > 1 else ""
    return Case(f"{title}, {n} tokens{after}, {'temperature 1' if sampled else 'greedy'}", contenders, check,
                reference, (reference,), describe=_describe_speculative, figures=_speculative_figures,
                interleave=True, repeats=repeats, warmup=1 if repeats else None)


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
    result.append(speculative_case(target.model, draft.model, [prompt], n, ks))
    result.append(speculative_case(target.model, draft.model, [prompt], n, ks, sampled=True, with_alone=False))
    return result
