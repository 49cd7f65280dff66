"""Connections to what the service shares with its other workers and instances: Redis (one
server, a Sentinel-watched primary, or a Cluster), used by the Redis stream store and by the
client keys' limits counted in Redis."""
