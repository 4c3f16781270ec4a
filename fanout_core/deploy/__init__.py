"""What deploying needs and no Lambda runs: the IAM each handler needs, and the packager."""
