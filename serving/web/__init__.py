"""The search service: ``python -m pipeline serve`` (JSON API + page; docs/search_page.md)."""
