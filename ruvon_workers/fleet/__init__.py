"""The Celery fleet: every step a task, a coordinator that keeps PostgreSQL the truth."""
