"""`violence-detect train`: registered on the shared app."""
