"""The Messaging page of the Airflow UI, read-only: ``queries`` reads the warehouse, ``app`` serves it
(the authenticated FastAPI app that ``plugins/messaging_plugin.py`` mounts on the API server) and
renders ``templates/``.

Importing the package imports neither: vendor folders may name what their page panels return
(``latam_messaging.page.panels``) without pulling in FastAPI.
"""
