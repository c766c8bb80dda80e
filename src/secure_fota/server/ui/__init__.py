"""The dashboard at ``/ui/``: server-rendered pages (Jinja2) made live with htmx, charts with
Chart.js; both libraries are vendored in ``static/`` (no CDN), served by the update server
itself with its own TLS, users and roles. See docs/api.md ("Dashboard") and
docs/SECURITY.md for the session, CSRF and Content-Security-Policy rules."""
