"""The update server: stores releases and serves the newest manifest and image per device type.

Nothing here is imported by the author tool, the formats, the crypto or the policy layers;
the server depends on them, never the reverse. Start with :func:`secure_fota.server.app.create_app`.
"""
