"""Push to and pull from OCI Distribution v1.1 registries (``oci://HOST:PORT/REPO:TAG``).

A model's blobs become OCI blobs under an OCI image manifest that maps one-to-one onto openzoo's
(:mod:`.artifacts`); its card, seal and proof are artifacts referring to it (``subject``), found through
the referrers API or the tag-schema fallback. :mod:`.push` and :mod:`.pull` are the two flows,
:mod:`.client` the HTTP, :mod:`.uploads` the resumable chunked upload, :mod:`.reference` the reference
grammar. Verification is shared with the zoo-to-zoo pull (:mod:`openzoo.registry.trust`).
"""
