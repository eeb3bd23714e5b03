"""The Jinja2 templates of service images (``<runtime>.Dockerfile.j2``), shipped as package data so that
``baton image build`` works from an installed wheel (see ``baton.images.service.TEMPLATES``)."""
