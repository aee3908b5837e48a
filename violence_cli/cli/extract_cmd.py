"""`violence-detect extract`: registered on the shared app."""
