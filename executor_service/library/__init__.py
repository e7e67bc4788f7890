"""The executor's side of the library: the port it calls (over the shared typed client),
the content cache that pins each script by digest, and the recorder that delivers the
journal's outbox."""
