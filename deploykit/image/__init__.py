"""Image build + push (issue 7): backends (buildah, docker), git-derived tags, digest pinning.

Public API: `deploykit.image.app.plan_for_app` (app.yaml -> BuildPlan + RegistrySettings),
`deploykit.image.pipeline.plan_build / build_image / push_image`, `deploykit.image.select.make_backend`.
"""
