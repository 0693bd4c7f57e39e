"""Pure renderers: AppSpec -> Marathon app JSON (marathon.py), app config -> Consul KV tree (config.py)."""
