"""The provider edge: the HTTP client (retries live here), record validation, and the simulator."""
