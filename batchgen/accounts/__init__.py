"""Accounts: several runs (and machines) share one APIXO account's limits through an account
database; see identity (who), db (the protocol), sqlite (one machine), admission (decisions)."""
