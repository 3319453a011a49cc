"""Campaigns: one dropped file or one upload, and what people decide about it (confirm, cancel, release).

Engines only: nothing here names a vendor or reads the registry; the page's app and the DAG tasks hand
in the send adapter they mean (``vendors.adapter(name)``)."""
