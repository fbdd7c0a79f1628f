"""Admin pages: close."""
