"""Integration kinds: one package per kind (adapter, settings, sandbox, contract).

The registry (`apps.vendors.registry`) lists them; `base.py` is the contract every kind's
adapter fulfils; `docs/writing-an-integration.md` walks through adding one.
"""
