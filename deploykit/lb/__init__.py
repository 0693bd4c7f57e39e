"""HAProxy sync: Marathon apps -> routing model -> haproxy.cfg and Runtime API commands.

Pure half (no network I/O, safe to import anywhere):
  labels   parse_labels(labels) -> AppLabels, LabelError, Rejected, Ignored
  model    LbSettings(.from_mapping), build_model(apps, settings, prev=, last_known_health=, resolve=) -> RoutingModel,
           apply_app(model, app) / remove_app(model, app_id) -> (RoutingModel, changed backend names)
  render   Renderer(template_dir).render(model) -> haproxy.cfg text; render_apps_file (for `lb render`)
  changes  diff(old, new, only=changed) -> Changes(reload_needed, reasons, server_ops[ServerOp.command()])
The I/O half (haproxy, source, daemon) drives these from Marathon's event stream.
Nothing is imported here so `deploykit.lb.labels` stays cheap to import.
"""
