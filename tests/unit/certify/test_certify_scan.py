"""Safety scan with crafted malicious files of each kind (bytes are crafted, never unpickled)."""

from __future__ import annotations

import collections
import json
import pickle
import struct
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from openzoo.errors import InvalidModelFile, UnsafeTemplate
from openzoo.formats.scan import ScanReport, scan_file, scan_gguf, scan_paths, scan_template


def sbu(text: str) -> bytes:
    """SHORT_BINUNICODE."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


# protocol 0: GLOBAL os.system, called with one string argument
OS_SYSTEM_P0 = b"cos\nsystem\n(S'echo pwned'\ntR."
# protocol 4: STACK_GLOBAL posix.system with memoized strings
POSIX_P4 = b"\x80\x04" + sbu("posix") + b"\x94" + sbu("system") + b"\x94\x93\x94" + sbu("id") + b"\x85R."
# the module string is fetched back from the memo before STACK_GLOBAL
MEMO_EVAL = b"\x80\x04" + sbu("builtins") + b"\x94" + b"0" + b"h\x00" + sbu("eval") + b"\x93" + sbu("1+1") + b"\x85R."
# STACK_GLOBAL whose operands come from a call result: cannot be resolved
UNRESOLVED = b"\x80\x04" + sbu("collections") + sbu("OrderedDict") + b"\x93)R" + sbu("x") + b"\x93."
TORCH_OK = (
    b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nq\x00(ctorch\nFloatStorage\nq\x01tRccollections\nOrderedDict\n)R."
)


def findings(path: Path, **kw: Any) -> list[tuple[str, str]]:
    return [(f.severity, f.code) for f in scan_file(path, **kw)]


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (OS_SYSTEM_P0, "os.system"),
        (POSIX_P4, "posix.system"),
        (MEMO_EVAL, "builtins.eval"),
        (b"c__builtin__\nexec\n(S'x'\ntR.", "builtins.exec"),
        (b"csubprocess\nPopen\n(S'x'\ntR.", "subprocess.Popen"),
        (b"cwebbrowser\nopen\n(S'x'\ntR.", "webbrowser.open"),
        (b"crunpy\n_run_code\n(S'x'\ntR.", "runpy._run_code"),
        (b"cmymodule\nthing\n(tR.", "not an allowlisted"),
    ],
)
def test_malicious_pickles_are_critical(tmp_path: Path, data: bytes, needle: str) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(data)
    report = scan_file(path)
    critical = [f for f in report if f.severity == "critical"]
    assert critical and needle in critical[0].message, report


def test_unresolvable_and_malformed(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(UNRESOLVED)
    assert ("critical", "pickle-unresolved-import") in findings(tmp_path / "a.bin")
    (tmp_path / "b.pt").write_bytes(b"\x80\x04\xff\xff garbage")
    assert ("critical", "pickle-malformed") in findings(tmp_path / "b.pt")


def test_benign_pickles(tmp_path: Path) -> None:
    (tmp_path / "od.pkl").write_bytes(pickle.dumps(collections.OrderedDict(a=1, b=[1, 2]), protocol=4))
    (tmp_path / "t.pt").write_bytes(TORCH_OK)
    for name in ("od.pkl", "t.pt"):
        result = findings(tmp_path / name)
        assert all(sev in ("info", "low") for sev, _ in result), result


def test_legacy_torch_file_with_trailing_data(tmp_path: Path) -> None:
    legacy = (
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
        + pickle.dumps(1001, protocol=2)
        + OS_SYSTEM_P0
        + b"\x00\xffraw tensor bytes"
    )
    (tmp_path / "pytorch_model.bin").write_bytes(legacy)
    assert ("critical", "pickle-import") in findings(tmp_path / "pytorch_model.bin")


def test_torch_zip_with_malicious_data_pkl(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", POSIX_P4)
        archive.writestr("archive/data/0", b"\x00" * 16)
        archive.writestr("archive/version", b"3\n")
    result = scan_file(path)
    assert any(f.severity == "critical" and f.file == "model.pt:archive/data.pkl" for f in result)
    good = tmp_path / "good.pt"
    with zipfile.ZipFile(good, "w") as archive:
        archive.writestr("archive/data.pkl", TORCH_OK)
        archive.writestr("../evil", b"x")
    assert {f.severity for f in scan_file(good)} == {"low", "high"}
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04 not really a zip")
    assert ("critical", "zip-malformed") in findings(tmp_path / "bad.pt")


def safetensors(header: dict[str, Any], data_len: int, header_len: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if header_len is None else header_len) + raw + b"\x00" * data_len


GOOD_HEADER = {
    "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
    "b": {"dtype": "BF16", "shape": [4], "data_offsets": [16, 24]},
    "__metadata__": {"format": "pt"},
}


@pytest.mark.parametrize(
    ("header", "data_len", "header_len", "code"),
    [
        (
            {
                "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
                "b": {"dtype": "F32", "shape": [1000], "data_offsets": [16, 4016]},
            },
            16,
            None,
            "safetensors-bounds",
        ),
        (
            {
                "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]},
            },
            16,
            None,
            "safetensors-overlap",
        ),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, 16, None, "safetensors-gap"),
        ({"a": {"dtype": "Q9", "shape": [2], "data_offsets": [0, 8]}}, 8, None, "safetensors-structure"),
        ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, 8, None, "safetensors-structure"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, 8, None, "safetensors-structure"),
        (GOOD_HEADER, 24, 2**40, "safetensors-structure"),
        (GOOD_HEADER, 24, 10_000, "safetensors-structure"),
    ],
)
def test_bad_safetensors(
    tmp_path: Path, header: dict[str, Any], data_len: int, header_len: int | None, code: str
) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors(header, data_len, header_len))
    assert ("critical", code) in findings(path)


def test_safetensors_good_and_odd(tmp_path: Path) -> None:
    path = tmp_path / "ok.safetensors"
    path.write_bytes(safetensors(GOOD_HEADER, 24))
    assert findings(path) == [("info", "safetensors-ok")]
    path.write_bytes(safetensors(GOOD_HEADER, 30))
    assert findings(path) == [("medium", "safetensors-trailing")]
    path.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00[1,2]")
    assert findings(path) == [("critical", "safetensors-structure")]
    path.write_bytes(b"\x01")
    assert findings(path) == [("critical", "safetensors-structure")]


def test_gguf_structure_and_template(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + b"\xff" * 40)
    assert ("critical", "gguf-structure") in findings(path)  # the real validator, imported lazily

    def broken(p: Path) -> Any:
        raise InvalidModelFile("tensor count exceeds file size")

    assert findings(path, validate_gguf=broken) == [("critical", "gguf-structure")]
    evil = SimpleNamespace(chat_template="{{ ''.__class__.__mro__[1].__subclasses__() }}")
    result = scan_gguf(path, validate=lambda p: evil)
    assert [(f.severity, f.code) for f in result] == [("info", "gguf-ok"), ("critical", "template-unsafe")]

    def strict(source: str) -> None:
        if "cycler" in source:
            raise UnsafeTemplate("uses cycler")

    assert scan_template("{{ cycler }}", "t", strict)[0].severity == "critical"
    assert scan_template("{{ messages }}", "t", strict)[0].severity == "info"
    fine = SimpleNamespace(chat_template="{% for m in messages %}{{ m['content'] }}{% endfor %}")
    assert [f.code for f in scan_gguf(path, validate=lambda p: fine)] == ["gguf-ok", "template-ok"]


def test_report_summary(tmp_path: Path) -> None:
    (tmp_path / "evil.pkl").write_bytes(OS_SYSTEM_P0)
    (tmp_path / "ok.safetensors").write_bytes(safetensors(GOOD_HEADER, 24))
    (tmp_path / "README.md").write_text("# hi")
    report = scan_paths(sorted(tmp_path.iterdir()))
    assert isinstance(report, ScanReport) and report.blocked
    summary = report.summary()
    assert summary["critical"] == 1 and summary["blocked"] is True
    assert summary["files"] == ["README.md", "evil.pkl", "ok.safetensors"]
    assert all(f["severity"] != "info" for f in summary["findings"])
    json.dumps(summary)
