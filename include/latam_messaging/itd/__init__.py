"""ITD Chile WhatsApp (ida.itdchile.cl)."""
