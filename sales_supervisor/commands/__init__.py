"""Command-line sub-apps, one module per area, registered at the end of sales_supervisor/cli.py."""
