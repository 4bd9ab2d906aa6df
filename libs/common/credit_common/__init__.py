"""Shared library of the credit list platform: contracts, identifiers, settings, clock, calendar,
database (pool, migrations, inbox, outbox), messaging (topics, consumer wrapper), telemetry and the
reference-data cache. Every service builds on it; nothing here knows a service's domain."""
