"""The benchmark: the fleet measured side by side with a raw Celery chain."""
