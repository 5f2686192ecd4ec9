"""Asynchronous risk checks on stored events: facts, velocity, findings and wallet freezes."""
