"""Wavy SMS (api-messaging.wavy.global)."""
