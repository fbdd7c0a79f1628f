"""The business office's admin pages, one module per area (see apps.accounting.services)."""

from . import awards, cashiering, close, receipts, refunds  # noqa: F401  (registers the pages)
