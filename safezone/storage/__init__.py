"""MinIO: bucket layout, identity policies and the broker that administers them."""
