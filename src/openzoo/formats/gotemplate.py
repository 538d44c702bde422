"""Translate the Go ``text/template`` subset of Ollama Modelfile TEMPLATEs into sandboxed Jinja.

Ollama Modelfiles carry Go templates (``{{ .System }}``, ``{{ range .Messages }}``…). openzoo renders
every template in one Jinja sandbox, so instead of a second template engine this module translates
the subset real Modelfiles use, and refuses everything else with :class:`InvalidRequest` naming the
construct (``template``, ``define``, pipelines, ``printf``…) rather than guessing at it.

Supported: text; ``{{- `` / `` -}}`` trimming; comments; fields (``.System``, ``.Prompt``,
``.Response``, ``.Suffix``, ``.Messages``, ``.Tools``, ``.Role``, ``.Content``, ``.ToolCalls``,
``.Function.Name``…, also through ``$`` and ``$var``); ``if``/``else if``/``else``/``end``;
``range`` (with ``$i, $v :=``, and ``else``); ``with``; ``break``/``continue``; ``$x := …``; the
functions ``eq ne lt le gt ge and or not len slice index json``; string, number and bool literals.

Go field names become the snake_case keys of the wire messages (``.ToolCalls`` → ``tool_calls``),
so a rendered template sees the same dicts as a Jinja one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from openzoo.errors import InvalidRequest

__all__ = ["GoTranslation", "translate_go_template"]

_KEYWORDS = frozenset({"if", "else", "end", "range", "with", "break", "continue"})
_REFUSED = frozenset({"template", "define", "block"})
_COMPARE = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<comma>,)
  | (?P<pipe>\|)
  | (?P<open>\()
  | (?P<close>\))
  | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class GoTranslation:
    """A Go template as Jinja.

    ``jinja`` is the whole template; ``prompt_jinja`` stops output after the first ``{{ .Response }}``,
    which is how Ollama renders the last turn of a template without ``.Messages``. Both read the
    root context (``.System``…) from one Jinja variable ``go``, a dict keyed by snake_case names.
    """

    jinja: str
    prompt_jinja: str
    root_fields: frozenset[str]

    @property
    def uses_messages(self) -> bool:
        return "messages" in self.root_fields


def _snake(name: str) -> str:
    """Go's exported field name to the wire key: ``ToolCalls`` → ``tool_calls``, ``ID`` → ``id``."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


@dataclass
class _Piece:
    jinja: str
    kind: str  # "text", "output" or "control"
    cuts: bool = False


@dataclass
class _Translator:
    pieces: list[_Piece] = field(default_factory=list)
    blocks: list[str] = field(default_factory=list)  # "if" | "range" | "with"
    dots: list[str] = field(default_factory=list)  # Jinja name of "." per open range/with; "" = root
    variables: set[str] = field(default_factory=set)
    root_fields: set[str] = field(default_factory=set)
    counter: int = 0
    action: str = ""
    tokens: list[tuple[str, str]] = field(default_factory=list)
    pos: int = 0

    # -- errors -------------------------------------------------------------------------------

    def fail(self, reason: str) -> InvalidRequest:
        return InvalidRequest(f"unsupported Go template construct {{{{{self.action}}}}}: {reason}")

    # -- expressions ----------------------------------------------------------------------------

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise self.fail("unexpected end of action")
        self.pos += 1
        return token

    def fields(self, base: str, names: list[str]) -> str:
        return base + "".join(f"[{_literal(_snake(n))}]" for n in names)

    def root(self, names: list[str]) -> str:
        if not names:
            raise self.fail("the whole context '.' cannot be printed or tested")
        self.root_fields.add(_snake(names[0]))
        return self.fields("go", names)  # one context dict: no Go name can clash with a Jinja name

    def field_ref(self, text: str) -> str:
        names = [n for n in text.split(".") if n]
        dot = self.dots[-1] if self.dots else ""
        if not dot:
            return self.root(names)
        return self.fields(dot, names)

    def var_ref(self, text: str) -> str:
        head, *names = text.split(".")
        if head == "$":
            return self.root(names)
        if head[1:] not in self.variables:
            raise self.fail(f"undefined variable {head}")
        return self.fields("v_" + head[1:], names)

    def operand(self) -> str:
        kind, text = self.take()
        if kind == "string":
            try:
                return _literal(json.loads(text))
            except json.JSONDecodeError as exc:
                raise self.fail(f"string escape in {text} not supported") from exc
        if kind == "raw":
            return _literal(text[1:-1])
        if kind == "number":
            return text
        if kind == "field":
            return self.field_ref(text)
        if kind == "var":
            return self.var_ref(text)
        if kind == "open":
            inner = self.command()
            if self.take()[0] != "close":
                raise self.fail("unbalanced parentheses")
            return inner
        if kind == "ident" and text in ("true", "false"):
            return text
        if kind == "ident" and text == "nil":
            return "none"
        if kind == "pipe":
            raise self.fail("pipelines ('|') are not supported")
        raise self.fail(f"unexpected {text!r}")

    def arguments(self) -> list[str]:
        args: list[str] = []
        while (token := self.peek()) is not None and token[0] not in ("close",):
            if token[0] == "pipe":
                raise self.fail("pipelines ('|') are not supported")
            args.append(self.operand())
        return args

    def command(self) -> str:
        """One Go command: a function call with arguments, or a single operand."""
        token = self.peek()
        if token is None:
            raise self.fail("empty expression")
        if token[0] == "ident" and token[1] not in ("true", "false", "nil"):
            self.pos += 1
            return self.call(token[1], self.arguments())
        value = self.operand()
        following = self.peek()
        if following is not None and following[0] == "pipe":
            raise self.fail("pipelines ('|') are not supported")
        if following is not None and following[0] not in ("close",):
            raise self.fail(f"unexpected {following[1]!r} after {value}")
        return value

    def call(self, name: str, args: list[str]) -> str:
        def arity(low: int, high: int | None = None) -> None:
            if len(args) < low or (high is not None and len(args) > high):
                raise self.fail(f"wrong number of arguments to {name}")

        if name in _COMPARE:
            arity(2, None if name == "eq" else 2)
            return "(" + " or ".join(f"{args[0]} {_COMPARE[name]} {other}" for other in args[1:]) + ")"
        if name in ("and", "or"):
            arity(1)
            return "(" + f" {name} ".join(args) + ")"
        if name == "not":
            arity(1, 1)
            return f"(not {args[0]})"
        if name == "len":
            arity(1, 1)
            return f"({args[0]}|length)"
        if name == "index":
            arity(1)
            return args[0] + "".join(f"[{a}]" for a in args[1:])
        if name == "slice":
            arity(1, 3)
            if len(args) == 1:
                return args[0]
            return f"{args[0]}[{args[1]}:{args[2] if len(args) == 3 else ''}]"
        if name == "json":
            arity(1, 1)
            return f"({args[0]}|go_json)"
        if name in _REFUSED or name in _KEYWORDS:
            raise self.fail(f"{name!r} is not allowed here")
        raise self.fail(f"function {name!r} is not supported")

    def expression(self) -> str:
        value = self.command()
        if (token := self.peek()) is not None:
            raise self.fail(f"unexpected {token[1]!r}")
        return value

    # -- actions -------------------------------------------------------------------------------

    def emit(self, jinja: str, kind: str, cuts: bool = False) -> None:
        self.pieces.append(_Piece(jinja, kind, cuts))

    def new_dot(self) -> str:
        self.counter += 1
        return f"dot{self.counter}"

    def declared(self) -> list[str]:
        """``$a, $b :=`` at the start of a range or assignment: returns the names, consumes them."""
        names: list[str] = []
        save = self.pos
        while (token := self.peek()) is not None and token[0] == "var" and "." not in token[1]:
            names.append(token[1][1:])
            self.pos += 1
            following = self.peek()
            if following is not None and following[0] == "comma":
                self.pos += 1
                continue
            if following is not None and following[0] == "declare":
                self.pos += 1
                return names
            if following is not None and following[0] == "assign":
                raise self.fail("assignment with '=' is not supported, only ':='")
            break
        self.pos = save
        return []

    def open_block(self, kind: str, head: str) -> None:
        self.blocks.append(kind)
        self.emit(head, "control")

    def translate_action(self, action: str) -> None:
        self.action = action
        self.tokens = []
        at = 0
        while at < len(action):
            match = _TOKEN.match(action, at)
            if match is None:
                raise self.fail(f"unrecognised text {action[at : at + 10]!r}")
            if match.lastgroup != "ws":
                self.tokens.append((match.lastgroup or "", match.group()))
            at = match.end()
        self.pos = 0
        if not self.tokens:
            raise self.fail("empty action")
        kind, word = self.tokens[0]
        if kind == "ident" and word in _REFUSED:
            raise self.fail(f"{word!r} is not supported")
        if kind == "ident" and word in _KEYWORDS:
            self.pos = 1
            self.keyword(word)
            return
        if names := self.declared():
            if len(names) != 1:
                raise self.fail("only one variable may be declared outside range")
            value = self.expression()
            self.variables.add(names[0])
            self.emit(f"{{% set v_{names[0]} = {value} %}}", "control")
            return
        value = self.expression()
        cuts = self.tokens == [("field", ".Response")] and not self.dots
        self.emit(f"{{{{ {value} }}}}", "output", cuts)

    def keyword(self, word: str) -> None:
        if word == "if":
            self.open_block("if", f"{{% if {self.expression()} %}}")
        elif word == "with":
            dot = self.new_dot()
            value = self.expression()
            self.blocks.append("with")
            self.emit(f"{{% set {dot} = {value} %}}{{% if {dot} %}}", "control")
            self.dots.append(dot)
        elif word == "range":
            self.range_block()
        elif word == "else":
            self.else_branch()
        elif word == "end":
            self.end_block()
        else:  # break / continue
            if self.pos != len(self.tokens):
                raise self.fail(f"{word} takes no arguments")
            if "range" not in self.blocks:
                raise self.fail(f"{word} outside range")
            self.emit(f"{{% {word} %}}", "control")

    def range_block(self) -> None:
        names = self.declared()
        if len(names) > 2:
            raise self.fail("range declares at most two variables")
        value = self.expression()
        dot = self.new_dot()
        if len(names) == 2:
            head = f"{{% for v_{names[0]}, {dot} in {value}|go_items %}}{{% set v_{names[1]} = {dot} %}}"
        else:
            head = f"{{% for {dot} in {value}|go_values %}}"
            if names:
                head += f"{{% set v_{names[0]} = {dot} %}}"
        self.variables.update(names)
        self.open_block("range", head)
        self.dots.append(dot)

    def else_branch(self) -> None:
        if not self.blocks:
            raise self.fail("else without if or range")
        if self.pos == len(self.tokens):
            if self.blocks[-1] in ("with", "range"):  # Go's else branch sees the outer dot
                self.dots[-1] = self.dots[-2] if len(self.dots) > 1 else ""
            self.emit("{% else %}", "control")
            return
        kind, word = self.take()
        if kind != "ident" or word != "if" or self.blocks[-1] != "if":
            raise self.fail(f"'else {word}' is not supported")
        self.emit(f"{{% elif {self.expression()} %}}", "control")

    def end_block(self) -> None:
        if self.pos != len(self.tokens):
            raise self.fail("end takes no arguments")
        if not self.blocks:
            raise self.fail("end without an open block")
        kind = self.blocks.pop()
        if kind in ("range", "with"):
            self.dots.pop()
        self.emit("{% endfor %}" if kind == "range" else "{% endif %}", "control")

    def text(self, text: str) -> None:
        if not text:
            return
        if any(d in text for d in ("{{", "{%", "{#")) or text.endswith("{"):
            self.emit(f"{{{{ {_literal(text)} }}}}", "text")
        else:
            self.emit(text, "text")


def _split(source: str) -> list[tuple[str, str]]:
    """Split into ("text", …) and ("action", …) parts, applying ``{{-`` / ``-}}`` trimming."""
    parts: list[tuple[str, str]] = []
    pos = 0
    while True:
        start = source.find("{{", pos)
        if start < 0:
            parts.append(("text", source[pos:]))
            return parts
        text = source[pos:start]
        inner = start + 2
        if source.startswith("- ", inner) or source.startswith("-\t", inner) or source.startswith("-\n", inner):
            text = text.rstrip()
            inner += 2
        parts.append(("text", text))
        end = _action_end(source, inner)
        body = source[inner:end]
        pos = end + 2
        if body.endswith((" -", "\t-", "\n-")):
            body = body[:-2]
            rest = source[pos:]
            pos += len(rest) - len(rest.lstrip())
        parts.append(("action", body.strip()))


def _action_end(source: str, pos: int) -> int:
    """Index of the ``}}`` closing the action starting at ``pos``, skipping quoted strings."""
    quote = ""
    i = pos
    while i < len(source):
        ch = source[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in '"`':
            quote = ch
        elif source.startswith("}}", i):
            return i
        i += 1
    raise InvalidRequest(f"unclosed Go template action at character {pos - 2}")


def translate_go_template(source: str) -> GoTranslation:
    """Translate an Ollama Go template into Jinja, or raise :class:`InvalidRequest` naming why not."""
    translator = _Translator()
    for kind, body in _split(source):
        if kind == "text":
            translator.text(body)
        elif body.startswith("/*"):
            if not body.endswith("*/"):
                raise InvalidRequest(f"unclosed Go template comment {{{{{body[:20]}")
        else:
            translator.translate_action(body)
    if translator.blocks:
        raise InvalidRequest(f"unclosed Go template block {{{{ {translator.blocks[-1]} }}}} (missing {{{{ end }}}})")
    full = "".join(p.jinja for p in translator.pieces)
    cut_pieces: list[str] = []
    cut = False
    for piece in translator.pieces:
        if not cut or piece.kind == "control":
            cut_pieces.append(piece.jinja)
        cut = cut or piece.cuts
    return GoTranslation(full, "".join(cut_pieces), frozenset(translator.root_fields))
