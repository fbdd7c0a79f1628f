"""The plumbing every vendor sandbox shares: state, HTTP server with faults, control API and
its client. Each kind's own sandbox lives in its package (`apps/vendors/kinds/<kind>/
sandbox.py`) and is found through the registry (`apps.vendors.registry.load_sandbox`).
Nothing here imports Django: sandboxes also run standalone.
"""
