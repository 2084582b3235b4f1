"""Access records (접속기록): who accessed what, when, from where, and how.

``chain`` keeps them hash-chained (audit.py's canonical JSON and hashing), verifies them,
checkpoints the head into the anchored audit trail and applies retention; ``sources``
turns audit events and hub logins into records; ``minio`` turns MinIO's own audit log
(its audit webhook) into object-read records; ``report`` is the monthly review.
"""
