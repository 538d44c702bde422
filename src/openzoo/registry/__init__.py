"""Moving models between zoos and registries, and watching other zoos' logs: the read (and API-key-guarded
write) side of an OCI-style registry served by ``openzoo serve`` (:mod:`.server`), the client that pulls
from another zoo with resume and verifies seals against its pinned key, or pushes (:mod:`.client`), and
push/pull with OCI distribution registries (:mod:`.oci`). Both pulls share the resumable download
(:mod:`.transfer`), the seal verification (:mod:`.trust`) and the rules for storing or discarding what
arrived (:mod:`.landing`). The monitor (:mod:`.monitor`) watches other zoos' logs, gossips the heads it saw
and proves forks."""
