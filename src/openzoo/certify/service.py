"""Certification over the store: the one domain flow the CLI, the HTTP API and the registry client call.

It owns nothing the trust core (``certify/*``) already does and only adds storage. The class is
assembled from one module per concern, each building on the one before:
:mod:`~openzoo.certify.core` (keys, log, policy) → :mod:`~openzoo.certify.evidence` (card, license,
openness, scan) → :mod:`~openzoo.certify.requests` (requests, approvals, seals, revocations) →
:mod:`~openzoo.certify.verification` (offline checks).
"""

from __future__ import annotations

from openzoo.certify.verification import CertificationVerification

__all__ = ["Certification"]


class Certification(CertificationVerification):
    """Certification of the models in one store."""
