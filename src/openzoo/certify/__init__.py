"""Certification trust core: pure functions and small classes over bytes, paths, keys and SQLite.

Nothing here touches the model store, the network or the CLI; those layers call in. Modules:

* :mod:`.canonical` – the one canonical JSON encoding and digest helpers every signature is made over.
* :mod:`.merkle` – RFC 9162 Merkle tree hashing, inclusion and consistency proofs.
* :mod:`.checkpoint` – signed tree heads in the C2SP signed-note checkpoint format.
* :mod:`.log` – the append-only SQLite transparency log.
* :mod:`.gossip` – other zoos' signed heads, fork evidence and its offline verification;
  :mod:`.gossip_store` keeps what this zoo saw of other logs (the monitor itself, which fetches, is
  :mod:`openzoo.registry.monitor`).
* :mod:`.keys` – ECDSA P-256 keys and the keyring.
* :mod:`.dsse` – DSSE envelopes and in-toto Statements.
* :mod:`.policy` – reviewer policy, TUF-style rotation, approvals and quorum.
* :mod:`.seal` – the zoo's signed seal and its offline verification.
* :mod:`.modelsig` – OpenSSF model-signing bundles (key mode), written and verified offline.
* :mod:`.licenses`, :mod:`.openness` – license facts and MOF 1.0 grading.
* :mod:`.scan` – file safety scan (pickle, PyTorch zip, safetensors, GGUF).
* :mod:`.card` – Hugging Face-compatible model cards.
"""
