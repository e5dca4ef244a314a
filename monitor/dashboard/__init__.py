"""The investigators' web dashboard: static files served by the worker's web server."""
