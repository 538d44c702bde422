"""``python -m openzoo``: the same as the ``openzoo`` command."""

from openzoo.cli.main import main

main()
