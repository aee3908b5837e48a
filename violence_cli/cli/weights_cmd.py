"""`violence-detect weights`: registered on the shared app."""
