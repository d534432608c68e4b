"""The outside boundaries: the API client, the rate limiter, result downloads, network safety,
proxies, the run lock and signals."""
