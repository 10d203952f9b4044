"""Imported by the function workers' forkserver only (devstack.runtime.PRELOADED): botocore's
models are parsed once, before the server forks a worker for each cold start."""

from devstack.botocore_models import preload

preload()
