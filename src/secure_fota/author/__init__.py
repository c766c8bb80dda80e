"""The firmware author's side: key generation, release building, publishing, local service."""
