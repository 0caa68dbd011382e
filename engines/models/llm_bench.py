"""Cases for ``workbench bench llm``: SmolLM2-135M prefill and decode, ours against transformers (and llama.cpp).

Contenders, each at 1 and 2 threads:

- ours, fp32: the GGUF dequantised once into float32 torch weights;
- ours, quantized: the Q4_1/Q8_0 blocks as stored, every decode product in the C kernel
  with the activation kept in float32 (the float32 model's function to round-off);
- ours, quantized with int8 x: the same blocks, each block of the activation rounded to
  int8 first and integer dot products, as llama.cpp does;
- transformers, fp32 eager: Hugging Face's Llama on the same file, dequantised by transformers;
- llama.cpp, through ``llama-cpp-python`` when it is installed (``make llama-cpp``), on the Q4_1 file.

Prefill runs a 512-token prompt once; decode generates 128 tokens greedily
after a short chat prompt, CHAT through the template (length forced: no stop
token). The last case is the target's side of speculative decoding: one
cached forward over T new tokens (the last accepted token and T - 1 drafted
ones), T = 1 .. 8, quantized, one thread; the summary turns each T's cost
into the acceptance a draft needs for SPEEDUP_GOAL (issue 21, goal 5), and the
race after it decodes held-out prompts of the plays greedily with that target
alone and with the distilled draft (``llm_draft``) proposing k tokens a
round, the tokens checked identical, acceptance beside each. Beside each
decode row, the bytes of weights one token reads (every matrix once, the
output projection included) and the bandwidth that implies; the first case
measures this machine's memory read bandwidth in the same run, the roofline
decode can approach.
"""

from __future__ import annotations

import atexit
import contextlib
import io

from functools import cache, partial
from importlib.util import find_spec

import numpy as np

from workbench_engines.profiling.bench import Case, Contender, torch_threads

PREFILL, NEW_TOKENS = 512, 128
QUICK_PREFILL, QUICK_NEW = 32, 8
BANDWIDTH_BYTES = 512 * 2**20
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me about the moon."}]
"""The decode prompt (the case names its length in tokens, the template included)."""
VERIFY_TOKENS = (1, 2, 3, 4, 5, 8)
"""T, the new tokens of one verifying forward: the last accepted token and k = T - 1 drafted ones."""
VERIFY_PROMPT = 96
SPEEDUP_GOAL = 1.3
SPECULATIVE_PROMPTS, SPECULATIVE_NEW, SPECULATIVE_KS = 4, 128, (2, 3)
"""The race: greedy continuations of this many prompts from the plays' held-out tail, k drafted tokens a round."""
RACE_TITLE = "SmolLM2 and its distilled draft, 1 thread"
"""The race's case name starts so (the summary finds its rows by it)."""
SPECULATIVE_DYNAMIC = (6, 0.4)
"""And up to 6 drafted tokens, the draft stopping after one it gives less than 0.4 (transformers' default
assistant_confidence_threshold, not tuned here)."""
DRAFT_COSTS = (0.0, 0.08)
"""A draft's cost per token as a share of one decode step: free (the bound for any draft), and 8%, about what
a 49,152-word output layer of width 128 costs beside SmolLM2's quantized step."""


@cache
def _models():
    """The three ways the workbench holds SmolLM2's weights: float32, quantised, quantised with int8 activations."""
    from workbench_engines.models import llama

    return (llama.load(weights="fp32"), llama.load(weights="quantized"),
            llama.load(weights="quantized", activations="int8"))


def _threads(n: int, quantized=None):
    """(setup, teardown) running torch, and the quantised kernels when given, on n threads; teardown puts both
    back (the kernels to every CPU this process may use, a loaded model's default), so a lab that races a model
    shared with other labs leaves it as it found it."""
    from workbench_engines.nativelib import check_threads

    torch_setup, torch_teardown = torch_threads(n)

    def setup() -> None:
        torch_setup()
        if quantized is not None:
            quantized.set_threads(n)

    def teardown() -> None:
        torch_teardown()
        if quantized is not None:
            quantized.set_threads(check_threads(None))

    return setup, teardown


@cache
def transformers_model():
    """Hugging Face's Llama (eager attention) on the bundled file, dequantised by transformers: loaded once per
    process, for the bench and for the parity tests."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    from workbench_engines.gguf_file import bundled_model_path

    logging.disable_progress_bar()
    path = bundled_model_path()
    # Its GGUF conversion draws a tqdm bar of its own on stderr, which would tear through the bench's progress line.
    with contextlib.redirect_stderr(io.StringIO()):
        return AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32,
                                                    attn_implementation="eager").eval()


@cache
def _llama_cpp(threads: int):
    from llama_cpp import Llama

    from workbench_engines.gguf_file import bundled_model_path

    # Free the model while llama_cpp is whole: freed during the interpreter's teardown it raises.
    atexit.register(_llama_cpp.cache_clear)
    # n_threads_batch too: prefill runs on it, and it defaults to every CPU.
    return Llama(str(bundled_model_path()), n_threads=threads, n_threads_batch=threads, n_ctx=1024,
                 logits_all=False, verbose=False)


def weight_bytes_per_token(loaded) -> float:
    return loaded.card.weight_bytes_per_token(loaded.weights)


def _bandwidth_case(threads: tuple[int, ...] = (1, 2)) -> Case:
    """``workbench bench machine``'s read stream (ours and torch's sum) over BANDWIDTH_BYTES."""
    from workbench_engines.profiling.machine import read_case

    return read_case(threads, BANDWIDTH_BYTES // 4)


def _last_logprobs(logits) -> np.ndarray:
    import torch

    return torch.log_softmax(torch.as_tensor(logits, dtype=torch.float64).reshape(-1), -1).numpy()


def _close_distribution(expected, got) -> str | None:
    """Prefill outputs are the last position's log-probabilities: the same top token, KL under 0.05 nats."""
    kl = float((np.exp(expected) * (expected - got)).sum())
    if int(np.argmax(expected)) != int(np.argmax(got)):
        return f"another top token (KL {kl:.3f})"
    return None if kl < 0.05 else f"KL {kl:.3f} nats"


def _prefill_case(ids: list[int], threads: int) -> Case:
    import torch

    fp32, quantized, _ = _models()

    def ours(model):
        with torch.inference_mode():
            return _last_logprobs(model(torch.tensor([ids]))[0, -1])

    def theirs():
        with torch.inference_mode():
            return _last_logprobs(transformers_model()(torch.tensor([ids])).logits[0, -1])

    contenders = [Contender("ours fp32", partial(ours, fp32.model), "torch", *_threads(threads)),
                  Contender("ours quantized", partial(ours, quantized.model), "native",
                            *_threads(threads, quantized)),
                  Contender("transformers fp32", theirs, "torch", *_threads(threads))]
    if find_spec("llama_cpp") is not None:
        def cpp():
            import llama_cpp

            model = _llama_cpp(threads)
            model.reset()
            model.eval(ids)
            # Without logits_all, Llama.eval keeps no logits of its own: read the context's last row.
            logits = llama_cpp.llama_get_logits_ith(model.ctx, -1)
            return _last_logprobs(np.ctypeslib.as_array(logits, shape=(model.n_vocab(),)).copy())

        contenders.append(Contender("llama.cpp Q4_1", cpp, "llama.cpp"))
    base = contenders[2].name
    return Case(f"prefill {len(ids)} tokens, {threads} thread{'s' * (threads > 1)}", contenders, _close_distribution,
                contenders[0].name, (base,), per_run=(len(ids), "tokens"), repeats=3, warmup=1)


def _decode_case(ids: list[int], new: int, threads: int, peers: bool = True) -> Case:
    import torch

    from workbench_engines.generation import generate

    fp32, quantized, int8 = _models()

    def theirs():
        with torch.inference_mode():
            out = transformers_model().generate(torch.tensor([ids]), max_new_tokens=new, min_new_tokens=new,
                                           do_sample=False)
        return out[0, len(ids):].tolist()

    def ours(model):
        return generate(model, ids, new).tokens

    contenders = [
        Contender("ours fp32", partial(ours, fp32.model), "torch", *_threads(threads),
                  bytes_moved=new * weight_bytes_per_token(fp32)),
        Contender("ours quantized", partial(ours, quantized.model), "native",
                  *_threads(threads, quantized), bytes_moved=new * weight_bytes_per_token(quantized)),
        Contender("ours quantized, int8 x", partial(ours, int8.model), "native",
                  *_threads(threads, int8), bytes_moved=new * weight_bytes_per_token(int8)),
    ]
    if peers:
        contenders.append(Contender("transformers fp32", theirs, "torch", *_threads(threads),
                                    bytes_moved=new * weight_bytes_per_token(fp32)))
    if peers and find_spec("llama_cpp") is not None:
        def cpp():
            model = _llama_cpp(threads)
            model.reset()
            out = []
            for token in model.generate(ids, temp=0.0, top_k=1):
                out.append(int(token))
                if len(out) == new:
                    break
            return out

        contenders.append(Contender("llama.cpp Q4_1", cpp, "llama.cpp",
                                    bytes_moved=new * weight_bytes_per_token(quantized)))

    def check(expected: list[int], got: list[int]) -> str | None:
        # Only the count is checked: a near-tie between two logits may fall either way in another
        # implementation's round-off (tests/test_llama.py holds ours and transformers' greedy tokens
        # identical over 32 tokens on five prompts), and the quantised weights are another model.
        if len(got) != len(expected):
            return f"{len(got)} tokens, not {len(expected)}"
        return None

    base = contenders[3].name if peers else contenders[0].name
    return Case(f"decode {new} tokens after {len(ids)}, {threads} thread{'s' * (threads > 1)}", contenders, check,
                contenders[0].name, (base,), per_run=(new, "tokens"), repeats=3, warmup=1, interleave=True)


def _verify_case(ids: list[int]) -> Case:
    """One cached forward over T new tokens after ``ids``, for each T in VERIFY_TOKENS (quantized, one thread).

    Every run starts from a fresh cache holding ``ids`` (made outside the timer). The output is the first new
    position's log-probabilities, which no later token can change (the mask is causal): every T must agree
    with T = 1, so a wrong multi-row product fails the check.
    """
    import torch

    from workbench_engines.kvcache import ContiguousCache

    _, quantized, _ = _models()
    model = quantized.model
    prompt, new = ids[:-max(VERIFY_TOKENS)], ids[-max(VERIFY_TOKENS):]

    def cached():
        cache = ContiguousCache(model.config, 1, len(ids))
        with torch.inference_mode():
            model(torch.tensor([prompt]), cache)
        return cache

    def verify(tokens: int, cache) -> np.ndarray:
        with torch.inference_mode():
            return _last_logprobs(model(torch.tensor([new[:tokens]]), cache)[0, 0])

    contenders = [Contender(f"verify {t} token{'s' * (t > 1)}", partial(verify, t), "native",
                            *_threads(1, quantized)) for t in VERIFY_TOKENS]
    return Case(f"speculative break-even: verify T tokens after {len(prompt)}, quantized, 1 thread", contenders,
                _close_distribution, contenders[0].name, (contenders[0].name,), inputs=cached, repeats=7, warmup=1)


def cases(quick: bool = False) -> list[Case]:
    from workbench_engines.corpus import read_text

    fp32 = _models()[0]
    chat_ids = fp32.prompt_ids(fp32.chat(CHAT))
    text_ids = fp32.tokenizer.encode(read_text(limit=20_000))
    prompt = text_ids[: QUICK_PREFILL if quick else PREFILL]
    new = QUICK_NEW if quick else NEW_TOKENS
    result = [_bandwidth_case()]
    for threads in (1, 2):
        result.append(_prefill_case(prompt, threads))
        result.append(_decode_case(chat_ids, new, threads))
    result.append(_verify_case(text_ids[: (QUICK_PREFILL if quick else VERIFY_PROMPT) + max(VERIFY_TOKENS)]))
    race = {"prompts": 1, "new": QUICK_NEW, "length": QUICK_PREFILL} if quick else {}
    result.append(speculative_race(_models()[1], **race))
    return result


def held_out_prompts(loaded, count: int, length: int) -> list[list[int]]:
    """``count`` prompts of ``length`` tokens of ``loaded``'s tokenizer, evenly spaced over the plays' tail that no
    window the draft learned from reaches (``llm_draft.held_out_start``)."""
    from workbench_engines.models import llm_draft

    ids = llm_draft.plays_ids(loaded)
    first = llm_draft.held_out_start(ids)
    step = (len(ids) - first - length) // count
    return [ids[first + i * step: first + i * step + length].tolist() for i in range(count)]


def speculative_race(quantized, prompts: int = SPECULATIVE_PROMPTS, new: int = SPECULATIVE_NEW,
                     ks: tuple[int, ...] = SPECULATIVE_KS, length: int = VERIFY_PROMPT, sampled: bool = False) -> Case:
    """Decoding of ``prompts`` held-out prompts by the quantized SmolLM2 alone, by the distilled draft alone, and
    by speculative decoding at each k in ``ks``; one thread. Greedy (the tokens must be the target's), or at
    temperature 1 (``sampled``: only the lengths are checked)."""
    from workbench_engines.errors import EngineError
    from workbench_engines.generation.bench import speculative_case
    from workbench_engines.models import llm_draft

    draft = llm_draft.load()
    room = draft.config.context - length - max((*ks, SPECULATIVE_DYNAMIC[0])) - 1
    if new > room:
        raise EngineError(f"the draft's context of {draft.config.context} holds a {length}-token prompt, a round's "
                          f"draft and at most {room} new tokens, not {new}")
    return speculative_case(quantized.model, draft, held_out_prompts(quantized, prompts, length), new, ks,
                            threads=_threads(1, quantized), backend="native", sampled=sampled,
                            title=RACE_TITLE,
                            dynamic=SPECULATIVE_DYNAMIC, repeats=3)


def needed_acceptance(round_cost: float, drafted: int, goal: float = SPEEDUP_GOAL) -> float | None:
    """The per-token acceptance α at which speculative decoding reaches ``goal`` x plain decoding, or None if none can.

    A round drafts k tokens and verifies them in one forward costing ``round_cost`` decode steps (the draft's
    share included); it yields expected_tokens_per_round(α, k) tokens, so the speed-up is that over round_cost,
    increasing in α up to (k + 1) / round_cost at α = 1. Solved by bisection.
    """
    from workbench_engines.generation.speculative import expected_tokens_per_round

    def speedup(alpha: float) -> float:
        return expected_tokens_per_round(alpha, drafted) / round_cost

    if speedup(1.0) < goal:
        return None
    low, high = 0.0, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (low, mid) if speedup(mid) >= goal else (mid, high)
    return high


def break_even_note(rows) -> str:
    """Under the verify case: each T's cost in decode steps and the acceptance a draft needs for SPEEDUP_GOAL."""
    verify = [row for row in rows if row.case.startswith("speculative break-even")]
    one = next((row for row in verify if row.name == "verify 1 token"), None)
    if one is None:
        return ""
    lines = [f"{verify[0].case}: a round of k = T - 1 drafted tokens costs one verify of T plus k drafts; "
             f"the acceptance per drafted token a draft needs for {SPEEDUP_GOAL:g}x plain decoding"]
    for row in verify[1:]:
        tokens = int(row.name.split()[1])
        cost = row.wall_s / one.wall_s
        needs = []
        for share in DRAFT_COSTS:
            alpha = needed_acceptance(cost + (tokens - 1) * share, tokens - 1)
            needs.append(f"{'none can' if alpha is None else f'{alpha:.2f}'} (draft at {100 * share:.0f}% of a step)")
        lines.append(f"  T {tokens}: {row.wall_s * 1e3:.1f} ms, {cost:.2f} decode steps; needs " + ", ".join(needs))
    return "\n".join(lines)


def speculative_note(rows) -> str:
    """Under the race: each speculative run's speed-up over plain greedy decoding and its acceptance, the best
    against SPEEDUP_GOAL, and, for the best fixed k, the acceptance the verify case says it needs."""
    race = [row for row in rows if row.case.startswith(RACE_TITLE)]
    alone = {row.name: row for row in race if "alone" in row.name}
    runs = [row for row in race if row.name.startswith("speculative") and "acceptance" in row.extra]
    if "target alone" not in alone or not runs:
        return ""
    plain = alone["target alone"].wall_s
    same = "the tokens identical" if all(row.matches is not False for row in race) else "SOME TOKENS DIFFER"
    lines = [f"{race[0].case}: x plain greedy decoding ({same}), acceptance per drafted token"]
    for row in runs:
        lines.append(f"  {row.name}: {plain / row.wall_s:.2f}x, acceptance {row.extra['acceptance']:.2f}, "
                     f"{row.extra['drafted_per_round']:.2f} drafted and {row.extra['tokens_per_round']:.2f} "
                     f"written a target pass")
    best = min(runs, key=lambda row: row.wall_s)
    lines.append(f"  best: {best.name}, {plain / best.wall_s:.2f}x (goal {SPEEDUP_GOAL:g}x)")
    fixed = [row for row in runs if "=" in row.name]
    verify = {row.name: row for row in rows if row.case.startswith("speculative break-even")}
    if fixed and "draft alone" in alone and "verify 1 token" in verify:
        row = min(fixed, key=lambda row: row.wall_s)
        k = int(row.name.rsplit("=", 1)[1])
        share = alone["draft alone"].wall_s / plain
        t = verify.get(f"verify {k + 1} tokens")
        if t is not None:
            needs = needed_acceptance(t.wall_s / verify["verify 1 token"].wall_s + k * share, k)
            lines.append(f"  the draft costs {100 * share:.0f}% of a decode step; at k = {k} the goal needs "
                         f"{'more than any draft can give' if needs is None else f'{needs:.2f}'}")
    return "\n".join(lines)


def summary(rows) -> str:
    """``workbench bench llm``'s footer: the decode roofline, speculative decoding's break-even, then the race."""
    return "\n".join(part for part in (roofline_note(rows), break_even_note(rows), speculative_note(rows)) if part)


def decode_race_cases(new: int = 32) -> list[Case]:
    """The lesson's race: this machine's read bandwidth, then fp32 against quantized decoding, one thread each."""
    fp32 = _models()[0]
    return [_bandwidth_case((1,)), _decode_case(fp32.prompt_ids(fp32.chat(CHAT)), new, 1, peers=False)]


def roofline_note(rows) -> str:
    """Under each decode case, per contender: the bytes a token reads, the ceiling this machine's bandwidth (at
    the case's thread count, measured in the same run) puts on tokens/s, and the share of it reached."""
    from workbench_engines.profiling.machine import read_bandwidth

    lines: list[str] = []
    for row in rows:
        if not row.case.startswith("decode") or not row.bytes_moved:
            continue
        threads = int(row.case.rsplit(", ", 1)[1].split()[0])  # "decode N tokens after P, 2 threads"
        gbytes = read_bandwidth(rows, threads)  # the better of ours and torch's read at that thread count
        if not gbytes:
            continue
        if row.case not in lines:
            lines.append(row.case)  # a heading over its contenders
        tokens = float(row.case.split()[1])
        per_token = row.bytes_moved / tokens
        ceiling = gbytes * 1e9 / per_token
        rate = tokens / row.wall_s
        lines.append(f"  {row.name}: {per_token / 1e6:,.0f} MB of weights a token, at most {ceiling:,.0f} tokens/s "
                     f"at {gbytes:.1f} GB/s; ran {rate:,.1f} ({100 * rate / ceiling:.0f}%)")
    return "\n".join(lines)
