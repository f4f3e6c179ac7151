"""Puts rnnexp's packaged study configs on rnnexp-train's config search path."""
