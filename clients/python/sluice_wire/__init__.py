"""The wire format that the server and the client both speak, in one home that both import.

- ``chat``: what travels on a session's ``in`` and ``out`` channels and what its snapshot holds.
- ``sessions``: a session as the API answers it.

It lives in the client distribution (``clients/python``) and needs pydantic alone; the Lambda
layer ships the same files through ``layers/sluice/sluice_wire``, a link to this folder, because
``sam build`` copies the layer's folder but cannot install a package from a path in the repository.
"""
