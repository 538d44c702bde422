"""The web catalog at ``/ui/``: server-rendered pages over the same domain services as the API.

Pages: catalog (search, filters, sorting; a datasets section below the models), model page, datasets
and a dataset's page, compare, playground (streams from the Ollama chat handler, or from generate for a
base model), pull (from another zoo or an OCI registry, streamed from the Ollama pull handler), transparency
log, reviewer queue, login. Templates and assets ship in the package (``web/templates``, ``web/static``);
nothing is fetched from another site.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from openzoo import __version__
from openzoo.api import session
from openzoo.api.deps import read_body, services_of
from openzoo.api.errors import error_response
from openzoo.errors import Forbidden, OpenzooError
from openzoo.facts import licenses
from openzoo.facts.licenses import LicenseFacts
from openzoo.models import ModelSpec
from openzoo.services import Services
from openzoo.show import ModelInfo, show_model
from openzoo.web import catalog as cat
from openzoo.web import datasets as dataset_pages
from openzoo.web import facts, trust

web_router = APIRouter(prefix="/ui", include_in_schema=False)

_env = Environment(loader=PackageLoader("openzoo.web", "templates"), autoescape=select_autoescape(default=True),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_env.globals.update(human_size=cat.human_size, version=__version__, size_labels=cat.SIZE_LABELS)
_env.filters["datetime"] = cat.format_timestamp
_env.filters["sentence"] = cat.sentence

PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "frame-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'; object-src 'none'")
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; "
              "base-uri 'none'; form-action 'none'")
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".svg": "image/svg+xml", ".ico": "image/x-icon", ".png": "image/png"}
_STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*\.(css|js|svg|ico|png)$")
MAX_COMPARE = 3


def render(request: Request, template: str, *, status: int = 200, page: str = "", **context: Any) -> HTMLResponse:
    """Render a page with the shared context (CSRF token, login state) and the UI's security headers."""
    services = services_of(request)
    token = session.cookie(request.headers.get("cookie", ""), session.CSRF_COOKIE)
    fresh = not token
    if fresh:
        token = session.new_token()
    html = _env.get_template(template).render(
        request_path=request.url.path, page=page, csrf_token=token, auth_enabled=bool(services.config.api_key),
        **context)
    response = HTMLResponse(html, status_code=status)
    _security_headers(response, PAGE_CSP)
    if fresh:
        response.headers.append("set-cookie", session.set_cookie_header(session.CSRF_COOKIE, token))
    return response


def _security_headers(response: Response, csp: str) -> None:
    response.headers["content-security-policy"] = csp
    response.headers["x-content-type-options"] = "nosniff"
    response.headers["referrer-policy"] = "same-origin"
    response.headers["cache-control"] = "no-store"


def _error_page(request: Request, exc: OpenzooError) -> HTMLResponse:
    return render(request, "error.html", status=exc.http_status, page="", title="Error", message=exc.message,
                  hint=exc.hint or "")


def _csrf_ok(request: Request, supplied: str) -> bool:
    """A state-changing request is accepted only from this server's own pages (see :mod:`.session`)."""
    cookie_value = session.cookie(request.headers.get("cookie", ""), session.CSRF_COOKIE)
    headers = {k.lower(): v for k, v in request.headers.items()}
    return session.same_origin(headers) and session.token_ok(cookie_value, supplied)


def _forbidden(request: Request) -> HTMLResponse:
    return render(request, "error.html", status=403, title="Request refused",
                  message="This form was not sent from this server's own page (missing or wrong CSRF token).",
                  hint="Reload the page and try again.")


# --- catalog -------------------------------------------------------------------------------------


def _row(services: Services, spec: ModelSpec, modified_at: float) -> cat.CatalogRow:
    try:
        facts_ = trust.license_facts(services, spec.name.display)
        seal, openness = trust.catalog_status(services, spec)
    except OpenzooError:  # one unreadable card or seal must not take the whole catalog down
        facts_, seal, openness = licenses.UNKNOWN, "none", "none"
    d = spec.details
    return cat.CatalogRow(name=spec.name.display, size=spec.size, family=d.family, parameter_size=d.parameter_size,
                          quantization=d.quantization_level, license_id=facts_.id, license_name=facts_.name,
                          license_kind=facts_.category, openness=openness, seal=seal, modified_at=modified_at,
                          digest=spec.digest)


def catalog_rows(services: Services) -> list[cat.CatalogRow]:
    """One row per stored model, through the same listing as ``/api/tags``."""
    rows = []
    for summary in services.models.list_models():
        try:
            spec = services.models.resolve(summary.name)
        except OpenzooError:
            continue
        rows.append(_row(services, spec, summary.modified_at))
    return rows


@web_router.get("")
def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@web_router.get("/", response_class=HTMLResponse)
def catalog_page(request: Request) -> HTMLResponse:
    services = services_of(request)
    filters = cat.parse_filters(dict(request.query_params))
    rows = catalog_rows(services)
    shown = cat.select(rows, filters)
    sort_links = {key: cat.sort_link(filters, key) for key in cat.SORT_KEYS}
    return render(request, "catalog.html", page="catalog", title="Catalog", rows=shown, total=len(rows),
                  filters=filters, sort_links=sort_links, openness_choices=cat.OPENNESS_CHOICES,
                  license_kinds=cat.LICENSE_KINDS, size_buckets=list(cat.SIZE_BUCKETS),
                  datasets=dataset_pages.dataset_rows(services))


# --- datasets ------------------------------------------------------------------------------------


@web_router.get("/datasets", response_class=HTMLResponse)
def datasets_page(request: Request) -> HTMLResponse:
    rows = dataset_pages.dataset_rows(services_of(request))
    return render(request, "datasets.html", page="datasets", title="Datasets", datasets=rows)


@web_router.get("/datasets/{name:path}", response_class=HTMLResponse)
def dataset_page(request: Request, name: str) -> HTMLResponse:
    try:
        data = dataset_pages.dataset_page_data(services_of(request), name)
    except OpenzooError as exc:
        return _error_page(request, exc)
    return render(request, "dataset.html", page="datasets", title=data.found.display, d=data)


# --- model page ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelPage:
    spec: ModelSpec
    license: LicenseFacts
    license_summary: str
    card: trust.CardView | None
    card_error: str
    trust: trust.ModelTrust
    audits: list[facts.AuditView]
    show: ModelInfo | None
    show_error: str
    quantizations: facts.QuantizationsView | None = None


def model_page_data(request: Request, name: str) -> ModelPage:
    """Everything the model page shows; the model is verified (files, seal, log) now."""
    services = services_of(request)
    spec = services.models.resolve(name)
    display = spec.name.display
    license_facts = trust.license_facts(services, display)
    model_trust = trust.certification_view(services, spec)
    card: trust.CardView | None = None
    card_error = ""
    try:
        card = trust.card(services, display)
    except OpenzooError as exc:
        card_error = exc.message
    show: ModelInfo | None = None
    show_error = ""
    try:
        show = show_model(services.models, display)
    except OpenzooError as exc:
        show_error = exc.message
    return ModelPage(spec, license_facts, licenses.describe(license_facts), card, card_error, model_trust,
                     facts.audits_of(services, display), show, show_error, facts.quantizations_of(services, display))


@web_router.get("/models/{name:path}", response_class=HTMLResponse)
def model_page(request: Request, name: str) -> HTMLResponse:
    try:
        data = model_page_data(request, name)
    except OpenzooError as exc:
        return _error_page(request, exc)
    return render(request, "model.html", page="catalog", title=data.spec.name.display, m=data)


@web_router.get("/audits/{digest}", response_class=HTMLResponse)
def audit_report(request: Request, digest: str, model: str = "") -> HTMLResponse:
    """One stored audit report's own self-contained HTML (plots included), with a strict policy."""
    services = services_of(request)
    try:
        html = facts.audit_html(services, model, digest)
    except OpenzooError as exc:
        return _error_page(request, exc)
    response = HTMLResponse(html)
    _security_headers(response, REPORT_CSP)
    return response


# --- compare -------------------------------------------------------------------------------------


@web_router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request) -> HTMLResponse:
    services = services_of(request)
    chosen = [m for m in dict.fromkeys(request.query_params.getlist("m")) if m][:MAX_COMPARE]
    columns = []
    problems = []
    for name in chosen:
        try:
            spec = services.models.resolve(name)
        except OpenzooError as exc:
            problems.append(exc.message)
            continue
        lic = trust.license_facts(services, spec.name.display)
        seal, openness = trust.catalog_status(services, spec)
        audits = facts.audits_of(services, spec.name.display)
        latest = next((a for a in reversed(audits) if not a.error), None)
        columns.append({"name": spec.name.display, "spec": spec, "license": lic, "seal": seal, "openness": openness,
                        "context": spec.config.get("context_length", ""),
                        "scores": {s.key: s for s in latest.scores} if latest else {}, "audited": latest is not None})
    criteria: dict[str, str] = {}
    for col in columns:
        for key, score in col["scores"].items():
            criteria.setdefault(key, score.title)
    names = [m.name for m in services.models.list_models()]
    return render(request, "compare.html", page="compare", title="Compare", columns=columns, chosen=chosen,
                  names=names, criteria=sorted(criteria.items()), problems=problems, max_compare=MAX_COMPARE)


# --- playground ----------------------------------------------------------------------------------


@web_router.get("/playground", response_class=HTMLResponse)
def playground_page(request: Request, model: str = "") -> HTMLResponse:
    services = services_of(request)
    names = [m.name for m in services.models.list_models()]
    selected = model if model in names else (names[0] if names else "")
    # Without an API key the page talks to the Ollama endpoints themselves; with one, the browser holds
    # the key only in an HttpOnly cookie, which the middleware accepts on /ui paths.
    prefix = "/ui/api" if services.config.api_key else "/api"
    # A base model is prompted as a completion (/api/generate, raw) unless the page's "chat" box is ticked.
    kinds = {name: _model_kind(services, name) for name in names}
    return render(request, "playground.html", page="playground", title="Playground", names=names,
                  selected=selected, endpoint=prefix + "/chat", generate_endpoint=prefix + "/generate",
                  kinds=kinds)


def _model_kind(services: Services, name: str) -> str:
    try:
        return "chat" if services.models.resolve(name).instruction_tuned else "base"
    except OpenzooError:  # a model whose manifest cannot be read is listed, and fails when used
        return "chat"


@web_router.post("/api/chat")
async def playground_chat(request: Request) -> Response:
    """The Ollama chat handler itself, reachable with the login cookie; needs the page's CSRF token."""
    from openzoo.api import ollama, ollama_wire

    if not _csrf_ok(request, request.headers.get(session.CSRF_HEADER, "")):
        return error_response(request, Forbidden("missing or wrong CSRF token"))
    return await ollama.chat(request, await read_body(request, ollama_wire.ChatBody))


@web_router.post("/api/generate")
async def playground_generate(request: Request) -> Response:
    """The Ollama generate handler (a base model's completions), like :func:`playground_chat`."""
    from openzoo.api import ollama, ollama_wire

    if not _csrf_ok(request, request.headers.get(session.CSRF_HEADER, "")):
        return Response('{"error":"missing or wrong CSRF token"}', status_code=403, media_type="application/json")
    return await ollama.generate(request, await read_body(request, ollama_wire.GenerateBody))


# --- pull ----------------------------------------------------------------------------------------


@web_router.get("/pull", response_class=HTMLResponse)
def pull_page(request: Request) -> HTMLResponse:
    return render(request, "pull.html", page="pull", title="Pull a model")


@web_router.post("/api/pull")
async def pull_from(request: Request) -> Response:
    """Ollama's pull handler itself (every reference :mod:`openzoo.transfers` knows), reachable with the
    login cookie; needs the page's CSRF token, as it writes to the store."""
    from openzoo.api import ollama, ollama_wire

    if not _csrf_ok(request, request.headers.get(session.CSRF_HEADER, "")):
        return error_response(request, Forbidden("missing or wrong CSRF token"))
    return await ollama.pull(request, await read_body(request, ollama_wire.ModelBody))


# --- log and queue -------------------------------------------------------------------------------


@web_router.get("/log", response_class=HTMLResponse)
def log_page(request: Request, verify: str = "", check: str = "") -> HTMLResponse:
    services = services_of(request)
    whole = trust.verify_log(services) if check == "all" else None
    result: trust.InclusionView | None = None
    if verify.strip():
        try:
            index = int(verify)
        except ValueError:
            result = trust.InclusionView(-1, False, f"{verify!r} is not an entry number")
        else:
            result = trust.verify_inclusion(services, index)
    return render(request, "log.html", page="log", title="Transparency log", log=trust.log_view(services),
                  result=result, whole=whole)


@web_router.get("/queue", response_class=HTMLResponse)
def queue_page(request: Request) -> HTMLResponse:
    services = services_of(request)
    return render(request, "queue.html", page="queue", title="Reviewer queue",
                  requests=trust.pending_requests(services))


# --- login ---------------------------------------------------------------------------------------


@web_router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/ui/") -> HTMLResponse:
    return render(request, "login.html", page="login", title="Log in", next=session.safe_next(next), error="")


@web_router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    import hmac

    form = session.parse_form(await request.body())
    if not _csrf_ok(request, form.get(session.CSRF_FIELD, "")):
        return _forbidden(request)
    key = services_of(request).config.api_key
    target = session.safe_next(form.get("next", "/ui/"))
    supplied = form.get("key", "")
    if not key:
        return RedirectResponse(target, status_code=303)
    if not supplied or not hmac.compare_digest(supplied.encode(), key.encode()):
        return render(request, "login.html", status=401, page="login", title="Log in", next=target,
                      error="That key is not this server's API key.")
    response = RedirectResponse(target, status_code=303)
    response.headers.append("set-cookie", session.set_cookie_header(session.KEY_COOKIE, supplied))
    return response


@web_router.post("/logout")
async def logout(request: Request) -> Response:
    form = session.parse_form(await request.body())
    if not _csrf_ok(request, form.get(session.CSRF_FIELD, "")):
        return _forbidden(request)
    response = RedirectResponse("/ui/login", status_code=303)
    response.headers.append("set-cookie", session.set_cookie_header(session.KEY_COOKIE, "", max_age=0))
    return response


# --- assets --------------------------------------------------------------------------------------


@web_router.get("/static/{name}")
def static_file(name: str) -> Response:
    """A file from ``web/static`` (flat names only), served by openzoo itself."""
    if not _STATIC_NAME.match(name):
        return Response(status_code=404)
    resource = resources.files("openzoo.web").joinpath("static").joinpath(name)
    if not resource.is_file():
        return Response(status_code=404)
    suffix = name[name.rfind("."):]
    return Response(resource.read_bytes(), media_type=STATIC_TYPES[suffix],
                    headers={"cache-control": "public, max-age=300", "x-content-type-options": "nosniff"})
