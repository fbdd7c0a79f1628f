"""File exchange: fees out as files, payments back as files (contract.md beside this)."""

from .adapter import FileExchangeAdapter as Adapter

__all__ = ["Adapter"]
