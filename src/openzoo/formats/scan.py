"""File safety scan for model files: pickle, PyTorch zip, safetensors and GGUF (with its chat template).

Why: loading a model must never run code. Pickle-based formats can import and call anything, so their
opcodes are walked with :func:`pickletools.genops` (never unpickled) and every import outside a small
allowlist of tensor-rebuild globals is *critical*: deny-lists are never complete, so we certify against
an allowlist and name the known-dangerous imports in the message. Binary formats without code
(safetensors, GGUF) are checked for the header bounds that malicious files use to crash readers, and a
GGUF chat template is checked for sandbox escapes.

A *critical* finding blocks certification (:attr:`ScanReport.blocked`).
"""

from __future__ import annotations

import io
import json
import math
import pickletools
import struct
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

from openzoo.errors import InvalidData, InvalidModelFile, InvalidRequest, UnsafeTemplate

__all__ = [
    "SEVERITIES",
    "Finding",
    "ScanReport",
    "pickle_globals",
    "scan_file",
    "scan_gguf",
    "scan_paths",
    "scan_pickle",
    "scan_safetensors",
    "scan_template",
    "scan_torch_zip",
]

# What a data file must not start with: executables, pickles, archives and model files.
EXECUTABLE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "an ELF executable"),
    (b"MZ\x90\x00", "a Windows executable"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"#!", "a script (shebang)"),
    (b"\x80\x02", "a Python pickle"),
    (b"\x80\x03", "a Python pickle"),
    (b"\x80\x04", "a Python pickle"),
    (b"\x80\x05", "a Python pickle"),
    (b"PK\x03\x04", "a zip archive"),
    (b"GGUF", "a GGUF model"),
)


Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")
SCANNER_VERSION = "openzoo-scan/1"

MAX_PICKLE_BYTES = 512 * 2**20  # a data.pkl holds structure, not weights
MAX_PICKLES_PER_FILE = 16  # legacy torch files are a few pickles followed by raw storage
MAX_SAFETENSORS_HEADER = 100 * 2**20  # the reference implementation's cap


@dataclass(frozen=True)
class Finding:
    """One observation about one file."""

    severity: Severity
    file: str
    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        """Dict form for reports and seals."""
        return {"severity": self.severity, "file": self.file, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class ScanReport:
    """All findings over a set of files."""

    files: tuple[str, ...]
    findings: tuple[Finding, ...]

    @property
    def blocked(self) -> bool:
        """True when any finding is critical: such a model cannot be certified."""
        return any(f.severity == "critical" for f in self.findings)

    def counts(self) -> dict[str, int]:
        """Number of findings per severity."""
        return {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}

    def summary(self) -> dict[str, Any]:
        """What a seal records: scanner, files, counts, blocked, and every finding above info."""
        counts = self.counts()
        return {
            "scanner": SCANNER_VERSION,
            "files": list(self.files),
            "counts": counts,
            "critical": counts["critical"],
            "blocked": self.blocked,
            "findings": [f.to_json() for f in self.findings if f.severity != "info"],
        }


# -- pickle -------------------------------------------------------------------------------------------

_SAFE_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("collections", "OrderedDict"),
        ("torch._utils", "_rebuild_tensor"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_tensor_v3"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch._utils", "_rebuild_parameter_with_state"),
        ("torch._utils", "_rebuild_qtensor"),
        ("torch._tensor", "_rebuild_from_type_v2"),
        ("torch", "Size"),
        ("torch", "device"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol 2 pickles bytes; str -> bytes only
    }
    | {
        ("torch", f"{t}Storage")
        for t in (
            "Float",
            "Half",
            "BFloat16",
            "Double",
            "Long",
            "Int",
            "Short",
            "Char",
            "Byte",
            "Bool",
            "ComplexFloat",
            "ComplexDouble",
            "Untyped",
        )
    }
    | {
        ("torch", t)
        for t in (
            "float32",
            "float16",
            "bfloat16",
            "float64",
            "int64",
            "int32",
            "int16",
            "int8",
            "uint8",
            "bool",
            "complex64",
            "complex128",
        )
    }
    | {("builtins", t) for t in ("set", "frozenset", "bytearray", "complex", "slice", "range")}
)
_DANGEROUS_MODULES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "subprocess",
        "sys",
        "socket",
        "shutil",
        "runpy",
        "pty",
        "pdb",
        "pickle",
        "_pickle",
        "ctypes",
        "pip",
        "webbrowser",
        "importlib",
        "code",
        "commands",
        "multiprocessing",
        "asyncio",
        "marshal",
        "requests",
        "urllib",
        "http",
        "httplib",
        "ftplib",
        "smtplib",
        "telnetlib",
        "signal",
        "threading",
        "_thread",
        "tempfile",
        "glob",
        "pathlib",
        "io",
        "shelve",
        "dill",
    }
)
_DANGEROUS_GLOBALS = frozenset(
    {
        ("builtins", n)
        for n in (
            "eval",
            "exec",
            "execfile",
            "compile",
            "open",
            "getattr",
            "setattr",
            "delattr",
            "__import__",
            "apply",
            "breakpoint",
            "input",
            "globals",
            "locals",
            "vars",
            "memoryview",
        )
    }
    | {
        ("functools", "partial"),
        ("functools", "reduce"),
        ("operator", "attrgetter"),
        ("operator", "itemgetter"),
        ("operator", "methodcaller"),
        ("types", "CodeType"),
        ("types", "FunctionType"),
        ("torch.serialization", "load"),
        ("torch", "load"),
        ("torch.storage", "_load_from_bytes"),
        ("numpy", "load"),
        ("numpy.testing._private.utils", "runstring"),
    }
)
_STRING_OPS = frozenset(
    {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"}
)
_MARK = object()


def _normalize(module: str, name: str) -> tuple[str, str]:
    return ("builtins" if module == "__builtin__" else module), name


def _classify(module: str, name: str) -> tuple[Severity, str] | None:
    """None for an allowlisted global, else (critical, why)."""
    module, name = _normalize(module, name)
    if (module, name) in _SAFE_GLOBALS:
        return None
    root = module.split(".", 1)[0]
    if root in _DANGEROUS_MODULES or (module, name) in _DANGEROUS_GLOBALS:
        return "critical", f"imports {module}.{name}, which can run code or touch the system"
    return "critical", f"imports {module}.{name}, which is not an allowlisted tensor-rebuild global"


def pickle_globals(stream: IO[bytes]) -> Iterator[tuple[str, str] | None]:
    """Yield the (module, name) of every import in one pickle, or None for an unresolvable one.

    Simulates the pickle stack with the opcode metadata from :mod:`pickletools` (strings and memo only),
    so STACK_GLOBAL's operands are found even through the memo. Raises ValueError on a malformed pickle.
    """
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    for op, arg, _pos in pickletools.genops(stream):
        name = op.name
        if name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            yield module, attr
        elif name == "STACK_GLOBAL":
            top = stack.pop() if stack else None
            below = stack.pop() if stack else None
            yield (below, top) if isinstance(below, str) and isinstance(top, str) else None
            stack.append(None)
            continue
        elif name in ("EXT1", "EXT2", "EXT4"):
            yield None
        if name == "MEMOIZE":
            memo[len(memo)] = stack[-1] if stack else None
            continue
        if name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(str(arg))] = stack[-1] if stack else None
            continue
        value = (
            memo.get(int(str(arg)))
            if name in ("GET", "BINGET", "LONG_BINGET")
            else (arg if name in _STRING_OPS else None)
        )
        for item in reversed(op.stack_before):
            if item is pickletools.stackslice:
                while stack and stack[-1] is not _MARK:
                    stack.pop()
            elif stack:
                stack.pop()
        for item in op.stack_after:
            stack.append(_MARK if item is pickletools.markobject else value)


def scan_pickle(stream: IO[bytes], label: str) -> list[Finding]:
    """Scan the consecutive pickles at the start of ``stream`` (as legacy torch files hold them)."""
    findings: list[Finding] = []
    imports: set[tuple[str, str]] = set()
    for number in range(MAX_PICKLES_PER_FILE):
        start = stream.tell()
        if not stream.read(1):
            break
        stream.seek(start)
        try:
            for item in pickle_globals(stream):
                if item is None:
                    findings.append(
                        Finding(
                            "critical",
                            label,
                            "pickle-unresolved-import",
                            "imports a global it builds at load time (cannot be checked)",
                        )
                    )
                    continue
                imports.add(_normalize(*item))
        except (ValueError, EOFError, struct.error, UnicodeDecodeError) as exc:
            if number == 0:
                findings.append(Finding("critical", label, "pickle-malformed", f"malformed pickle: {exc}"))
            break  # after the first pickle: raw tensor data follows
    for module, name in sorted(imports):
        verdict = _classify(module, name)
        if verdict is not None:
            findings.append(Finding(verdict[0], label, "pickle-import", verdict[1]))
    findings.append(
        Finding(
            "low",
            label,
            "pickle-format",
            f"pickle can run code on load; prefer safetensors or GGUF ({len(imports)} distinct imports found)",
        )
    )
    return findings


def scan_torch_zip(path: Path) -> list[Finding]:
    """Scan every ``.pkl`` inside a PyTorch zip archive (``archive/data.pkl`` and friends)."""
    findings: list[Finding] = []
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            for info in infos:
                member = PurePosixPath(info.filename)
                if member.is_absolute() or ".." in member.parts or "\\" in info.filename:
                    findings.append(Finding("high", path.name, "zip-path", f"unsafe member name {info.filename!r}"))
            pickles = [i for i in infos if i.filename.endswith(".pkl")]
            if not pickles:
                findings.append(
                    Finding("medium", path.name, "zip-no-pickle", "zip without a .pkl: not a PyTorch archive")
                )
            for info in pickles:
                label = f"{path.name}:{info.filename}"
                if info.file_size > MAX_PICKLE_BYTES:
                    findings.append(
                        Finding(
                            "critical",
                            label,
                            "pickle-too-large",
                            f"{info.file_size} bytes of pickle is implausible",
                        )
                    )
                    continue
                with archive.open(info) as member_stream:
                    data = member_stream.read(MAX_PICKLE_BYTES + 1)
                findings.extend(scan_pickle(io.BytesIO(data), label))
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        findings.append(Finding("critical", path.name, "zip-malformed", f"unreadable zip archive: {exc}"))
    return findings


# -- safetensors --------------------------------------------------------------------------------------

_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "F8_E8M0": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
    "C64": 8,
}


def scan_safetensors(path: Path) -> list[Finding]:
    """Check a safetensors header: length within the file, JSON object, known dtypes, sizes that match
    shapes, offsets in bounds, contiguous and non-overlapping."""
    name = path.name
    size = path.stat().st_size

    def bad(message: str, code: str = "safetensors-structure") -> list[Finding]:
        return [Finding("critical", name, code, message)]

    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return bad("truncated: no 8-byte header length")
        header_len = struct.unpack("<Q", head)[0]
        if header_len > MAX_SAFETENSORS_HEADER:
            return bad(f"header length {header_len} exceeds {MAX_SAFETENSORS_HEADER}")
        if 8 + header_len > size:
            return bad(f"header length {header_len} runs past the end of the file ({size} bytes)")
        raw = handle.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return bad(f"header is not UTF-8 JSON: {exc}")
    if not isinstance(header, dict):
        return bad("header is not a JSON object")
    findings: list[Finding] = []
    data_len = size - 8 - header_len
    spans: list[tuple[int, int, str]] = []
    for tensor, info in header.items():
        if tensor == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                findings.append(Finding("medium", name, "safetensors-metadata", "__metadata__ must map str to str"))
            continue
        problem = _tensor_problem(info)
        if problem:
            findings += bad(f"tensor {tensor!r}: {problem}")
            continue
        begin, end = info["data_offsets"]
        if end > data_len:
            findings += bad(
                f"tensor {tensor!r}: offsets [{begin}, {end}] out of bounds (data is {data_len} bytes)",
                "safetensors-bounds",
            )
            continue
        spans.append((begin, end, tensor))
    position = 0
    for begin, end, tensor in sorted(spans):
        if begin < position:
            findings += bad(f"tensor {tensor!r} overlaps the previous tensor", "safetensors-overlap")
        elif begin > position:
            findings += bad(f"gap of {begin - position} bytes before tensor {tensor!r}", "safetensors-gap")
        position = max(position, end)
    if spans and position < data_len and not findings:
        findings.append(Finding("medium", name, "safetensors-trailing", f"{data_len - position} trailing bytes"))
    return findings or [Finding("info", name, "safetensors-ok", f"{len(spans)} tensors, header valid")]


def _tensor_problem(info: Any) -> str | None:
    if not isinstance(info, dict):
        return "entry is not an object"
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in _DTYPE_BYTES:
        return f"unknown dtype {dtype!r}"
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        return "shape must be a list of non-negative integers"
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        return f"data_offsets {offsets!r} must be [begin, end] with 0 <= begin <= end"
    expected = math.prod(shape) * _DTYPE_BYTES[dtype]
    if offsets[1] - offsets[0] != expected:
        return f"holds {offsets[1] - offsets[0]} bytes but shape {shape} of {dtype} needs {expected}"
    return None


# -- GGUF and templates -------------------------------------------------------------------------------

GGUFValidator = Callable[[Path], Any]
TemplateChecker = Callable[[str], None]


def _default_template_checker() -> TemplateChecker | None:
    try:
        from openzoo.formats.template_safety import ensure_template_safe
    except ImportError:
        return None
    return ensure_template_safe


def scan_template(source: str, label: str, check: TemplateChecker | None = None) -> list[Finding]:
    """Check a Jinja chat template; :class:`UnsafeTemplate` from the checker is critical.

    The checker defaults to ``openzoo.formats.template_safety.ensure_template_safe`` (imported lazily).
    """
    check = check or _default_template_checker()
    if check is None:
        return [Finding("high", label, "template-unchecked", "no template checker available")]
    try:
        check(source)
    except UnsafeTemplate as exc:
        return [Finding("critical", label, "template-unsafe", str(exc))]
    except InvalidRequest as exc:
        return [Finding("high", label, "template-invalid", str(exc))]
    return [Finding("info", label, "template-ok", "chat template only renders messages")]


def scan_gguf(
    path: Path, *, validate: GGUFValidator | None = None, check_template: TemplateChecker | None = None
) -> list[Finding]:
    """Validate GGUF structure (``openzoo.formats.gguf.validate_gguf`` by default, imported lazily;
    InvalidModelFile is critical) and check the embedded chat template, if any."""
    if validate is None:
        try:
            from openzoo.formats.gguf import validate_gguf
        except ImportError:
            return [Finding("high", path.name, "gguf-unchecked", "no GGUF validator available")]
        validate = validate_gguf
    try:
        info = validate(path)
    except InvalidModelFile as exc:
        return [Finding("critical", path.name, "gguf-structure", str(exc))]
    findings = [Finding("info", path.name, "gguf-ok", "GGUF structure valid")]
    template = getattr(info, "chat_template", None)
    if isinstance(template, str) and template:
        findings += scan_template(template, f"{path.name}:tokenizer.chat_template", check_template)
    return findings


# -- dispatch -----------------------------------------------------------------------------------------

_PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".bin", ".pt", ".pth", ".ckpt", ".joblib"})
_CODE_FORMATS = frozenset({".h5", ".keras", ".pb", ".onnx", ".npy", ".npz"})


def scan_file(
    path: str | Path,
    *,
    validate_gguf: GGUFValidator | None = None,
    check_template: TemplateChecker | None = None,
) -> list[Finding]:
    """Scan one file, choosing the scanner by content (magic bytes) first and suffix second."""
    file = Path(path)
    with file.open("rb") as handle:
        magic = handle.read(8)
    suffix = file.suffix.lower()
    if magic[:4] == b"GGUF":
        return scan_gguf(file, validate=validate_gguf, check_template=check_template)
    if magic[:4] == b"PK\x03\x04":
        return scan_torch_zip(file)
    if suffix == ".safetensors":
        return scan_safetensors(file)
    if suffix in _PICKLE_SUFFIXES or magic[:1] == b"\x80":
        with file.open("rb") as handle:
            return scan_pickle(handle, file.name)
    if suffix in _CODE_FORMATS:
        return [
            Finding(
                "high",
                file.name,
                "format-unsupported",
                f"{suffix} files are not scanned; they can embed code (Keras Lambda, TF ops)",
            )
        ]
    return [Finding("info", file.name, "not-a-model", "not a model weight format; not scanned")]


_BINARY_TYPES = frozenset({"binary", "large_binary", "binary_view"})


def scan_data_file(path: Path, label: str, inspect: Callable[[], Sequence[tuple[str, str]]]) -> list[Finding]:
    """A dataset's data file: executable content (an executable, a pickle, an archive or a model where data
    should be) and a file that no longer parses as its format are critical; ``inspect`` parses every row
    and returns the columns, whose binary types are noted (bytes openzoo never deserializes)."""
    with path.open("rb") as handle:
        head = handle.read(8)
    for magic, what in EXECUTABLE_MAGIC:
        if head.startswith(magic):
            return [Finding("critical", label, "data-executable", f"the file is {what}, not data")]
    try:
        columns = inspect()
    except InvalidData as exc:
        return [Finding("critical", label, "data-parse", f"does not parse as data: {exc.message}")]
    findings = [Finding("info", label, "data-ok", f"every row parses; {len(columns)} columns")]
    findings += [Finding("low", label, "data-binary-column", f"column {name!r} holds raw bytes ({kind}); they are "
                         "stored as they are and never deserialized by openzoo")
                 for name, kind in columns if kind in _BINARY_TYPES]
    return findings


def scan_paths(paths: Iterable[str | Path], **kwargs: Any) -> ScanReport:
    """Scan several files into one report."""
    files, findings = [], []
    for path in paths:
        files.append(Path(path).name)
        findings.extend(scan_file(path, **kwargs))
    return ScanReport(tuple(files), tuple(findings))
