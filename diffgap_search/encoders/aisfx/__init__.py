"""aisfx: the sound-effects embedding network that ships inside its package (audio only)."""
