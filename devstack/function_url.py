"""What devstack's web apps serve (``DEVSTACK_ASGI_APP``): the function's own ASGI app (``app:app``
in its folder, where the start script runs) behind its Function URL's CORS, as Lambda serves it."""

import importlib

from devstack.cors import web_app

app = web_app(importlib.import_module("app").app)
