"""Chat templates: the Jinja program a chat model ships to turn messages into its prompt text.

An instruction-tuned model was trained on conversations written one exact way; for
SmolLM2 that is ChatML, each turn ``<|im_start|>role\\ncontent<|im_end|>\\n``, with a
default system turn when the conversation brings none. The template says how, and
rendering it the way transformers' ``apply_chat_template(tokenize=False)`` does gives
the model the text it expects: a sandboxed, immutable Jinja environment (a template
from a downloaded file is untrusted code) with ``trim_blocks`` and ``lstrip_blocks``,
the ``loopcontrols`` extension, and the helpers templates rely on, ``raise_exception``
and a ``tojson`` that does not escape HTML. jinja2 is imported on first use.

    >>> render_chat("{% for m in messages %}[{{ m.role }}] {{ m.content }}\\n{% endfor %}",
    ...             [{"role": "user", "content": "Hi"}], add_generation_prompt=False)
    '[user] Hi\\n'
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench_engines.errors import EngineError
from workbench_engines.tokenizers.gguf_vocab import open_gguf, read_chat_template, special_token_texts

if TYPE_CHECKING:
    import jinja2
    from gguf import GGUFReader


class ChatTemplateError(EngineError):
    """A conversation is malformed, or a chat template does not compile or render."""


def render_chat(template: str, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = False,
                **variables: Any) -> str:
    """The text template makes of messages.

    Args:
        template: the Jinja source of a chat template.
        messages: the conversation, ``[{"role": "user", "content": "..."}, ...]``; role and
            content must be strings (other keys are passed through to the template).
        add_generation_prompt: end with the opening of an assistant turn, for the model to
            write the reply.
        variables: more names the template may use, such as ``bos_token`` (transformers
            passes the tokenizer's special tokens this way).

    Raises:
        ChatTemplateError: messages is not a non-empty list of {role, content} strings, or the template
            does not compile or fails to render (the message says where and why).
    """
    import jinja2

    if not isinstance(template, str):
        raise ChatTemplateError(f"a chat template is Jinja source text, got {type(template).__name__}")
    conversation = _checked(messages)
    compiled = _compile(template)
    try:
        return compiled.render(messages=conversation, add_generation_prompt=add_generation_prompt, **variables)
    except jinja2.TemplateError as exc:
        raise ChatTemplateError(f"the chat template failed to render: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - a template can raise anything Python can; say it was the template
        raise ChatTemplateError(f"the chat template failed to render: {type(exc).__name__}: {exc}") from exc


def render_gguf_chat(source: str | Path | GGUFReader, messages: Sequence[Mapping[str, Any]],
                     add_generation_prompt: bool = False) -> str:
    """render_chat with the template and special tokens (bos_token, eos_token, ...) of a GGUF file."""
    reader = open_gguf(source)
    return render_chat(read_chat_template(reader), messages, add_generation_prompt, **special_token_texts(reader))


def _checked(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise ChatTemplateError(f"a conversation is a list of messages, got {type(messages).__name__}")
    if not messages:
        raise ChatTemplateError("a conversation needs at least one message")
    conversation = []
    for number, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise ChatTemplateError(f"message {number} is a {type(message).__name__}, not a {{role, content}} dict")
        for key in ("role", "content"):
            if not isinstance(message.get(key), str):
                found = "missing" if key not in message else f"a {type(message[key]).__name__}"
                raise ChatTemplateError(f"message {number}: {key} must be a string, is {found}")
        conversation.append(dict(message))
    return conversation


def _raise_exception(message: str) -> None:
    import jinja2

    raise jinja2.TemplateError(message)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators=None,
            sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


@cache
def _compile(template: str) -> jinja2.Template:
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    try:
        return env.from_string(template)
    except jinja2.TemplateSyntaxError as exc:
        raise ChatTemplateError(f"the chat template does not compile: line {exc.lineno}: {exc.message}") from exc
