"""The gevent primitives the core uses (scheduling, noticing a client that left), so that the
layers above never reach gevent's internals or the sockets directly."""
