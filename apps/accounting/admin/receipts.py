"""Admin pages: receipts."""
