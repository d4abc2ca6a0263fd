"""Running plans: executors, the resident Session, events and progress, watch."""
