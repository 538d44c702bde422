"""``openzoo run``, ``ps`` and ``stop``: talk to a running server when one answers, else run in-process.

Both paths produce the same :class:`Turn` stream (text pieces, then the final statistics), so the
terminal code below does not know which one it is using.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import click

from openzoo.cli.common import load_config, local_services
from openzoo.cli.output import human_size, table
from openzoo.client import Client
from openzoo.config import parse_duration
from openzoo.errors import InvalidRequest, OpenzooError
from openzoo.events import Done, Failure, TextChunk
from openzoo.formats.model_kind import base_model_note
from openzoo.inference import KeepAlive


@dataclass
class Session:
    model: str
    options: dict[str, Any] = field(default_factory=dict)
    format: str | None = None
    keep_alive: KeepAlive = "default"
    system: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    #: prompt as a completion, without a chat template (a base model, unless ``--chat``)
    raw: bool = False


@dataclass(frozen=True)
class ModelFacts:
    """What ``run`` needs to know about a model before the first prompt."""

    instruction_tuned: bool
    parameters: frozenset[str]  # the names of the model's own (Modelfile) parameters


#: ``--max-tokens`` of a one-shot answer when neither the option nor the model's parameters set one.
ONE_SHOT_MAX_TOKENS = 256


class Runner(Protocol):
    def describe(self, model: str) -> ModelFacts: ...

    def chat(self, session: Session) -> Iterator[str | Done]: ...

    def generate(self, session: Session, prompt: str) -> Iterator[str | Done]: ...

    def load(self, session: Session) -> None: ...


class RemoteRunner:
    """Runs turns on the server at OPENZOO_HOST through the Ollama API."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def _body(self, session: Session) -> dict[str, Any]:
        body: dict[str, Any] = {"model": session.model, "options": session.options, "stream": True}
        if session.format:
            body["format"] = session.format
        if session.keep_alive != "default":
            body["keep_alive"] = -1 if session.keep_alive is None else session.keep_alive
        return body

    def describe(self, model: str) -> ModelFacts:
        shown = self.client.post("/api/show", {"model": model})
        names = frozenset(line.split()[0] for line in str(shown.get("parameters") or "").splitlines() if line.strip())
        # an Ollama server has no "model_kind": its models are chat models unless they say otherwise
        return ModelFacts(shown.get("model_kind", "chat") != "base", names)

    def _turn(self, path: str, body: dict[str, Any]) -> Iterator[str | Done]:
        for obj in self.client.stream(path, body):
            if obj.get("done"):
                yield Done(obj.get("done_reason", "stop"), prompt_tokens=obj.get("prompt_eval_count", 0),
                           completion_tokens=obj.get("eval_count", 0), total_ns=obj.get("total_duration", 0),
                           load_ns=obj.get("load_duration", 0), prompt_eval_ns=obj.get("prompt_eval_duration", 0),
                           eval_ns=obj.get("eval_duration", 0))
            else:
                yield obj["message"]["content"] if "message" in obj else obj.get("response", "")

    def chat(self, session: Session) -> Iterator[str | Done]:
        return self._turn("/api/chat", {**self._body(session), "messages": session.messages})

    def generate(self, session: Session, prompt: str) -> Iterator[str | Done]:
        body = {**self._body(session), "prompt": prompt}
        if session.system:
            body["system"] = session.system
        if session.raw:
            body["raw"] = True
        return self._turn("/api/generate", body)

    def load(self, session: Session) -> None:
        self.client.post("/api/generate", {**self._body(session), "stream": False})


class LocalRunner:
    """Runs turns in this process, on the same domain services the server uses."""

    def __init__(self) -> None:
        self.services = local_services()

    def describe(self, model: str) -> ModelFacts:
        spec = self.services.models.resolve(model)
        return ModelFacts(spec.instruction_tuned, frozenset(spec.parameters))

    def _turn(self, generation: Any) -> Iterator[str | Done]:
        for event in generation:
            if isinstance(event, TextChunk):
                yield event.text
            elif isinstance(event, Done):
                yield event
            elif isinstance(event, Failure):
                raise event.error

    def chat(self, session: Session) -> Iterator[str | Done]:
        from openzoo.inference import ChatRequest

        return self._turn(self.services.inference.chat(ChatRequest(
            model=session.model, messages=session.messages, options=session.options, format=session.format,
            keep_alive=session.keep_alive)))

    def generate(self, session: Session, prompt: str) -> Iterator[str | Done]:
        from openzoo.inference import CompletionRequest

        return self._turn(self.services.inference.completion(CompletionRequest(
            model=session.model, prompt=prompt, system=session.system, options=session.options,
            format=session.format, keep_alive=session.keep_alive, raw=session.raw)))

    def load(self, session: Session) -> None:
        self.services.inference.load(session.model, session.keep_alive, session.options)


def runner() -> Runner:
    client = Client(load_config())
    if client.is_up():
        return RemoteRunner(client)
    client.close()
    return LocalRunner()


def _print_turn(turn: Iterator[str | Done], verbose: bool) -> str:
    parts: list[str] = []
    stats = Done("stop")
    for item in turn:
        if isinstance(item, Done):
            stats = item
        else:
            parts.append(item)
            sys.stdout.write(item)
            sys.stdout.flush()
    sys.stdout.write("\n")
    if verbose:
        _print_stats(stats)
    return "".join(parts)


def _rate(count: int, ns: int) -> str:
    return f"{count / (ns / 1e9):.2f} tokens/s" if ns else "n/a"


def _print_stats(s: Done) -> None:
    lines = [("total duration", f"{s.total_ns / 1e9:.3f}s"), ("load duration", f"{s.load_ns / 1e6:.1f}ms"),
             ("prompt eval count", f"{s.prompt_tokens} token(s)"),
             ("prompt eval duration", f"{s.prompt_eval_ns / 1e6:.1f}ms"),
             ("prompt eval rate", _rate(s.prompt_tokens, s.prompt_eval_ns)),
             ("eval count", f"{s.completion_tokens} token(s)"), ("eval duration", f"{s.eval_ns / 1e6:.1f}ms"),
             ("eval rate", _rate(s.completion_tokens, s.eval_ns))]
    for key, value in lines:
        click.echo(f"{key + ':':<22}{value}", err=True)


HELP = """Available commands:
  /set parameter NAME VALUE   set an option (temperature, top_k, num_predict, seed, ...)
  /set system TEXT            set the system prompt
  /set format json            answer in JSON   (/set noformat to undo)
  /clear                      forget the conversation
  /bye                        exit
Use \"\"\" to begin and end a multi-line message."""


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return {"true": True, "false": False}.get(text.lower(), text)


def _command(line: str, session: Session) -> bool:
    """Handle a slash command; return False to exit."""
    words = line.split(maxsplit=3)
    if words[0] in {"/bye", "/exit"}:
        return False
    if words[0] in {"/?", "/help"}:
        click.echo(HELP)
    elif words[0] == "/clear":
        session.messages.clear()
        click.echo("Cleared session context")
    elif words[:2] == ["/set", "parameter"] and len(words) == 4:
        value = _parse_value(words[3])
        session.options[words[2]] = [str(value)] if words[2] == "stop" else value
        click.echo(f"Set parameter '{words[2]}' to '{words[3]}'")
    elif words[:2] == ["/set", "system"] and len(words) >= 3 and session.raw:
        click.echo("A base model continues text and takes no system prompt; run it with --chat to set one.")
    elif words[:2] == ["/set", "system"] and len(words) >= 3:
        session.system = line.split(maxsplit=2)[2]
        session.messages = [m for m in session.messages if m["role"] != "system"]
        session.messages.insert(0, {"role": "system", "content": session.system})
        click.echo("Set system message.")
    elif words[:2] == ["/set", "format"] and len(words) == 3:
        session.format = words[2]
        click.echo(f"Set format to '{words[2]}' mode.")
    elif words[:2] == ["/set", "noformat"]:
        session.format = None
        click.echo("Disabled format.")
    else:
        click.echo(f"Unknown command '{line}'. Type /? for help")
    return True


def _read_message() -> str | None:
    try:
        line = input(">>> ")
    except EOFError:
        return None
    if not line.startswith('"""'):
        return line
    lines = [line[3:]]
    while not lines[-1].endswith('"""'):
        try:
            lines.append(input("... "))
        except EOFError:
            break
    text = "\n".join(lines)
    return text[:-3] if text.endswith('"""') else text


def _interactive(run: Runner, session: Session, verbose: bool) -> None:
    while True:
        text = _read_message()
        if text is None:
            click.echo("")
            return
        if not text.strip():
            continue
        if text.startswith("/"):
            if not _command(text.strip(), session):
                return
            continue
        if session.raw:  # a base model continues each message on its own; there is no conversation
            _print_turn(run.generate(session, text), verbose)
            continue
        session.messages.append({"role": "user", "content": text})
        answer = _print_turn(run.chat(session), verbose)
        session.messages.append({"role": "assistant", "content": answer})


@click.command()
@click.argument("model")
@click.argument("prompt", nargs=-1)
@click.option("--format", "format_", type=str, help='Response format, e.g. "json".')
@click.option("--verbose", is_flag=True, help="Show timings and token rates.")
@click.option("--keepalive", type=str, help="How long to keep the model loaded (e.g. 5m, 0, -1).")
@click.option("--nowordwrap", is_flag=True, hidden=True)
@click.option("--system", type=str, help="System prompt.")
@click.option("--chat", "chat", is_flag=True, help="Use the chat template even for a base (completion) model.")
@click.option("--max-tokens", type=click.IntRange(min=-1), default=None,
              help=f"Longest answer in tokens (-1: no limit). One-shot default: the model's num_predict, "
                   f"else {ONE_SHOT_MAX_TOKENS}.")
def run(model: str, prompt: tuple[str, ...], format_: str | None, verbose: bool, keepalive: str | None,
        nowordwrap: bool, system: str | None, chat: bool, max_tokens: int | None) -> None:
    """Run a model: answer PROMPT, or chat interactively when no prompt is given.

    A base (completion) model continues PROMPT as it is (no chat template) unless --chat is given.
    """
    if format_ not in (None, "json"):
        raise InvalidRequest(f'invalid format "{format_}"', hint='use --format json')
    session = Session(model, format=format_, system=system,
                      keep_alive="default" if keepalive is None else parse_duration(keepalive))
    run_with = runner()
    facts = run_with.describe(model)
    if not facts.instruction_tuned and not chat:
        if system:
            raise InvalidRequest(f"{model} is a base model: it takes no system prompt as a completion",
                                 hint="add --chat to use a chat template with --system")
        session.raw = True
        click.echo(base_model_note(model), err=True)
    if max_tokens is not None:
        session.options["num_predict"] = max_tokens
    text = " ".join(prompt)
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        text = f"{text}\n{piped}".strip() if text else piped
    if text:
        if max_tokens is None and "num_predict" not in facts.parameters:
            session.options["num_predict"] = ONE_SHOT_MAX_TOKENS
        _print_turn(run_with.generate(session, text), verbose)
        return
    run_with.load(session)
    if system:
        session.messages.append({"role": "system", "content": system})
    _interactive(run_with, session, verbose)


@click.command()
def ps() -> None:
    """List models loaded in the running server (and its replicas, under ``serve --replicas``)."""
    client = Client(load_config())
    headers = ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    if not client.is_up():
        click.echo(table([], headers))
        return
    models = client.get("/api/ps")["models"]
    replicated = any("replicas" in m for m in models)
    rows = []
    for m in models:
        rows.append([m["name"], m["digest"][:12], human_size(m["size"]), "100% CPU",
                     str(m.get("context_length", "")), m["expires_at"],
                     *([str(m.get("replicas", 0))] if replicated else [])])
    click.echo(table(rows, [*headers, *(["REPLICAS"] if replicated else [])]))
    if replicated or not models:
        _replicas(client)


def _replicas(client: Client) -> None:
    """The replica table, when the server runs Ray Serve replicas (an Ollama server has no such route)."""
    try:
        found = client.get("/zoo/replicas")
    except OpenzooError:  # not an openzoo server, or an older one
        return
    if found.get("mode") != "replicas":
        return
    rows = [[r["id"], str(r["pid"]), r["node"], str(r["requests"]), str(r["in_flight"]),
             ", ".join(r["models"]) or "-"] for r in found["replicas"]]
    click.echo("")
    click.echo(table(rows, ["REPLICA", "PID", "NODE", "REQUESTS", "IN FLIGHT", "MODELS"]))


@click.command()
@click.argument("model")
def stop(model: str) -> None:
    """Unload a model from the running server."""
    client = Client(load_config())
    if not client.is_up():
        from openzoo.errors import ServerBusy

        raise ServerBusy("no openzoo server is running", hint="start one with 'openzoo serve'")
    client.post("/api/generate", {"model": model, "keep_alive": 0, "stream": False})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not any(m["name"] == model for m in client.get("/api/ps")["models"]):
            break
        time.sleep(0.1)
