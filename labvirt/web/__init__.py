"""`labvirt class serve`: the web app (Starlette, Jinja2 templates, Server-Sent Events) over ops.dashboard."""
