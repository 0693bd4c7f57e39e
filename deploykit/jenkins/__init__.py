"""Jenkins integration: render a declarative Jenkinsfile per app and keep pipeline jobs in sync.

Modules:
- appinfo: the few facts a pipeline needs from app.yaml and the environment files
  (app id, which secret variables each stage must have bound).
- pipeline: pure model + Jinja2 rendering of templates/Jenkinsfile.j2.
- groovy: a small parser for the declarative-pipeline subset we emit, used to check
  rendered (possibly user-overridden) templates before they are written.
- jobxml: config.xml rendering, normalisation and diff.
- sync: plan and apply job changes through an injected Jenkins client.
- templating: the Jinja2 environment (user templates first, shipped ones as `deploykit/...`).
- service: what the CLI commands call (validate + render everything first, then sync).

Nothing here does network I/O except through the client passed to `sync`.
"""
