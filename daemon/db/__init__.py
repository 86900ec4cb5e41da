"""The database: one shared pool, named SQL, versioned migrations."""
