"""Zoo-to-zoo transfer: the read (and API-key-guarded write) side of an OCI-style registry served by
``openzoo serve`` (:mod:`.server`), and the client that pulls with resume and verifies seals against a
peer zoo's pinned key, or pushes (:mod:`.client`); and the monitor that watches other zoos' logs, gossips
the heads it saw and proves forks (:mod:`.monitor`)."""
