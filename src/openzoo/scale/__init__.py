"""Scale-out: ``openzoo serve --replicas N`` runs inference on a Ray Serve deployment of N replicas.

The ``openzoo serve`` process keeps the one FastAPI app (Ollama, OpenAI and zoo routes, security,
store and catalog); ``services.inference`` becomes a :class:`~openzoo.scale.remote.ReplicatedInference`
that streams each generation from a replica through a Serve ``DeploymentHandle``. Each replica
(``replica.py``) builds openzoo's own ``Services`` from the same ``OPENZOO_HOME``. ``board.py`` is the
small actor through which replicas report their state and receive broadcasts (load, unload, cold
cache). Only ``spec.py`` may be imported without Ray; plain ``openzoo serve`` never imports the rest.
See ``docs/scale-out.md``.
"""
