"""One router per resource; each route parses, calls `tasks/`, and shapes the answer."""
