"""Teleprom WhatsApp (mayten.cloud)."""
