"""One module per ``plqa`` verb; each has ``register(subparsers)`` that sets ``func``."""
