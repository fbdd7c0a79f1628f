"""Admin pages: awards."""
