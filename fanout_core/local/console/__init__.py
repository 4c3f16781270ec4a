"""The browser console of ``fanout serve``: a live view of the local API and test clients.

``feed`` collects what happens, ``observe`` wraps the handlers, the worker and the
Management API to report it, ``site`` serves the page (``static/``) and its event socket.
Nothing below the local server imports any of it.
"""
