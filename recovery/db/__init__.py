"""The database plumbing: unmanaged models, routing, transactions, errors, locks, schema, audit."""
