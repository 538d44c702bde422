"""What every command module shares: the settings and the services of one ``openzoo`` command.

The command group (:mod:`openzoo.cli.main`) adds the commands of the other modules with
``cli.add_command``; those modules import this one, never the group, so there is no import circle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from openzoo import config as configuration

if TYPE_CHECKING:
    from openzoo.certify.service import Certification
    from openzoo.services import Services

__all__ = ["load_config", "local_certification", "local_services"]

_META_KEY = "openzoo.services"


def load_config() -> configuration.Config:
    return configuration.load()


def local_services() -> Services:
    """This command's services (one store, one scheduler), built on first use and shared by everything the
    command calls; outside a command, a new one."""
    from openzoo.services import Services

    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return Services(load_config())
    found: Services | None = ctx.meta.get(_META_KEY)
    if found is None:
        found = ctx.meta[_META_KEY] = Services(load_config())
    return found


def local_certification() -> Certification:
    """This command's certification (keys, log, policy, seals) of its store."""

    return local_services().certification
