"""`bridge doctor`: checks a running deployment and says what to do.

Each check is a small function returning Findings (bridge.doctor.finding):
what was seen, how bad (ok, warn, problem, skipped, error) and, unless ok,
what to do. A check that cannot run (a service down, a view missing) yields
an error or skipped finding naming why; it never stops the other checks.
The doctor only reads: it changes nothing anywhere.
"""
