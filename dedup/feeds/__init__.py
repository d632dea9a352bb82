"""The feed side: feeds.yaml, polite fetching, parsing from bytes, and the polling daemon."""
