"""Where result files land. Today: the local disk (local.py). An object-store sink is to be
one new module beside it (issue 15 step 6)."""
