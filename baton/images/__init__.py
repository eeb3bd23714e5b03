"""Container images: the prebuilt adapter image (online or offline) and, later, service images."""
