"""JSON schemas shipped with deploykit (data only; see deploykit.render.schema)."""
