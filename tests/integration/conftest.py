"""Integration tests run against devstack processes: real redis-server, moto's HTTP server.

``devstack`` is the session's stack on template.yaml; ``devstack_factory`` starts stacks with
their own environment, template or options. See tests/devstack_fixtures.py.
"""

from tests.devstack_fixtures import devstack, devstack_factory

__all__ = ["devstack", "devstack_factory"]
