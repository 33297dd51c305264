"""The resolved Codespace model, its JSON Schema and diagnostics with file:line."""
