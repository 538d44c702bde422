"""Ollama Modelfiles: parse them for ``create`` and write them back for ``show --modelfile``.

The grammar is Ollama's: one instruction per line (``FROM``, ``PARAMETER``, ``TEMPLATE``, ``SYSTEM``,
``ADAPTER``, ``LICENSE``, ``MESSAGE``, ``REQUIRES``; any case), ``#`` comment lines, and values that
are bare (rest of the line), ``"quoted"`` (JSON-style escapes) or ``\"\"\"triple-quoted\"\"\"`` (verbatim,
may span lines). ``PARAMETER`` values are typed as Ollama's options are, so a bad value is caught
at create time with the line that holds it, not at the first generate.
:func:`render_modelfile` writes a Modelfile that :func:`parse_modelfile` reads back unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from openzoo.errors import InvalidRequest

__all__ = [
    "MESSAGE_ROLES",
    "PARAMETER_TYPES",
    "Modelfile",
    "ModelfileMessage",
    "ParameterValue",
    "coerce_parameter",
    "parse_modelfile",
    "render_modelfile",
]

ParameterValue = int | float | bool | str | list[str]

_INT = (
    "num_keep",
    "seed",
    "num_predict",
    "top_k",
    "repeat_last_n",
    "mirostat",
    "num_ctx",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "num_thread",
)
_FLOAT = (
    "top_p",
    "min_p",
    "typical_p",
    "temperature",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
    "mirostat_tau",
    "mirostat_eta",
    "tfs_z",
)
_BOOL = (
    "penalize_newline",
    "numa",
    "low_vram",
    "f16_kv",
    "logits_all",
    "vocab_only",
    "use_mmap",
    "use_mlock",
    "embedding_only",
)
#: Ollama's option names and their types (``list`` is ``stop``, the one repeatable parameter).
PARAMETER_TYPES: Mapping[str, type] = {
    **dict.fromkeys(_INT, int),
    **dict.fromkeys(_FLOAT, float),
    **dict.fromkeys(_BOOL, bool),
    "stop": list,
}
MESSAGE_ROLES = ("system", "user", "assistant")
_INSTRUCTIONS = ("from", "parameter", "template", "system", "adapter", "license", "message", "requires")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


@dataclass(frozen=True)
class ModelfileMessage:
    role: str
    content: str


@dataclass
class Modelfile:
    """A parsed Modelfile. ``from_`` is a model name, a path or a blob digest, as written."""

    from_: str
    parameters: dict[str, ParameterValue] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    adapters: list[str] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)
    messages: list[ModelfileMessage] = field(default_factory=list)
    requires: str | None = None


def coerce_parameter(name: str, value: object) -> ParameterValue:
    """Check and convert one parameter as Ollama types it (strings parsed as Go's strconv does).

    Used for Modelfile ``PARAMETER`` lines and for the ``parameters`` of ``/api/create``; raises
    :class:`InvalidRequest` naming the parameter.
    """
    kind = PARAMETER_TYPES.get(name)
    if kind is None:
        raise InvalidRequest(f'unknown parameter "{name}"', param=name)
    if kind is list:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(v, str) for v in items):
            raise InvalidRequest(f'parameter "{name}" must be a string or a list of strings', param=name)
        return list(items)
    if isinstance(value, str):
        return _parse_scalar(name, kind, value)
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise InvalidRequest(f'parameter "{name}" must be of type {_type_word(kind)}', param=name)


def _type_word(kind: type) -> str:
    return {int: "integer", float: "float", bool: "boolean"}.get(kind, "string")


def _parse_scalar(name: str, kind: type, text: str) -> ParameterValue:
    try:
        if kind is int:
            return int(text, 10)
        if kind is float:
            return float(text)
    except ValueError:
        pass
    else:
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise InvalidRequest(f'invalid {_type_word(kind)} value "{text}" for parameter "{name}"', param=name)


class _Lines:
    """The Modelfile's lines with the number of the current one, for error messages."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.index = -1

    @property
    def number(self) -> int:
        return self.index + 1

    def fail(self, reason: str) -> InvalidRequest:
        return InvalidRequest(f"Modelfile line {self.number}: {reason}")

    def next(self) -> str | None:
        self.index += 1
        return self.lines[self.index] if self.index < len(self.lines) else None


def _split_word(text: str) -> tuple[str, str]:
    parts = text.split(None, 1)
    return (parts[0], parts[1] if len(parts) > 1 else "") if parts else ("", "")


def _read_value(lines: _Lines, rest: str, what: str) -> str:
    """The value starting at ``rest``: bare, ``"quoted"`` or ``\"\"\"multi-line\"\"\"``."""
    start = lines.number
    if rest.startswith('"""'):
        body = rest[3:]
        chunks: list[str] = []
        while (end := body.find('"""')) < 0:
            chunks.append(body)
            line = lines.next()
            if line is None:
                raise InvalidRequest(f'Modelfile line {start}: {what} has an unterminated """ string')
            body = line
        chunks.append(body[:end])
        if body[end + 3 :].strip():
            raise lines.fail(f'unexpected text after the closing """ of {what}')
        return "\n".join(chunks)
    if rest.startswith('"'):
        end = _closing_quote(rest)
        if end < 0:
            raise lines.fail(f"{what} has an unterminated quoted string")
        if rest[end + 1 :].strip():
            raise lines.fail(f"unexpected text after the quoted value of {what}")
        try:
            value = json.loads(rest[: end + 1])
        except json.JSONDecodeError:  # e.g. a Windows path: keep backslashes, unescape quotes only
            value = rest[1:end].replace('\\"', '"')
        return str(value)
    value = rest.strip()
    if not value:
        raise lines.fail(f"missing value for {what}")
    return value


def _closing_quote(text: str) -> int:
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return -1


def parse_modelfile(text: str) -> Modelfile:
    """Parse a Modelfile, raising :class:`InvalidRequest` with the line number of the first fault."""
    lines = _Lines(text)
    base: str | None = None
    model = Modelfile(from_="")
    while (line := lines.next()) is not None:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        word, rest = _split_word(line.lstrip())  # keep trailing spaces: they may open a """ value
        instruction = word.lower()
        if instruction not in _INSTRUCTIONS:
            names = ", ".join(i.upper() for i in _INSTRUCTIONS)
            raise lines.fail(f'unknown instruction "{word}"; expected one of {names}')
        if instruction == "parameter":
            name, raw = _split_word(rest)
            if not name:
                raise lines.fail("PARAMETER needs a name and a value")
            if name.lower() not in PARAMETER_TYPES:
                raise lines.fail(f'unknown parameter "{name}"')
            name = name.lower()
            value = _read_value(lines, raw, f"PARAMETER {name}")
            try:
                typed = coerce_parameter(name, value)
            except InvalidRequest as exc:
                raise lines.fail(exc.message) from None
            if isinstance(typed, list):
                previous = model.parameters.get(name, [])
                typed = [*previous, *typed] if isinstance(previous, list) else typed
            model.parameters[name] = typed
        elif instruction == "message":
            role, raw = _split_word(rest)
            if role.lower() not in MESSAGE_ROLES:
                raise lines.fail(f'MESSAGE role must be one of "system", "user" or "assistant", not "{role}"')
            model.messages.append(ModelfileMessage(role.lower(), _read_value(lines, raw, "MESSAGE")))
        else:
            value = _read_value(lines, rest, word.upper())
            if instruction == "from":
                if base is not None:
                    raise lines.fail("FROM may appear only once")
                base = value
            elif instruction == "adapter":
                model.adapters.append(value)
            elif instruction == "license":
                model.licenses.append(value)
            elif instruction == "template":
                model.template = value
            elif instruction == "system":
                model.system = value
            else:
                model.requires = value
    if base is None:
        raise InvalidRequest("Modelfile has no FROM line", hint="start the Modelfile with 'FROM <model or file>'")
    model.from_ = base
    return model


def _quote(value: str) -> str:
    """The shortest form of ``value`` that :func:`_read_value` reads back exactly."""
    plain = value and value == value.strip() and "\n" not in value and not value.startswith('"')
    if plain:
        return value
    if '"""' not in value and not value.startswith('"') and not value.endswith('"'):
        return f'"""{value}"""'
    return json.dumps(value, ensure_ascii=False)


def _format_parameter(value: int | float | bool | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _quote(str(value))


def _parameter_lines(parameters: Mapping[str, ParameterValue]) -> Iterable[str]:
    for name, value in parameters.items():
        values: Sequence[int | float | bool | str] = value if isinstance(value, list) else [value]
        for item in values:
            yield f"PARAMETER {name} {_format_parameter(item)}"


def render_modelfile(model: Modelfile, *, header: str | None = None) -> str:
    """Write ``model`` as Modelfile text in Ollama's ``show --modelfile`` order.

    ``header`` becomes ``#`` comment lines at the top (Ollama names the model to use in FROM there).
    """
    out: list[str] = [f"# {line}".rstrip() for line in header.splitlines()] + [""] if header else []
    out.append(f"FROM {_quote(model.from_)}")
    out += [f"ADAPTER {_quote(a)}" for a in model.adapters]
    if model.template is not None:
        out.append(f"TEMPLATE {_quote(model.template)}")
    if model.system is not None:
        out.append(f"SYSTEM {_quote(model.system)}")
    out += _parameter_lines(model.parameters)
    out += [f"MESSAGE {m.role} {_quote(m.content)}" for m in model.messages]
    out += [f"LICENSE {_quote(text)}" for text in model.licenses]
    if model.requires is not None:
        out.append(f"REQUIRES {_quote(model.requires)}")
    return "\n".join(out) + "\n"
