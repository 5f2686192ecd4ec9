"""Clients for wallet-as-a-service provider APIs (outbound calls made by the workers)."""
