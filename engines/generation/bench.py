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


def _generation_cases(model, prompt: list[int], lengths: tuple[int, ...]) -> list[Case]:
    from workbench_engines.generation import generate

    cases = []
    for n in lengths:
        run = partial(generate, model, prompt, n)
        contenders = [
            # Without a cache each step reruns the whole sequence: one timed run is plenty.
            Contender("no cache", partial(run, cache="none"), "torch", repeats=1, warmup=0),
            Contender("contiguous cache", partial(run, cache="contiguous"), "torch"),
            Contender("paged cache (16)", partial(run, cache="paged"), "torch"),
        ]
        cases.append(Case(f"generate {n} tokens", contenders, _same_tokens, "contiguous cache",
                          ("no cache", "contiguous cache"), repeats=5 if n >= 512 else None,
                          describe=_tokens_per_s, interleave=True))
    return cases


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


def _speculative_cases(target, draft, prompt: list[int], n: int, ks: tuple[int, ...]) -> list[Case]:
    from workbench_engines.generation import generate, speculative_generate
    from workbench_engines.sampling.settings import GREEDY

    def describe(result) -> str:
        if not hasattr(result, "acceptance_rate"):
            return _tokens_per_s(result)
        return (f"acceptance {100 * result.acceptance_rate:.0f}%, "
                f"{result.tokens_per_round:.2f} tokens per target pass")

    contenders = [Contender("target alone", partial(generate, target, prompt, n), "torch")]
    contenders.append(Contender("draft alone", partial(generate, draft, prompt, n), "torch"))
    for k in ks:
        contenders.append(Contender(f"speculative, k={k}",
                                    partial(speculative_generate, target, draft, prompt, n, k=k, sampler=GREEDY),
                                    "torch"))

    def same_as_target(expected, got) -> str | None:
        # Speculative runs must equal the target's text; the draft alone writes its own.
        if hasattr(got, "acceptance_rate"):
            return _same_tokens(expected, got)
        return None if len(got.tokens) == len(expected.tokens) else "wrong length"

    greedy = Case(f"speculative decoding, {n} tokens, greedy", contenders, same_as_target, "target alone",
                  ("target alone",), describe=describe, interleave=True)

    def sampled(k: int):
        from workbench_engines.sampling.settings import Sampler

        return partial(speculative_generate, target, draft, prompt, n, k=k, sampler=Sampler(temperature=1.0), seed=1)

    at_t1 = Case(
        f"speculative decoding, {n} tokens, temperature 1",
        [Contender(f"speculative, k={k}", sampled(k), "torch", repeats=3) for k in ks],
        lambda expected, got: None if len(got.tokens) == len(expected.tokens) else "wrong length",
        f"speculative, k={ks[0]}", (f"speculative, k={ks[0]}",), describe=describe, interleave=True,
    )
    return [greedy, at_t1]


def _top_p_cases(quick: bool) -> list[Case]:
    from workbench_engines.sampling.bench import cases as sampling_cases

    # One decoding step of one sequence over a 100k vocabulary.
    return [case for case in sampling_cases(quick) if case.name.startswith("top-p") and ", 1×" in case.name]


def cases(quick: bool = False) -> list[Case]:
    from workbench_engines.models import small_gpt

    target, draft = small_gpt.load("target"), small_gpt.load("draft")
    prompt = target.tokenizer.encode_ordinary(PROMPT)
    lengths = (16, 32) if quick else (128, 256, 512, 1024)
    result = _generation_cases(target.model, prompt, lengths)
    result.append(_waste_case(quick))
    result += _top_p_cases(quick)
    result += _speculative_cases(target.model, draft.model, prompt, 32 if quick else 256, (2, 4) if quick else (2, 4, 6))
    return result
