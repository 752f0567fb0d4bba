"""One module per thing the deployer does: engine, build, cluster."""
