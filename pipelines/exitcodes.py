"""Exit codes of `xero-elt`, as CONVENTIONS.md fixes them (75 is sysexits' EX_TEMPFAIL)."""

OK = 0
FAILURE = 1
USAGE = 2
PARTIAL = 3
LOCKED = 75
