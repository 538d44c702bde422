"""``openzoo create NAME -f Modelfile --quantize TYPE``: the Modelfile's FROM names the model to quantize."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import click

from openzoo.cli.output import render_progress
from openzoo.events import Progress
from openzoo.facts.quantization import quality_lines
from openzoo.formats.modelfile import Modelfile
from openzoo.quantize.measure import DEFAULT_TOKENS
from openzoo.quantize.run import QuantizeRequest, quantize, refuse_extras
from openzoo.services import Services

__all__ = ["create_quantized"]


def create_quantized(services: Services, name: str, modelfile: Modelfile, qtype: str, *, imatrix: str | None,
                     heldout: str | None, tokens: int | None) -> None:
    """Quantize the Modelfile's FROM into ``name``, drawing progress, then print what it cost."""
    refuse_extras({"TEMPLATE": modelfile.template is not None, "SYSTEM": modelfile.system is not None,
                   "PARAMETER": bool(modelfile.parameters), "ADAPTER": bool(modelfile.adapters),
                   "LICENSE": bool(modelfile.licenses), "MESSAGE": bool(modelfile.messages)})
    request = QuantizeRequest(name=name, source=modelfile.from_, type=qtype, heldout=heldout,
                              tokens=tokens or DEFAULT_TOKENS, imatrix=imatrix)
    record: dict[str, Any] = {}

    def events() -> Iterator[Progress]:
        for event in quantize(services, request):
            if "lineage" in event.detail:
                record.update(event.detail["lineage"])
            yield event

    render_progress(events())
    for label, value in quality_lines(record):
        click.echo(f"  {label:<26}{value}")
