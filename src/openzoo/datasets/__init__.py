"""Datasets as first-class commons objects: stored, described, certified and cited like models.

:mod:`~openzoo.facts.datafiles` parses and bounds data files, :mod:`~openzoo.facts.datasheet` holds the
datasheet (a Hugging Face dataset card answering Datasheets for Datasets) and
:mod:`~openzoo.datasets.service` keeps datasets as named manifests in the store. See docs/datasets.md.
"""
