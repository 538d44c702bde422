"""The one error tree of openzoo.

Every failure a person can cause or see is an :class:`OpenzooError` with a stable ``code`` (machines
match on it), an ``http_status`` and a ``hint`` naming the next step. Each surface maps these once:
``api/errors.py`` to the Ollama and OpenAI envelopes, ``cli/main.py`` to a one-line message. Nothing
else converts exceptions to text, so a message reads the same everywhere.

::

    OpenzooError (500 internal)
    ├── InvalidRequest (400 invalid_request)
    │   ├── InvalidName (400 invalid_name)
    │   ├── InvalidModelFile (400 invalid_model_file)
    │   ├── UnsafeTemplate (400 unsafe_template)
    │   ├── DigestMismatch (400 digest_mismatch)
    │   ├── NotSupported (400 not_supported)
    │   ├── UnknownLicense (400 unknown_license)
    │   └── InvalidData (400 invalid_data)
    │       ├── MalformedData (400 malformed_data)
    │       ├── DataTypeMismatch (400 data_type_mismatch)
    │       ├── UnsupportedDataFormat (400 unsupported_data_format)
    │       └── DataTooLarge (413 data_too_large)
    ├── Unauthorized (401 unauthorized)
    ├── Forbidden (403 forbidden)
    ├── NotFound (404 not_found)
    │   ├── ModelNotFound (404 model_not_found)
    │   ├── DatasetNotFound (404 dataset_not_found)
    │   └── BlobNotFound (404 blob_not_found)
    ├── Conflict (409 conflict)
    │   ├── ScanBlocked (409 conflict)
    │   └── StaleCheckpoint (409 witness_conflict)
    ├── PayloadTooLarge (413 payload_too_large)
    ├── ClientClosed (499 client_closed)
    ├── ServerBusy (503 server_busy)
    ├── EngineError (500 engine_error)
    ├── StoreCorrupt (500 store_corrupt)
    ├── CatalogError (500 catalog_error)
    │   └── CatalogUnavailable (503 catalog_unavailable)
    ├── TransferFailed (502 transfer_failed)
    ├── BadAnswer (502 bad_answer)
    └── VerificationFailed (422 verification_failed)
        └── UnknownLog (422 unknown_log)
"""

from __future__ import annotations


class OpenzooError(Exception):
    """Base of every error openzoo reports to a person or a client."""

    code: str = "internal"
    http_status: int = 500
    hint: str = "run with OPENZOO_DEBUG=1 for details and report it"

    def __init__(self, message: str, *, hint: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint
        self.param = param

    def __str__(self) -> str:
        return self.message


class InvalidRequest(OpenzooError):
    code = "invalid_request"
    http_status = 400
    hint = "check the request against the API reference"


class InvalidName(InvalidRequest):
    code = "invalid_name"
    hint = "use a name like 'namespace/model:tag'"


class InvalidModelFile(InvalidRequest):
    code = "invalid_model_file"
    hint = "check that the file is a complete, valid GGUF model"


class UnsafeTemplate(InvalidRequest):
    code = "unsafe_template"
    hint = "use a chat template that only renders messages"


class DigestMismatch(InvalidRequest):
    code = "digest_mismatch"
    hint = "upload the blob again; its content does not match the digest"


class NotSupported(InvalidRequest):
    code = "not_supported"
    hint = "choose a model with that capability"


class InvalidData(InvalidRequest):
    code = "invalid_data"
    hint = "fix the data file at the line named"


class MalformedData(InvalidData):
    """A data file does not parse as its format (bad JSON, ragged CSV, broken Parquet, not UTF-8)."""

    code = "malformed_data"


class DataTypeMismatch(InvalidData):
    """A row has the wrong shape or type: a JSONL line that is not an object, a column whose type changes."""

    code = "data_type_mismatch"
    hint = "give every row the same columns with one type each (null allowed)"


class UnsupportedDataFormat(InvalidData):
    code = "unsupported_data_format"
    hint = "import .jsonl, .csv, .parquet or .txt files, or name the format with --format"


class DataTooLarge(InvalidData):
    code = "data_too_large"
    http_status = 413
    hint = "split the data, or raise OPENZOO_DATASET_MAX_BYTES"


class UnknownLicense(InvalidRequest):
    code = "unknown_license"
    hint = "use an SPDX id such as CC-BY-4.0, CDLA-Permissive-2.0 or ODC-By-1.0, or LicenseRef-<name>"


class Unauthorized(OpenzooError):
    code = "unauthorized"
    http_status = 401
    hint = "send 'Authorization: Bearer <OPENZOO_API_KEY>'"


class Forbidden(OpenzooError):
    code = "forbidden"
    http_status = 403
    hint = "add the origin to OPENZOO_ORIGINS or use a local host name"


class NotFound(OpenzooError):
    code = "not_found"
    http_status = 404
    hint = "check the name"


class ModelNotFound(NotFound):
    code = "model_not_found"
    hint = "run 'openzoo list' to see local models, or 'openzoo pull NAME'"

    def __init__(self, name: str, *, hint: str | None = None) -> None:
        super().__init__(f'model "{name}" not found, try pulling it first', hint=hint)
        self.name = name


class DatasetNotFound(NotFound):
    code = "dataset_not_found"
    hint = "run 'openzoo dataset list' to see stored datasets, or 'openzoo dataset import PATH --name NAME'"

    def __init__(self, name: str, *, hint: str | None = None) -> None:
        super().__init__(f'dataset "{name}" not found', hint=hint)
        self.name = name


class BlobNotFound(NotFound):
    code = "blob_not_found"
    hint = "upload the blob first with POST /api/blobs/<digest>"


class Conflict(OpenzooError):
    code = "conflict"
    http_status = 409
    hint = "the resource is in a state that does not allow this"


class PayloadTooLarge(OpenzooError):
    code = "payload_too_large"
    http_status = 413
    hint = "send a smaller request body"


class ClientClosed(OpenzooError):
    code = "client_closed"
    http_status = 499
    hint = "the client went away"


class ServerBusy(OpenzooError):
    code = "server_busy"
    http_status = 503
    hint = "try again shortly, or raise OPENZOO_MAX_QUEUE"

    def __init__(self, message: str = "server busy, please try again.  maximum pending requests exceeded",
                 *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)


class EngineError(OpenzooError):
    code = "engine_error"
    http_status = 500
    hint = "the inference engine failed; run with OPENZOO_DEBUG=1 and check the server log"


class StoreCorrupt(OpenzooError):
    code = "store_corrupt"
    http_status = 500
    hint = "run 'openzoo verify --store' to find and report damaged files"


class CatalogError(OpenzooError):
    """The catalog database refused a statement (a constraint, the log's append-only rule, a bad URL)."""

    code = "catalog_error"
    http_status = 500
    hint = "run 'openzoo verify --store' to check the catalog"


class CatalogUnavailable(CatalogError):
    """The catalog database cannot be reached or stayed busy: nothing was written, try again."""

    code = "catalog_unavailable"
    http_status = 503
    hint = "check OPENZOO_CATALOG_URL and that the database is running, then try again"


class VerificationFailed(OpenzooError):
    code = "verification_failed"
    http_status = 422
    hint = "do not use this artifact; fetch it again from a trusted zoo"


class TransferFailed(OpenzooError):
    """The remote zoo or registry could not be reached or the transfer broke off (a new run resumes it)."""

    code = "transfer_failed"
    http_status = 502
    hint = "run the same command again: it resumes where it stopped"


class BadAnswer(OpenzooError):
    """The other zoo answered, but with something malformed or larger than a monitor reads: nothing of it
    is stored."""

    code = "bad_answer"
    http_status = 502
    hint = "the other zoo is misbehaving or is not an openzoo zoo; nothing it sent was stored"


class ScanBlocked(Conflict):
    """A critical safety-scan finding blocks certification."""


class UnknownLog(VerificationFailed):
    """A head of a log whose key this zoo has not pinned: it proves nothing, so it is not stored."""

    code = "unknown_log"
    hint = "pin that zoo's key first: 'openzoo keys trust NAME zoo.pub' (get it with 'openzoo keys export zoo')"


class StaleCheckpoint(Conflict):
    """409: the request's old size is not the size this witness last cosigned (``size``)."""

    code = "witness_conflict"
    hint = "send 'old <size>' with the size in the answer, and a consistency proof from it"

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size
