"""Exercise checks, one module per lab: the cases and the trusted reference of each exercise."""
