"""`violence-detect eval`: registered on the shared app."""
