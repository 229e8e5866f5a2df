"""Use cases, one module per subcommand. Services take validated inputs, return result objects, never print."""
