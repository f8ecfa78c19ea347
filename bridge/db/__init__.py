"""The database: connecting, migrations, maintenance and status."""
