"""``sluice admin``: operating a stack from the inside, with AWS credentials (``sluice.admin.cli``,
loaded by the client command line's plugin ``admin`` only when invoked). The domain is
``sluice.auth.admin``."""
