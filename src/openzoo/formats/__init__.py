"""Pure readers and writers for model formats; no I/O beyond the file a function is given.

- :mod:`.gguf`: bounded structural check of GGUF files and the facts ``show``/``tags`` report.
- :mod:`.templates`: :class:`~.templates.ChatTemplate` (Jinja, Ollama Go, built-ins per architecture).
- :mod:`.template_safety`: refuses templates that reach past rendering messages; the Jinja sandbox.
- :mod:`.gotemplate`: Ollama Go template subset translated to Jinja.
- :mod:`.modelfile`: Ollama Modelfile parser and writer.
- :mod:`.grammar`: GBNF for ``format: "json"`` and JSON schemas.
- :mod:`.tools`: tool calls parsed from generated text; tool instructions for templates without tools.

Nothing is re-exported here, so importing one module does not pull in the others' dependencies.
"""
