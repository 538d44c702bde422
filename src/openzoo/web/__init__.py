"""The web catalog served by ``openzoo serve`` at ``/ui/`` (see :mod:`openzoo.web.routes`)."""
