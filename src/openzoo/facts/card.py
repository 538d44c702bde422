"""Model cards: Hugging Face-compatible README.md (YAML front matter + markdown), pre-filled from GGUF.

Why HF-compatible: cards move between zoos and the Hub unchanged, and the front matter fields
(``license``, ``base_model``, ``datasets``, ``model-index``…) feed the license facts, the openness
evidence and the CycloneDX export. The card's digest is what a seal records, so :func:`render_card` is
deterministic and :func:`parse_card` ∘ :func:`render_card` is the identity on cards.

HTML rendering uses ``markdown-it-py`` (CommonMark, raw HTML disabled) and ``nh3`` (an allowlist HTML
sanitizer); both are imported lazily so parsing and digests need neither.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from openzoo.errors import InvalidRequest
from openzoo.facts.canonical import sha256_digest
from openzoo.facts.licenses import LicenseFacts, describe, from_hf, lookup, to_hf

__all__ = [
    "ModelCard",
    "card_from_metadata",
    "draft_body",
    "parse_card",
    "render_card",
    "render_html",
]

_LIST_FIELDS = ("base_model", "datasets", "language", "tags", "metrics")
_STR_FIELDS = (
    "license",
    "license_name",
    "license_link",
    "pipeline_tag",
    "library_name",
    "base_model_relation",
)
_FRONT = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)^---[ \t]*\r?\n?", re.S | re.M)
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)


@dataclass
class ModelCard:
    """Front matter (``metadata``, key order kept) and the markdown ``body``."""

    metadata: dict[str, Any] = field(default_factory=dict)
    body: str = ""

    def render(self) -> str:
        """The README.md text (see :func:`render_card`)."""
        return render_card(self)

    def digest(self) -> str:
        """``sha256:`` of the rendered card, as sealed."""
        return sha256_digest(self.render().encode("utf-8"))

    def license_facts(self) -> LicenseFacts:
        """Facts for the declared license (``license``, or ``license_name`` with ``license: other``)."""
        return from_hf(self.metadata.get("license"), self.metadata.get("license_name"))

    def sections(self) -> list[str]:
        """Markdown headings in order, for openness evidence like ``card#Evaluation results``."""
        return [m.group(1).strip() for m in _HEADING.finditer(self.body)]

    def html(self) -> str:
        """Sanitized HTML of the body."""
        return render_html(self.body)


def _validate(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Check the types of the HF fields we rely on; single strings become one-item lists."""
    out = dict(meta)
    for key in _STR_FIELDS:
        value = out.get(key)
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
            out[key] = value[0]  # dataset cards often write ``license: [cc-by-4.0]``
        if key in out and out[key] is not None and not isinstance(out[key], str):
            raise InvalidRequest(f"card field {key!r} must be a string")
    for key in _LIST_FIELDS:
        value = out.get(key)
        if isinstance(value, str):
            out[key] = [value]
        elif value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise InvalidRequest(f"card field {key!r} must be a string or a list of strings")
    index = out.get("model-index")
    if index is not None and not (isinstance(index, list) and all(isinstance(i, dict) for i in index)):
        raise InvalidRequest("card field 'model-index' must be a list of {name, results}")
    return out


def parse_card(text: str) -> ModelCard:
    """Parse README.md text; no front matter gives empty metadata. Bad YAML is an InvalidRequest."""
    match = _FRONT.match(text)
    if match is None:
        return ModelCard({}, text.removeprefix("\ufeff"))
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise InvalidRequest(f"card front matter is not valid YAML: {exc}") from exc
    if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
        raise InvalidRequest("card front matter must be a YAML mapping")
    body = text[match.end() :].replace("\r\n", "\n")
    return ModelCard(_validate(meta), body.removeprefix("\n"))


def render_card(card: ModelCard) -> str:
    """Deterministic README.md: ``---``, YAML front matter (key order kept), ``---``, blank line, body."""
    meta = _validate(card.metadata)
    body = card.body if card.body.endswith("\n") or not card.body else card.body + "\n"
    if not meta:
        return body
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)
    return f"---\n{front}---\n\n{body}"


def _gguf_list(meta: Mapping[str, Any], prefix: str) -> list[str]:
    """Names from GGUF ``general.base_model.N.*`` / ``general.dataset.N.*`` entries (HF repo id if known)."""
    out: list[str] = []
    count = meta.get(f"{prefix}.count")
    for i in range(count if isinstance(count, int) and 0 <= count <= 64 else 0):
        url = meta.get(f"{prefix}.{i}.repo_url")
        org, name = meta.get(f"{prefix}.{i}.organization"), meta.get(f"{prefix}.{i}.name")
        if isinstance(url, str) and url.startswith("https://huggingface.co/"):
            out.append(url.removeprefix("https://huggingface.co/").removeprefix("datasets/").strip("/"))
        elif isinstance(name, str):
            out.append(f"{org}/{name}" if isinstance(org, str) else name)
    return out


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return [v for v in value if isinstance(v, str)]
    return []


def card_from_metadata(
    gguf_metadata: Mapping[str, Any],
    license_id: str | None = None,
    *,
    name: str | None = None,
    base_model: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    language: Sequence[str] | None = None,
    pipeline_tag: str = "text-generation",
    tags: Sequence[str] = (),
) -> ModelCard:
    """A first card from GGUF key/values (``general.*``) and what the importer knows.

    ``license_id`` (SPDX / LicenseRef / HF id) wins over ``general.license``. The body has the sections
    the openness grade looks for, marked as not yet provided so nobody mistakes a stub for a claim.
    """
    m = gguf_metadata
    facts = lookup(license_id or _first(m.get("general.license")))
    title = name or _first(m.get("general.name")) or _first(m.get("general.basename")) or "Model"
    arch = _first(m.get("general.architecture"))
    meta: dict[str, Any] = {}
    hf_license, hf_name = to_hf(facts)
    meta["license"] = hf_license
    if hf_name:
        meta["license_name"] = hf_name
    link = _first(m.get("general.license.link")) or facts.url
    if link and hf_license == "other":
        meta["license_link"] = link
    bases = list(base_model) if base_model is not None else _gguf_list(m, "general.base_model")
    if bases:
        meta["base_model"] = bases
    data = list(datasets) if datasets is not None else _gguf_list(m, "general.dataset")
    if data:
        meta["datasets"] = data
    langs = list(language) if language is not None else _strings(m.get("general.languages"))
    if langs:
        meta["language"] = langs
    meta["pipeline_tag"] = pipeline_tag
    meta["library_name"] = "gguf"
    all_tags = list(dict.fromkeys([*_strings(m.get("general.tags")), *tags, "gguf", *([arch] if arch else [])]))
    meta["tags"] = all_tags
    details = [f"- Architecture: {arch or 'unknown'}"]
    for label, key in (
        ("Size", "general.size_label"),
        ("Quantization version", "general.quantization_version"),
        ("Author", "general.author"),
        ("Organization", "general.organization"),
        ("Source", "general.source.url"),
    ):
        value = m.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            details.append(f"- {label}: {value}")
    body = draft_body(title, _first(m.get("general.description")), details, describe(facts))
    return ModelCard(meta, body)


def draft_body(title: str, intro: str | None, details: Sequence[str], license_text: str) -> str:
    """The markdown body of a drafted card: title, intro, ``## Model details`` (a list), ``## License``,
    and the sections the openness grade looks for, marked "Not provided." so a stub is no claim."""
    return "\n".join(
        [
            f"# {title}",
            "",
            *([intro, ""] if intro else []),
            "## Model details",
            "",
            *details,
            "",
            "## License",
            "",
            license_text,
            "",
            "## Evaluation results",
            "",
            "Not provided.",
            "",
            "## Training data",
            "",
            "Not provided.",
            "",
        ]
    )


def _first(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


_ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "del",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
_ALLOWED_ATTRS = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "th": {"align"},
    "td": {"align"},
    "code": {"class"},
}


def render_html(markdown: str) -> str:
    """Markdown to sanitized HTML: CommonMark + tables with raw HTML disabled, then an nh3 allowlist
    (http/https/mailto links only, ``rel=noopener noreferrer nofollow``)."""
    import nh3
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRS,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
