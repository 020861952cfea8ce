"""The HTTP API for machines: trigger a sweep, read the settings and gates in force.

Thin glue over the services the command and the admin use (services.sweep, runs);
no rule of the sweep lives here.
"""
