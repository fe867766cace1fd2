"""``python -m policy_server``."""

from policy_server.cli import main

main()
