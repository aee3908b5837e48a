"""`violence-detect detect`: registered on the shared app."""
