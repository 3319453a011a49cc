"""The page's Jinja environment (``templates/``): autoescaped, strict about undefined names. One for every
page of the app (the Messaging page, the campaign pages)."""

from __future__ import annotations

import jinja2

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("latam_messaging.page", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
