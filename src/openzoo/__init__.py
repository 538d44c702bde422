"""openzoo: curate, certify and run open AI models locally."""

__version__ = "0.1.0"
