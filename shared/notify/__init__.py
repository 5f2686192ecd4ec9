"""Downstream notifications: signing, retry policy, normalized payloads, subscribers and the outbox."""
