"""CSV drops, shared by every drop-fed DAG: claim a folder's files, fingerprint, read, validate, record.

``folder`` claims files (owner + lease) and opens only regular files; ``csvfile`` reads them in chunks
with limits; ``registry`` keeps ``drop_files`` / ``drop_rejects``; ``process`` is the per-file loop
that makes a file all or nothing and never lets one bad file stop the next.
"""
