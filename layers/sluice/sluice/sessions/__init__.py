"""Durable chat sessions, server side: the session record and its table (``records``, ``table``),
create / get / list / close (``service``), the run a session claims (``runs``), and the realtime
routes of its two channels (``realtime``). The channels' wire format is ``sluice_wire.chat``; the
agent that writes them is the client's ``sluice_client.chat``."""
