"""Reusable ``@deploy`` steps of the window: named groups of ``deploy.ops`` operations."""
