"""HAProxy sync: Marathon apps -> routing model -> haproxy.cfg and Runtime API commands.

Pure half (no network I/O, safe to import anywhere):
  marathon_json  decode_apps(bytes) -> the app documents the model reads (msgspec structs)
  labels         parse_labels(labels) -> AppLabels, LabelError, Rejected, Ignored
  settings       LbSettings(.from_mapping), settings_from_environment(env, config_path=, groups=)
  appstate       one app document -> AppState (routes, routable tasks)
  claims         who keeps a contested port or host+path
  model          build_model(apps, settings, prev=, last_known_health=, resolve=) -> RoutingModel,
                 apply_app(model, app) / remove_app(model, app_id) -> (RoutingModel, changed backend names)
  render         Renderer(template_dir).render(model) -> haproxy.cfg text; renderer_for(env, template_dir)
  changes        diff(old, new, only=changed) -> Changes(reload_needed, reasons, server_ops[ServerOp.command()])
The I/O half (haproxy, source, daemon, run, metrics) drives these from Marathon's event stream.
Nothing is imported here so `deploykit.lb.labels` stays cheap to import.
"""
