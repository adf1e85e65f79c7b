"""The pure core: step execution, routing and state merging. No Celery, no psycopg."""
