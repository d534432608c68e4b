"""What a person sees: the live display and logs, results.jsonl/csv, the gallery."""
