"""Every ``OPENZOO_*`` setting, declared once with its default and description.

Settings are read from the environment once, at start-up (:func:`load`), and passed down as a
:class:`Config`; no other module reads ``os.environ``. Each ``OPENZOO_X`` also honours ``OLLAMA_X`` so
that people switching from Ollama keep their environment; the ``OPENZOO_*`` name wins.
``docs/configuration.md`` is generated from :data:`SETTINGS` (``openzoo serve --help`` lists them too).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from openzoo.catalog_url import POSTGRES_SCHEMES, SQLITE_PREFIX, redact_url
from openzoo.errors import InvalidRequest

DEFAULT_PORT = 11434


@dataclass(frozen=True, slots=True)
class Setting:
    """One environment variable: its name without prefix, default text, meaning and parser."""

    name: str
    default: str
    description: str
    field: str


SETTINGS: tuple[Setting, ...] = (
    Setting("HOME", "~/.openzoo", "Where the store (blobs, catalog, keys, log) lives.", "home"),
    Setting("CATALOG_URL", "",
            "Where the catalog (names, manifests' blob lists, certification log, audit jobs) lives: empty "
            "for the embedded SQLite file OPENZOO_HOME/catalog.sqlite, sqlite:///PATH, or "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE for one catalog shared by several servers "
            "(they must share OPENZOO_HOME too; see docs/deployment.md).", "catalog_url"),
    Setting("HOST", "127.0.0.1:11434",
            "Address to serve on and for the CLI to reach: [scheme://]host[:port].", "host"),
    Setting("KEEP_ALIVE", "5m",
            "How long a model stays loaded after its last request (Go duration or seconds; negative: "
            "forever; 0: unload at once).", "keep_alive"),
    Setting("MAX_LOADED_MODELS", "3", "Most models loaded at once; the least recently used goes first.",
            "max_loaded_models"),
    Setting("NUM_PARALLEL", "auto",
            "Requests decoded together per model (continuous batching slots). auto: from the model's KV cache "
            "per slot and the memory available at load, 1 to 8 (8 for the default model; see "
            "docs/architecture.md); a number sets it.", "num_parallel"),
    Setting("MAX_QUEUE", "512", "Requests waiting per model before new ones get 503.", "max_queue"),
    Setting("CONTEXT_LENGTH", "4096", "Default context length (num_ctx) per request.", "context_length"),
    Setting("NUM_THREADS", "0", "CPU threads for inference; 0 uses every core.", "num_threads"),
    Setting("GUESS_TOKENS", "1",
            "Spare rows of a decode step carry prompt-lookup guesses of the next tokens (the output is the "
            "same either way; 0 turns them off, e.g. to measure what they gain).", "guess_tokens"),
    Setting("BATCH_INVARIANT", "1",
            "A request's tokens and log-probabilities are the same alone or in any batch, bit for bit (the "
            "kernel choices of docs/performance.md). 0: llama-server's faster choices (prompts in 512-row "
            "micro-batches with the tiled K-quant product, lone rows, sliding-window caches at window size: "
            "less memory); output then depends on what else runs. Process-wide.", "batch_invariant"),
    Setting("PROMPT_CACHE_BYTES", "auto",
            "RAM per model for the KV states of finished sequences, restored when a new prompt shares their "
            "prefix (a chat's next turn, a shared system prompt) whichever slot it lands in; least recently "
            "used first out. auto: a quarter of the memory available at load, at most 8 GiB; 0 turns it off.",
            "prompt_cache_bytes"),
    Setting("API_KEY", "",
            "Bearer key every request must send. Required to bind a non-loopback address.", "api_key"),
    Setting("ORIGINS", "", "Extra CORS origins, comma-separated ('*' wildcards allowed).", "origins"),
    Setting("MAX_BODY_BYTES", "16777216",
            "Largest JSON request body in bytes (blob uploads are streamed and not limited by this).",
            "max_body_bytes"),
    Setting("DATASET_MAX_BYTES", "2147483648",
            "Largest dataset 'openzoo dataset import' accepts, in bytes over all its files; larger input is "
            "refused before anything is stored.", "dataset_max_bytes"),
    Setting("DEBUG", "0", "Show tracebacks in the CLI and verbose engine logs.", "debug"),
    Setting("NOPRUNE", "0", "Keep unused blobs when a model is removed.", "noprune"),
    Setting("MONITOR_PEERS", "",
            "Other zoos (base URLs, comma-separated) whose transparency logs `openzoo serve` monitors: their "
            "heads and the heads they gossip are checked against this zoo's copy of each log, and forks are "
            "proven (`/zoo/gossip/forks`). Pin each zoo's key first with `openzoo keys trust`.", "monitor_peers"),
    Setting("MONITOR_INTERVAL", "5m",
            "How often `openzoo serve` checks the monitored zoos (Go duration or seconds; 0 turns it off).",
            "monitor_interval"),
    Setting("OCI_CHUNK_BYTES", "16777216",
            "Bytes per PATCH of a chunked OCI blob upload (`openzoo push NAME oci://...`); a killed push resumes "
            "after the last whole chunk.", "oci_chunk_bytes"),
    Setting("OCI_RATE_LIMIT", "0",
            "Most bytes per second an OCI push or pull moves, paced chunk by chunk (0: no limit); for shared "
            "links, and for tests that interrupt a transfer.", "oci_rate_limit"),
    Setting("OCI_PLAIN_HTTP", "",
            "OCI registries reached over plain http, comma-separated host[:port] ('*': all); loopback hosts "
            "always are, every other one gets https.", "oci_plain_http"),
    Setting("OCI_TOKEN", "", "Bearer token sent to OCI registries (a registry access token).", "oci_token"),
    Setting("OCI_USERNAME", "",
            "User name for OCI registries that ask for basic auth or a bearer token (with OCI_PASSWORD).",
            "oci_username"),
    Setting("OCI_PASSWORD", "", "Password or access token for OPENZOO_OCI_USERNAME.", "oci_password"),
    Setting("REMOTE_API_KEY", "",
            "The API key of another zoo this one pulls from or pushes to (`HOST:PORT/ns/name:tag`); the "
            "other zoo's OPENZOO_API_KEY.", "remote_api_key"),
    Setting("KEY_PASSPHRASE", "",
            "Passphrase of encrypted reviewer keys (`openzoo certify approve`, `openzoo certify request`); the "
            "CLI asks for it when it is unset.", "key_passphrase"),
    Setting("ZOO_KEY_PASSPHRASE", "", "Passphrase of the zoo's own signing key, when it is encrypted.",
            "zoo_key_passphrase"),
    Setting("LLAMA_EXTRA_BUFTS", "0",
            "Let llama.cpp repack weights into its extra CPU buffer types at load (1: on; a benchmark switch).",
            "llama_extra_bufts"),
    Setting("WITNESS_INTERVAL", "1s",
            "How often `openzoo serve` looks for a new checkpoint of its log to have cosigned by the witnesses "
            "added with `openzoo witness ask` (Go duration or seconds; 0 turns it off).", "witness_interval"),
    Setting("WITNESS_TIMEOUT", "5s",
            "Longest wait for one witness's cosignature; a dead witness is logged and skipped, never blocks the "
            "log.", "witness_timeout"),
    Setting("FINETUNE_CACHE_BYTES", "4294967296",
            "Most bytes the cache of dequantized fine-tuning bases (OPENZOO_HOME/cache/finetune, about 1.1 GB "
            "for the default model) keeps; the least recently used go first, 0 keeps none. Not part of any "
            "model's size: `openzoo list --cache` shows it, `openzoo rm --cache` empties it.",
            "finetune_cache_bytes"),
    Setting("RESPONSES_KEEP", "1000",
            "Most OpenAI Responses API responses kept in the catalog for previous_response_id and GET "
            "/v1/responses/{id} (requests with store: false are never kept); the oldest go first.",
            "responses_keep"),
)

# Settings `openzoo config` shows as "(set)" instead of their value.
SECRETS = frozenset({"api_key", "oci_token", "oci_password", "remote_api_key", "key_passphrase",
                     "zoo_key_passphrase"})
# Settings whose value, when it is this one, means "auto": chosen per model at load (runtime/sizing.py).
AUTO_VALUES = {"num_parallel": 0, "prompt_cache_bytes": -1}


@dataclass(frozen=True, slots=True)
class Config:
    """The settings openzoo runs with, parsed and validated."""

    home: Path
    catalog_url: str = field(repr=False)  # may hold a password: never in a repr or a log line
    host: str
    port: int
    scheme: str
    keep_alive: float | None  # seconds; None = forever
    max_loaded_models: int
    num_parallel: int  # 0: auto (chosen per model at load, runtime/sizing.py)
    max_queue: int
    context_length: int
    num_threads: int
    guess_tokens: bool
    batch_invariant: bool
    api_key: str
    origins: tuple[str, ...]
    max_body_bytes: int
    dataset_max_bytes: int
    debug: bool
    noprune: bool
    monitor_peers: tuple[str, ...]
    monitor_interval: float  # seconds; 0 = no periodic monitoring
    oci_chunk_bytes: int = 16 << 20
    oci_rate_limit: int = 0
    oci_plain_http: tuple[str, ...] = ()
    oci_token: str = ""
    oci_username: str = ""
    oci_password: str = ""
    remote_api_key: str = ""
    key_passphrase: str = field(default="", repr=False)
    zoo_key_passphrase: str = field(default="", repr=False)
    llama_extra_bufts: bool = False
    witness_interval: float = 1.0  # seconds; 0 = the server does not ask witnesses by itself
    witness_timeout: float = 5.0
    finetune_cache_bytes: int = 4 << 30
    responses_keep: int = 1000
    prompt_cache_bytes: int = -1  # -1: auto (runtime/sizing.py); 0: off

    @property
    def catalog(self) -> str:
        """The catalog's URL, the SQLite file under ``home`` when none was set."""
        return self.catalog_url or f"{SQLITE_PREFIX}{self.home / 'catalog.sqlite'}"

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def replace(self, **changes: Any) -> Config:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Config(**values)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float | None:
    """Parse an Ollama keep-alive: a number of seconds or a Go duration; negative means forever (None).

    Raises :class:`InvalidRequest` for anything else, so a typo is never read as "forever".
    """
    if isinstance(value, bool):
        raise InvalidRequest(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        return None if value < 0 else float(value)
    if not isinstance(value, str):
        raise InvalidRequest(f"invalid duration {value!r}")
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return None if number < 0 else number
    negative = text.startswith("-")
    body = text.lstrip("+-")
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(body) or not body:
        raise InvalidRequest(f'invalid duration "{value}": use seconds or a duration like "5m" or "1h30m"')
    return None if negative else total


def parse_host(value: str) -> tuple[str, str, int]:
    """Parse ``[scheme://]host[:port]`` the way Ollama's clients do: no scheme means http and 11434."""
    text = value.strip() or "127.0.0.1"
    scheme = "http"
    default_port = DEFAULT_PORT
    if "://" in text:
        scheme, text = text.split("://", 1)
        default_port = 443 if scheme == "https" else 80
    text = text.rstrip("/")
    host, port = text, default_port
    if text.startswith("["):
        end = text.find("]")
        host = text[1:end]
        rest = text[end + 1:]
        if rest.startswith(":"):
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        try:
            port = int(port_text)
        except ValueError as exc:
            raise InvalidRequest(f'invalid host "{value}": the port must be a number') from exc
    return scheme, host or "127.0.0.1", port


def _raw(env: Mapping[str, str], setting: Setting) -> str:
    for prefix in ("OPENZOO_", "OLLAMA_"):
        value = env.get(prefix + setting.name)
        if value is not None and value != "":
            return value
    if setting.name == "HOME" and env.get("OLLAMA_MODELS") and not env.get("OPENZOO_HOME"):
        return env["OLLAMA_MODELS"]
    return setting.default


def _int(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise InvalidRequest(f"OPENZOO_{name} must be an integer, not {text!r}") from exc


def parse_catalog_url(text: str) -> str:
    """Check ``OPENZOO_CATALOG_URL``: empty (the default file), ``sqlite:///PATH`` or ``postgresql://...``."""
    url = text.strip()
    if url and not url.startswith((SQLITE_PREFIX, *POSTGRES_SCHEMES)):
        raise InvalidRequest(f"OPENZOO_CATALOG_URL {redact_url(url)!r} is neither sqlite:///PATH nor postgresql://...",
                             hint="leave it empty for the SQLite catalog under OPENZOO_HOME")
    if url.startswith(SQLITE_PREFIX):
        url = SQLITE_PREFIX + os.path.expanduser(url[len(SQLITE_PREFIX):])
    return url


def _bool(text: str) -> bool:
    return text.strip().lower() in {"1", "true", "yes", "on"}


def load(env: Mapping[str, str] | None = None) -> Config:
    """Read the configuration from the environment (``os.environ`` by default), once."""
    source = os.environ if env is None else env
    raw: dict[str, str] = {s.field: _raw(source, s) for s in SETTINGS}
    scheme, host, port = parse_host(raw["host"])
    return Config(
        home=Path(os.path.expanduser(raw["home"])),
        catalog_url=parse_catalog_url(raw["catalog_url"]),
        host=host,
        port=port,
        scheme=scheme,
        keep_alive=parse_duration(raw["keep_alive"]),
        max_loaded_models=max(1, _int("MAX_LOADED_MODELS", raw["max_loaded_models"]) or 3),
        num_parallel=_auto_int("NUM_PARALLEL", raw["num_parallel"], auto=0, low=1),
        max_queue=max(0, _int("MAX_QUEUE", raw["max_queue"])),
        context_length=max(64, _int("CONTEXT_LENGTH", raw["context_length"])),
        num_threads=max(0, _int("NUM_THREADS", raw["num_threads"])),
        guess_tokens=_bool(raw["guess_tokens"]),
        batch_invariant=_bool(raw["batch_invariant"]),
        api_key=raw["api_key"],
        origins=tuple(o.strip() for o in raw["origins"].split(",") if o.strip()),
        max_body_bytes=max(1024, _int("MAX_BODY_BYTES", raw["max_body_bytes"])),
        dataset_max_bytes=max(1, _int("DATASET_MAX_BYTES", raw["dataset_max_bytes"])),
        debug=_bool(raw["debug"]),
        noprune=_bool(raw["noprune"]),
        monitor_peers=_peers(raw["monitor_peers"]),
        monitor_interval=parse_duration(raw["monitor_interval"]) or 0.0,
        oci_chunk_bytes=min(1 << 30, max(1 << 16, _int("OCI_CHUNK_BYTES", raw["oci_chunk_bytes"]))),
        oci_rate_limit=max(0, _int("OCI_RATE_LIMIT", raw["oci_rate_limit"])),
        oci_plain_http=tuple(h.strip().lower() for h in raw["oci_plain_http"].split(",") if h.strip()),
        oci_token=raw["oci_token"],
        oci_username=raw["oci_username"],
        oci_password=raw["oci_password"],
        remote_api_key=raw["remote_api_key"],
        key_passphrase=raw["key_passphrase"],
        zoo_key_passphrase=raw["zoo_key_passphrase"],
        llama_extra_bufts=_bool(raw["llama_extra_bufts"]),
        witness_interval=parse_duration(raw["witness_interval"]) or 0.0,
        witness_timeout=max(0.1, parse_duration(raw["witness_timeout"]) or 5.0),
        finetune_cache_bytes=max(0, _int("FINETUNE_CACHE_BYTES", raw["finetune_cache_bytes"])),
        responses_keep=max(1, _int("RESPONSES_KEEP", raw["responses_keep"])),
        prompt_cache_bytes=_auto_int("PROMPT_CACHE_BYTES", raw["prompt_cache_bytes"], auto=-1, low=0),
    )


def _auto_int(name: str, text: str, *, auto: int, low: int) -> int:
    """A number of at least ``low``, or ``auto`` for the word auto."""
    if text.strip().lower() == "auto":
        return auto
    try:
        return max(low, int(text))
    except ValueError as exc:
        raise InvalidRequest(f"OPENZOO_{name} must be an integer or auto, not {text!r}") from exc


def debug_enabled(env: Mapping[str, str] | None = None) -> bool:
    """``OPENZOO_DEBUG`` alone, for code that must not fail on another bad setting (the CLI's error handler,
    the engine's log switch)."""
    source = os.environ if env is None else env
    return _bool(_raw(source, next(s for s in SETTINGS if s.field == "debug")))


def _peers(text: str) -> tuple[str, ...]:
    """Comma-separated zoo base URLs (``http://host:port`` or ``host:port``), without trailing slashes."""
    peers = tuple(p.strip().rstrip("/") for p in text.split(",") if p.strip())
    for peer in peers:
        if any(c.isspace() for c in peer) or peer.count("://") > 1:
            raise InvalidRequest(f"OPENZOO_MONITOR_PEERS: {peer!r} is not a zoo URL",
                                 hint="use base URLs like http://127.0.0.1:11434, comma-separated")
    return peers


def render_markdown() -> str:
    """The configuration reference, as written to ``docs/configuration.md``."""
    lines = [
        "# Configuration",
        "",
        "<!-- Generated from src/openzoo/config.py by `openzoo config --markdown`; do not edit. -->",
        "",
        "Every setting is an environment variable. `OLLAMA_<NAME>` is honoured too; `OPENZOO_<NAME>` wins.",
        "",
        "| Variable | Default | Meaning |",
        "|---|---|---|",
    ]
    for s in SETTINGS:
        lines.append(f"| `OPENZOO_{s.name}` | `{s.default or '(empty)'}` | {s.description} |")
    return "\n".join(lines) + "\n"
