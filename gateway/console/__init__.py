"""The operator console: server-rendered pages over Postgres, run by `callgate console` on its own port."""
