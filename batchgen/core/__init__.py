"""Pure decisions: backoff and poll timing, and what each error means for its job."""
