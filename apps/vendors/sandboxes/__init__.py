"""The plumbing every vendor sandbox shares. Each kind's own sandbox lives in its package
(`apps/vendors/kinds/<kind>/sandbox.py`) and is found through the registry
(`apps.vendors.registry.load_sandbox`).

A sandbox is a real HTTP server on loopback that speaks one vendor's contract, so adapters
and tests exercise real sockets, real serialisation and real failures. Here is everything
that is not vendor-specific, one job per module (each imports only those above it):

* `values` - money as two-decimal `Decimal` strings, times as ISO UTC, JSON of both.
* `fields` - reading the fields of a control-API request; `ControlError`.
* `state` - `SandboxState`, the vendor's records in their own SQLite file (never FeeSync's
  database), and the records vendor protocols read and write.
* `faults` - the fault modes and options, and `FaultConfig`.
* `messages` - `Request` and `Response` as the protocols and the control API see them.
* `control` - `ControlAPI`, the JSON control API under `/_sandbox/` (DESIGN.md, "Vendor
  contracts and sandboxes").
* `server` - `SandboxServer` (control API under `/_sandbox/`, the kind's `VendorProtocol`
  elsewhere, faults applied) and running a sandbox as a process.
* `client` - `SandboxControl`, the client of the control API for tests, benchmarks and
  demos (the only module that needs `requests`).

Nothing here imports Django: sandboxes also run standalone under `manage.py sandbox`.
"""
