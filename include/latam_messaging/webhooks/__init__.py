"""Vendor webhooks: a receiver that stores every authenticated body raw, and their parsers."""
