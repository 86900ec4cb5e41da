"""The customers API: auth, roles, pagination, caching, problem+json, audit, OpenAPI (see app.py)."""
