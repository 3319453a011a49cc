"""Local stand-ins for the vendors' hosts: real HTTP servers that follow ``vendor-apis.md``.

They are part of the product: ``make demo`` runs against them and the tests talk to them.
"""
