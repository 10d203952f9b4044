"""Integration tests run against devstack processes: real redis-server, moto's HTTP server.

``devstack`` is the session's stack on template.yaml; ``lifecycle_devstack`` the session's stack
with short run leases, for the tests that kill workers; ``devstack_factory`` starts stacks with
their own environment, template or options. See tests/devstack_fixtures.py.
"""

from tests.devstack_fixtures import devstack, devstack_factory, lifecycle_devstack

__all__ = ["devstack", "devstack_factory", "lifecycle_devstack"]
