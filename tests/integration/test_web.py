"""The web catalog in a real browser: Debian's Chromium driven by Playwright, against a real server.

The server runs on a copy of the session's model home where the default model is certified (reviewers
alice and bob, threshold 2), plus two tiny synthetic models: ``tiny`` (an Apache-2.0 GGUF with an open
certification request) and ``tampered`` (a GGUF whose blob has one byte flipped after import), and a
certified CSV dataset ``me/keeper:v1`` (CC-BY-4.0, drafted datasheet).
Screenshots of every page go to ``test-artifacts/web/``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from openzoo import config
from openzoo.audit.metrics import Metric
from openzoo.audit.report import Report
from openzoo.audit.suites.base import SuiteResult
from openzoo.models import DEFAULT_MODEL
from openzoo.services import Services
from support.certified import seal_with_quorum
from support.gguf_files import write_gguf
from support.server import Server, start_server, stop_server

CHROMIUM = Path("/usr/bin/chromium")
pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make test installs it)")
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
DATASET = "me/keeper:v1"
KEEPER_CSV = "text,label\n" + "".join(f"Keeper's log day {i}: the tapirs swam.,{i % 2}\n" for i in range(12))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _store_audit(services: Services, name: str) -> str:
    """A small hand-made audit report stored on ``name`` the way ``openzoo audit`` stores one."""
    from openzoo.audit.service import ANNOTATION_PREFIX
    from openzoo.store.manifests import AUDIT

    spec = services.models.resolve(name)
    report = Report(spec.name.display, spec.digest, {"name": "llama.cpp", "version": "test"}, 0, {
        "bias": SuiteResult("bias", {
            "crows.pct_stereotype": Metric(56.0, 52.0, 60.0, "bootstrap", 300),
            "crows.pct_stereotype.gender": Metric(58.0, 50.0, 66.0, "bootstrap", 40),
            "crows.pct_stereotype.age": Metric(51.0, 42.0, 60.0, "bootstrap", 40),
            "bbq.s_amb": Metric(0.04, 0.01, 0.07, "bootstrap", 200)}, [], "sha256:" + "1" * 64),
        "safety": SuiteResult("safety", {
            "under_refusal_rate": Metric(0.3, 0.2, 0.4, "wilson", 100),
            "over_refusal_rate": Metric(0.05, 0.02, 0.1, "wilson", 100)}, [], "sha256:" + "2" * 64),
    })
    layer = services.models.add_blob_layer(AUDIT, report.json_text().encode(), {
        ANNOTATION_PREFIX + "suites": "bias,safety", ANNOTATION_PREFIX + "seed": "0",
        ANNOTATION_PREFIX + "model-digest": spec.digest, ANNOTATION_PREFIX + "created": "2026-11-25T09:00:00Z"})
    services.models.update_layers(name, AUDIT, [layer])
    return layer.digest


def _import(services: Services, path: Path, name: str) -> str:
    for _ in services.models.import_gguf(path, name):
        pass
    spec = services.models.resolve(name)
    return str(spec.weights)


@pytest.fixture(scope="module")
def web_server(model_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server over a copy of the model home, with an open-licensed tiny model and a tampered one."""
    root = tmp_path_factory.mktemp("web")
    home = root / "home"
    shutil.copytree(model_home, home)
    services = Services(config.load({"OPENZOO_HOME": str(home)}))
    _import(services, write_gguf(root / "tiny.gguf"), "tiny")
    tensors = {"token_embd.weight": np.full((8, 64), 2, dtype=np.float16),
               "output_norm.weight": np.ones((64,), dtype=np.float32)}
    weights = Path(_import(services, write_gguf(root / "tampered.gguf", tensors=tensors), "tampered"))
    _store_audit(services, DEFAULT_MODEL)
    cert = services.certification
    seal_with_quorum(cert, DEFAULT_MODEL)
    cert.request("tiny")
    (root / "keeper.csv").write_text(KEEPER_CSV)
    for _ in services.datasets.import_files([root / "keeper.csv"], DATASET, license="CC-BY-4.0"):
        pass
    cert.request(DATASET)
    cert.approve(DATASET, "alice")
    assert cert.approve(DATASET, "bob")[1] is not None
    services.close()
    os.chmod(weights, 0o644)
    with weights.open("r+b") as f:  # one flipped byte in the tensor data, past the header
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 0xFF]))
    server = start_server(home, root / "server.log")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, web_server: Server) -> Iterator[Page]:
    context = browser.new_context(base_url=web_server.url, viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield pg
    context.close()
    assert not errors, f"browser errors: {errors}"


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_browser_is_redirected_to_the_catalog(page: Page) -> None:
    response = page.goto("/")
    assert response.url.endswith("/ui/")
    assert page.title() == "Catalog · openzoo"


def test_catalog_lists_models_and_filters_to_certified(page: Page) -> None:
    page.goto("/ui/")
    rows = page.locator("table.catalog tbody tr")
    expect(rows).to_have_count(3)
    gemma = page.locator('tr[data-model="gemma3:270m"]')
    expect(gemma).to_contain_text("Restricted")
    expect(gemma).to_contain_text("Q4_K_M")
    expect(page.locator('tr[data-model="tiny:latest"]')).to_contain_text("Open source")
    shot(page, "catalog")

    page.get_by_role("searchbox", name="Search").fill("gemma")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)

    page.goto("/ui/?sort=size&order=desc")
    expect(rows.first).to_have_attribute("data-model", "gemma3:270m")

    page.goto("/ui/")
    page.get_by_label("Certified only").check()
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**certified=1**")
    expect(rows).to_have_count(1)
    expect(gemma).to_contain_text("Certified")
    shot(page, "catalog-certified")

    page.goto("/ui/")
    page.get_by_label("License kind").select_option("open-source")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**license=open-source**")
    expect(rows).to_have_count(2)
    expect(page.locator('tr[data-model="tiny:latest"]')).to_contain_text("Pending")


def test_model_page_describes_the_gemma_license_as_restricted(page: Page) -> None:
    page.goto("/ui/")
    page.get_by_role("link", name="gemma3:270m", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("gemma3:270m")
    summary = page.locator("#license-summary")
    expect(summary).to_contain_text("restricted license (Gemma Terms of Use), not open source", ignore_case=True)
    verification = page.locator("#verification")
    expect(verification).to_contain_text("Verified")
    expect(verification).not_to_contain_text("Verification failed")
    expect(verification).to_contain_text("alice, bob")
    passed = set(verification.locator("li.check-row.pass strong").all_inner_texts())
    assert {"digests", "seal signature", "quorum", "log inclusion", "revocation"} <= passed
    expect(verification.locator("li.check-row.fail")).to_have_count(0)
    expect(page.locator("table.mof tbody tr")).to_have_count(17)
    expect(page.locator(".card-body h3").first).to_be_visible()
    audit = page.locator("article.audit")
    expect(audit).to_contain_text("Stereotype preference in minimal pairs")
    expect(audit).to_contain_text("bias, safety")
    shot(page, "model")
    audit.get_by_role("link", name="full report with plots").click()
    expect(page.locator("svg").first).to_be_visible()
    shot(page, "audit-report")


def test_tampered_blob_is_shown_as_failing_verification(page: Page) -> None:
    page.goto("/ui/models/tampered:latest")
    verification = page.locator("#verification")
    expect(verification).to_contain_text("Verification failed")
    expect(verification).to_contain_text("weights")
    expect(verification.locator("li.check-row.fail")).to_have_count(1)
    shot(page, "model-tampered")


def test_datasets_are_listed_with_datasheet_license_and_seal(page: Page) -> None:
    page.goto("/ui/")
    row = page.locator('#datasets tr[data-dataset="me/keeper:v1"]')
    expect(row).to_contain_text("Certified")
    expect(row).to_contain_text("CC-BY-4.0")
    expect(row.locator("td").first).to_have_text("12")
    row.get_by_role("link", name=DATASET).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(DATASET)
    verification = page.locator("#verification")
    expect(verification).to_contain_text("Verified")
    expect(verification).to_contain_text("alice, bob")
    expect(verification.locator("li.check-row.fail")).to_have_count(0)
    expect(page.locator("#dataset-rows")).to_have_text("12")
    expect(page.locator("#data-digest")).to_have_text("sha256:" + hashlib.sha256(KEEPER_CSV.encode()).hexdigest())
    expect(page.locator("#license-summary")).to_contain_text("open content license (Creative Commons Attribution 4.0)",
                                                            ignore_case=True)
    expect(page.locator("#datasheet-problems li")).to_have_count(6)
    expect(page.locator("#datasheet h3").first).to_contain_text("Datasheet: me/keeper:v1")
    shot(page, "dataset")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Datasets").click()
    expect(page.locator("table.datasets tbody tr")).to_have_count(1)
    expect(page.locator("#dataset-count")).to_have_text("1 dataset.")


def test_playground_streams_a_reply(page: Page) -> None:
    page.goto("/ui/playground?model=gemma3:270m")
    page.get_by_label("Max tokens").fill("8")
    page.get_by_label("Show token probabilities").check()
    # Count how often the reply text changes while it streams.
    page.evaluate("""() => {
        window.__updates = 0;
        window.__seenWhileStreaming = false;
        new MutationObserver(() => {
            const t = document.querySelector('.msg.assistant .text');
            if (t && t.textContent) {
                window.__updates += 1;
                if (t.parentNode.classList.contains('streaming')) window.__seenWhileStreaming = true;
            }
        }).observe(document.getElementById('transcript'), {subtree: true, childList: true, characterData: true});
    }""")
    page.get_by_label("Message").fill("The capital of France is")
    page.get_by_role("button", name="Send").click()
    status = page.locator("#status")
    expect(status).to_contain_text("Done", timeout=120_000)
    reply = page.locator(".msg.assistant .text")
    expect(reply).not_to_be_empty()
    assert page.evaluate("window.__updates") >= 1
    assert page.evaluate("window.__seenWhileStreaming"), "text should appear before the reply is finished"
    expect(page.locator("#probs .tok").first).to_be_visible()
    shot(page, "playground")


def test_playground_completes_for_a_base_model(page: Page) -> None:
    """Issue 18: the default (base) model is prompted as a completion with its own parameters: one note
    says so, the reply is bounded by the model's num_predict and repeats no line more than twice."""
    from openzoo.models import DEFAULT_MODEL_PARAMETERS

    page.goto("/ui/playground?model=gemma3:270m")
    note = page.locator("#kind-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("gemma3:270m is a base model")
    expect(page.get_by_label("Max tokens")).to_have_value("")  # the model's own num_predict applies
    page.get_by_label("Message").fill("The sky looks blue because")
    with page.expect_response("**/api/generate") as response:
        page.get_by_role("button", name="Send").click()
    assert response.value.ok
    status = page.locator("#status")
    expect(status).to_contain_text("Done", timeout=600_000)  # 128 tokens: seconds, minutes on a busy machine
    tokens = int(re.search(r"(\d+) tokens", status.inner_text()).group(1))  # type: ignore[union-attr]
    assert 0 < tokens <= DEFAULT_MODEL_PARAMETERS["num_predict"]
    lines = [line.strip() for line in page.locator(".msg.assistant .text").inner_text().splitlines() if line.strip()]
    assert max((lines.count(line) for line in lines), default=0) <= 2, lines
    page.get_by_label("Use chat template").check()
    expect(note).to_be_visible()  # still a base model; the next message goes to /api/chat
    shot(page, "playground-base")


def test_playground_stop_button_aborts(page: Page) -> None:
    page.goto("/ui/playground?model=gemma3:270m")
    page.get_by_label("Max tokens").fill("400")
    page.get_by_label("Message").fill("Write a long story about a fox.")
    page.get_by_role("button", name="Send").click()
    stop = page.get_by_role("button", name="Stop")
    expect(stop).to_be_enabled()
    stop.click()
    expect(page.locator("#status")).to_have_text(re.compile("Stopped|Done"), timeout=60_000)
    expect(page.get_by_role("button", name="Send")).to_be_enabled()


def test_pull_form_shows_progress_then_the_refusal(page: Page, web_server: Server) -> None:
    """The pull form streams the Ollama pull handler's progress; pulling this zoo's own unsealed ``tiny``
    back from its registry is refused (its blobs are stored already, so nothing changes)."""
    page.goto("/ui/pull")
    page.get_by_label("Pull from").fill(f"{web_server.host}/library/tiny:latest")
    page.get_by_role("button", name="Pull").click()
    expect(page.locator("#pull-status")).to_contain_text("Error: refused", timeout=60_000)
    log = page.locator("#pull-log")
    for line in ("pulling manifest", "verifying sha256 digest", "the model has no seal"):
        expect(log).to_contain_text(line)
    assert page.evaluate("document.getElementById('pull-progress').value") == \
        page.evaluate("document.getElementById('pull-progress').max") > 1
    shot(page, "pull")


def test_compare_two_models(page: Page) -> None:
    page.goto("/ui/")
    page.get_by_label("Compare gemma3:270m").check()
    page.get_by_label("Compare tiny:latest").check()
    page.get_by_role("button", name="Compare 2 selected").click()
    table = page.locator("table.compare")
    expect(table.locator("thead th")).to_have_count(2)
    expect(table).to_contain_text("Gemma Terms of Use")
    expect(table).to_contain_text("Apache License 2.0")
    expect(table.locator("tr", has_text="Under-refusal")).to_contain_text("0.3")
    shot(page, "compare")


def test_log_page_verifies_an_entry(page: Page) -> None:
    page.goto("/ui/log")
    expect(page.locator("#checkpoint")).to_contain_text("openzoo/")
    entries = page.locator("table tbody tr")
    expect(entries.filter(has_text="seal issued for gemma3:270m")).to_have_count(1)
    expect(entries.filter(has_text="approval of gemma3:270m by alice")).to_have_count(1)
    entries.filter(has_text="seal issued for gemma3:270m").get_by_role("link").click()
    result = page.locator("#inclusion-result")
    expect(result).to_contain_text("is included")
    shot(page, "log")
    page.get_by_role("button", name="Verify the whole log").click()
    expect(page.locator("#log-check")).to_contain_text("The log is intact")
    page.get_by_label("Entry number").fill("9999")
    page.get_by_role("button", name="Verify inclusion").click()
    expect(result).to_contain_text("Not verified")


def test_reviewer_queue_and_login_pages(page: Page) -> None:
    page.goto("/ui/queue")
    expect(page.get_by_role("heading", level=1)).to_have_text("Reviewer queue")
    requests = page.locator("article.request")
    expect(requests).to_have_count(1)
    expect(requests).to_contain_text("tiny:latest")
    expect(requests).to_contain_text("0 of 2 approvals")
    shot(page, "queue")
    page.goto("/ui/login")
    expect(page.locator("main")).to_contain_text("no login is needed")


def test_keyboard_reaches_the_catalog_links(page: Page) -> None:
    page.goto("/ui/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"
