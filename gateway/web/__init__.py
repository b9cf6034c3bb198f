"""The web UI at /ui: server-rendered Japanese pages over the gateway's own services, sessions and policy."""

from gateway.web.app import create_web_app

__all__ = ["create_web_app"]
