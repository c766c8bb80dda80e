"""HTTP routes: the seed's endpoints, the versioned API and the operations endpoints."""
