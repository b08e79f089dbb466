"""Background jobs on Celery (``celery_app``), thin wrappers around the services."""
