"""Facts about bytes, files and documents that several packages need: canonical JSON and digests, license
facts, model cards and datasheets, data files and a dataset's config.

Pure functions and small value types over the store's manifests at most. It sits below
:mod:`openzoo.certify`, :mod:`openzoo.datasets` and :mod:`openzoo.registry`, so those never import each
other for a shared basic (the layers are in pyproject.toml's import-linter contracts).
"""
