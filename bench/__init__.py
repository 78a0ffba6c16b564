"""`make bench`: the framework ceiling vs the seed's design vs our stack, driven by wrk."""
