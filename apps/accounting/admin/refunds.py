"""Admin pages: refunds."""
