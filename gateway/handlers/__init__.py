"""One module per provider: parse, check, hand off, answer in the provider's protocol."""
