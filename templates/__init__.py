"""symce's Jinja templates (templates/<language>/*.jinja), shipped inside the package as
``symce.templates``: pyproject.toml maps this folder to that name, so a wheel carries it and an
editable install reads it here.  symce.generate.templates_dir() finds it."""
