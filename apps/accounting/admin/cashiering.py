"""Admin pages: cashiering."""
