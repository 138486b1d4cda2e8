//! PostgreSQL `EventStore` for eventlogs.
