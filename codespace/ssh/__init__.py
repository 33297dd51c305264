"""SSH into codespaces through the hub: the sshd, the hub's keys, and the client."""
