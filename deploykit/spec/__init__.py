"""app.yaml: model, loading with environment overlays, validation (every problem at once).

Public API:
- `load_app(path, env_name, environment=None) -> AppSpec`
- `resolve_secrets(spec, environ) -> dict[str, str]`
- `AppSpec` and its parts in deploykit.spec.models
Pure: reads app.yaml and the files it names, never the network.
"""

from deploykit.spec.loader import load_app, merge_overlay, overlay_names, resolve_secrets
from deploykit.spec.models import AppSpec

__all__ = ["AppSpec", "load_app", "merge_overlay", "overlay_names", "resolve_secrets"]
