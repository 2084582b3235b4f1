"""Project end, retention and destruction (파기) with a certificate of destruction.

* ``policy``: ``policies/retention.yaml`` loaded, with its SHA-256 for the certificate;
* ``objects``: every object version and delete marker under a prefix, their object locks,
  and deleting them in batches (MinIO, as root);
* ``certificate``: the certificate's document, its hash and its locked copy in ``audit``;
* ``service``: end dates, the sweeper's steps (end projects, destroy what is due) and the
  resumable destruction itself;
* ``reports``: what administrators read (certificates, the state of a destruction).
"""
