"""License facts for model licenses, keyed by SPDX id (or ``LicenseRef-…`` where SPDX has none).

Why a table of facts instead of a license name: people need to know what they may do (commercial use?
use restrictions? open source?), and the openness grade needs to know whether a license counts as open
for the Model Openness Framework and for which content type (code, data, documentation). Facts follow
the shared certification reference (SPDX flags, the MOT's open and typed lists, the license texts).
Hugging Face card ids (``license:`` front matter) map onto the same entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

__all__ = [
    "LICENSES",
    "UNKNOWN",
    "LicenseFacts",
    "describe",
    "from_hf",
    "lookup",
    "to_hf",
]

Category = Literal["open-source", "open-content", "restricted", "unknown"]
ContentType = Literal["code", "data", "document"]
ALL_TYPES: frozenset[ContentType] = frozenset({"code", "data", "document"})


@dataclass(frozen=True)
class LicenseFacts:
    """What a license allows, in the terms certification needs."""

    id: str
    name: str
    hf_ids: tuple[str, ...]
    osi_approved: bool
    fsf_libre: bool
    commercial_use: str  # "yes", "no", or the limit in words
    use_restrictions: str | None  # None when there are none
    mof_open: bool  # counts as open for the MOF (OSI, FSF, open-data list or OpenMDW)
    mof_types: frozenset[ContentType]  # MOT "ContentType": where it is type-appropriate
    url: str = ""
    note: str = ""

    @property
    def open_source(self) -> bool:
        """OSI-approved with no use restrictions: the freedoms of the OSI definitions hold."""
        return self.osi_approved and self.use_restrictions is None

    @property
    def category(self) -> Category:
        """open-source, open-content (open but not a software license), restricted, or unknown."""
        if self.id == UNKNOWN_ID:
            return "unknown"
        if self.open_source:
            return "open-source"
        if self.mof_open and self.use_restrictions is None:
            return "open-content"
        return "restricted"

    def to_json(self) -> dict[str, Any]:
        """The facts as recorded in seals and shown by the API."""
        return {
            "id": self.id,
            "name": self.name,
            "category": self.category,
            "osi_approved": self.osi_approved,
            "fsf_libre": self.fsf_libre,
            "open_source": self.open_source,
            "commercial_use": self.commercial_use,
            "use_restrictions": self.use_restrictions,
            "mof_open": self.mof_open,
            "mof_types": sorted(self.mof_types),
            "summary": describe(self),
        }


UNKNOWN_ID = "LicenseRef-Unknown"
_CODE: frozenset[ContentType] = frozenset({"code"})
_DOC: frozenset[ContentType] = frozenset({"document"})
_CODE_DOC: frozenset[ContentType] = frozenset({"code", "document"})
_DATA_DOC: frozenset[ContentType] = frozenset({"data", "document"})
_NONE: frozenset[ContentType] = frozenset()
_RAIL = "behavioral use restrictions (RAIL Attachment A) that must flow down to every derivative and user"
_LLAMA_AUP = "Acceptable Use Policy; licensees with > 700M monthly active users need Meta's permission"


def _open(
    id: str,
    name: str,
    hf: Iterable[str],
    types: frozenset[ContentType],
    *,
    osi: bool = True,
    fsf: bool = True,
    commercial: str = "yes",
    url: str = "",
    note: str = "",
) -> LicenseFacts:
    return LicenseFacts(id, name, tuple(hf), osi, fsf, commercial, None, True, types, url, note)


def _restricted(
    id: str,
    name: str,
    hf: Iterable[str],
    restrictions: str,
    *,
    commercial: str = "yes",
    url: str = "",
    note: str = "",
) -> LicenseFacts:
    return LicenseFacts(id, name, tuple(hf), False, False, commercial, restrictions, False, _NONE, url, note)


_TABLE: tuple[LicenseFacts, ...] = (
    _open(
        "Apache-2.0",
        "Apache License 2.0",
        ["apache-2.0"],
        _CODE_DOC,
        url="https://www.apache.org/licenses/LICENSE-2.0",
    ),
    _open("MIT", "MIT License", ["mit"], _CODE, url="https://opensource.org/license/mit"),
    _open(
        "BSD-3-Clause",
        'BSD 3-Clause "New" or "Revised" License',
        ["bsd-3-clause"],
        _NONE,
        note="open but not in the MOF typed list, so the MOF warns",
    ),
    _open("BSD-2-Clause", 'BSD 2-Clause "Simplified" License', ["bsd-2-clause"], _NONE),
    _open("ISC", "ISC License", ["isc"], _CODE),
    _open("0BSD", "BSD Zero Clause License", ["0bsd"], _CODE),
    _open("UPL-1.0", "Universal Permissive License 1.0", ["upl-1.0"], _CODE),
    _open("MPL-2.0", "Mozilla Public License 2.0", ["mpl-2.0"], _NONE, commercial="yes, file-level copyleft"),
    _open("GPL-3.0-only", "GNU General Public License v3.0 only", ["gpl-3.0"], _NONE, commercial="yes, copyleft"),
    _open("GPL-3.0-or-later", "GNU General Public License v3.0 or later", [], _NONE, commercial="yes, copyleft"),
    _open(
        "LGPL-3.0-only",
        "GNU Lesser General Public License v3.0 only",
        ["lgpl-3.0"],
        _NONE,
        commercial="yes, weak copyleft",
    ),
    _open(
        "AGPL-3.0-only",
        "GNU Affero General Public License v3.0 only",
        ["agpl-3.0"],
        _NONE,
        commercial="yes, network copyleft",
    ),
    _open("CC0-1.0", "Creative Commons Zero v1.0 Universal", ["cc0-1.0"], _DATA_DOC, osi=False),
    _open("CC-BY-4.0", "Creative Commons Attribution 4.0", ["cc-by-4.0"], _DOC, osi=False),
    _open(
        "CC-BY-SA-4.0",
        "Creative Commons Attribution Share Alike 4.0",
        ["cc-by-sa-4.0"],
        _DOC,
        osi=False,
        commercial="yes, share-alike",
    ),
    _open(
        "CC-BY-SA-3.0",
        "Creative Commons Attribution Share Alike 3.0",
        ["cc-by-sa-3.0"],
        _DOC,
        osi=False,
        commercial="yes, share-alike",
    ),
    _open(
        "CDLA-Permissive-2.0",
        "Community Data License Agreement Permissive 2.0",
        ["cdla-permissive-2.0"],
        frozenset({"data"}),
        osi=False,
        fsf=False,
    ),
    _open(
        "CDLA-Permissive-1.0",
        "Community Data License Agreement Permissive 1.0",
        ["cdla-permissive-1.0"],
        frozenset({"data"}),
        osi=False,
        fsf=False,
    ),
    _open("ODC-By-1.0", "Open Data Commons Attribution License v1.0", ["odc-by"], _NONE, osi=False, fsf=False),
    _open(
        "OpenMDW-1.0",
        "Open Model, Data & Weights License 1.0",
        [],
        ALL_TYPES,
        osi=False,
        fsf=False,
        note="the MOF's own license; type-appropriate for every component",
    ),
    _restricted(
        "CC-BY-NC-4.0",
        "Creative Commons Attribution Non Commercial 4.0",
        ["cc-by-nc-4.0"],
        "non-commercial use only",
        commercial="no",
    ),
    _restricted(
        "CC-BY-NC-SA-4.0",
        "Creative Commons Attribution Non Commercial Share Alike 4.0",
        ["cc-by-nc-sa-4.0"],
        "non-commercial use only, share-alike",
        commercial="no",
    ),
    _restricted("LicenseRef-OpenRAIL", "Open RAIL License", ["openrail"], _RAIL),
    _restricted("LicenseRef-BigScience-OpenRAIL-M", "BigScience OpenRAIL-M License", ["bigscience-openrail-m"], _RAIL),
    _restricted(
        "LicenseRef-BigScience-BLOOM-RAIL-1.0",
        "BigScience BLOOM RAIL License v1.0",
        ["bigscience-bloom-rail-1.0"],
        _RAIL,
    ),
    _restricted("LicenseRef-CreativeML-OpenRAIL-M", "CreativeML OpenRAIL-M License", ["creativeml-openrail-m"], _RAIL),
    _restricted(
        "LicenseRef-Gemma",
        "Gemma Terms of Use",
        ["gemma"],
        "use is restricted by the Gemma Prohibited Use Policy, and Google may restrict use",
        url="https://ai.google.dev/gemma/terms",
    ),
    _restricted(
        "LicenseRef-Llama-2",
        "Llama 2 Community License",
        ["llama2"],
        _LLAMA_AUP + "; may not be used to improve other large language models",
        commercial="yes, below 700M monthly active users",
    ),
    _restricted(
        "LicenseRef-Llama-3",
        "Meta Llama 3 Community License",
        ["llama3"],
        _LLAMA_AUP + "; may not be used to improve other large language models; derivative names start with 'Llama 3'",
        commercial="yes, below 700M monthly active users",
    ),
    _restricted(
        "LicenseRef-Llama-3.1",
        "Llama 3.1 Community License",
        ["llama3.1"],
        _LLAMA_AUP + "; derivative model names start with 'Llama'",
        commercial="yes, below 700M monthly active users",
    ),
    _restricted(
        "LicenseRef-Llama-3.2",
        "Llama 3.2 Community License",
        ["llama3.2"],
        _LLAMA_AUP + "; derivative model names start with 'Llama'; multimodal models are not "
        "licensed to individuals or companies based in the EU",
        commercial="yes, below 700M monthly active users",
    ),
    _restricted(
        "LicenseRef-Llama-3.3",
        "Llama 3.3 Community License",
        ["llama3.3"],
        _LLAMA_AUP + "; derivative model names start with 'Llama'",
        commercial="yes, below 700M monthly active users",
    ),
    _restricted(
        "LicenseRef-Qwen",
        "Qwen License Agreement",
        ["qwen", "tongyi-qianwen"],
        "licensees with > 100M monthly active users need Alibaba Cloud's permission",
        commercial="yes, below 100M monthly active users",
        note="many Qwen2.5/Qwen3 repositories are Apache-2.0 instead; check the card",
    ),
    _restricted(
        "LicenseRef-Qwen-Research",
        "Qwen Research License Agreement",
        ["qwen-research"],
        "research and non-commercial use only",
        commercial="no",
    ),
    LicenseFacts(
        UNKNOWN_ID,
        "Unknown license",
        ("unknown", "other"),
        False,
        False,
        "unknown",
        "unknown terms: treat as all rights reserved",
        False,
        _NONE,
    ),
)

LICENSES: dict[str, LicenseFacts] = {f.id: f for f in _TABLE}
UNKNOWN = LICENSES[UNKNOWN_ID]
_BY_KEY: dict[str, LicenseFacts] = {}
for _facts in _TABLE:
    _BY_KEY.setdefault(_facts.id.lower(), _facts)
    _BY_KEY.setdefault(_facts.id.lower().removeprefix("licenseref-"), _facts)
    for _hf in _facts.hf_ids:
        _BY_KEY.setdefault(_hf, _facts)
_BY_KEY.update({"gpl-3.0": LICENSES["GPL-3.0-only"], "gpl-3.0+": LICENSES["GPL-3.0-or-later"]})


def lookup(license_id: str | None) -> LicenseFacts:
    """Facts for an SPDX id, a ``LicenseRef-…`` id or a Hugging Face id (case-insensitive).

    Anything not in the table yields :data:`UNKNOWN` carrying the given text in its name, so the person
    sees what was declared.
    """
    key = (license_id or "").strip().lower()
    if key in _BY_KEY:
        return _BY_KEY[key]
    if not key:
        return UNKNOWN
    return replace(UNKNOWN, name=(license_id or "").strip())


def from_hf(license: str | None, license_name: str | None = None) -> LicenseFacts:
    """Facts from card front matter: ``license`` and, for ``license: other``, ``license_name``."""
    if (license or "").strip().lower() == "other" and license_name:
        return lookup(license_name)
    return lookup(license)


_HF_OTHER = frozenset({"LicenseRef-Qwen", "LicenseRef-Qwen-Research", "GPL-3.0-or-later", "OpenMDW-1.0"})


def to_hf(facts: LicenseFacts) -> tuple[str, str | None]:
    """The card front matter pair ``(license, license_name)``: an HF id, or ``other`` plus a name."""
    if facts.id == UNKNOWN_ID:
        return "unknown", None
    if facts.hf_ids and facts.id not in _HF_OTHER:
        return facts.hf_ids[0], None
    return "other", facts.hf_ids[0] if facts.hf_ids else facts.id.lower().removeprefix("licenseref-")


def describe(license: str | LicenseFacts | None) -> str:
    """One plain sentence on what the license means for a person running the model.

    The Gemma terms come out as "restricted license (Gemma Terms of Use), not open source: use is
    restricted by the Gemma Prohibited Use Policy, and Google may restrict use; not OSI-approved…".
    """
    facts = license if isinstance(license, LicenseFacts) else lookup(license)
    if facts.category == "unknown":
        declared = "" if facts.name == UNKNOWN.name else f" ({facts.name})"
        return f"unknown license{declared}: {facts.use_restrictions}"
    commercial = (
        "commercial use allowed" if facts.commercial_use == "yes" else (f"commercial use: {facts.commercial_use}")
    )
    mof = (
        f"counts as open for the MOF ({', '.join(sorted(facts.mof_types)) or 'but is not a typed license'})"
        if facts.mof_open
        else "does not count as open for the MOF"
    )
    if facts.category == "open-source":
        return f"open source license ({facts.name}, OSI-approved): {commercial}, no use restrictions; {mof}"
    if facts.category == "open-content":
        return (
            f"open content license ({facts.name}), not an OSI software license: {commercial}, "
            f"no use restrictions; {mof}"
        )
    osi = "OSI-approved" if facts.osi_approved else "not OSI-approved"
    return f"restricted license ({facts.name}), not open source: {facts.use_restrictions}; {osi}; {commercial}; {mof}"
