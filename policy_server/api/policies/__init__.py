"""Policy management: write, validate, test, version, roll back; evaluate input documents."""
