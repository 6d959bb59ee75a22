"""Feature families: each module holds the batch and the streaming twin of its kinds side by side."""
