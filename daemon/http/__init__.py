"""HTTP plumbing shared by the API and the syncer's probe port: the server actor and ops routes."""
