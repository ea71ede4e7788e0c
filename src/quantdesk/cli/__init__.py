"""The `quantdesk` command line."""
