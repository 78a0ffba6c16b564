"""Use cases: what the API asks for, orchestrated over the domain and the persistence layer."""
