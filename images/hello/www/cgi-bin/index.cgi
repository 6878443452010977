#!/bin/sh
# Answers every request for / with the container's hostname (the pod's name, later) and
# the request as the server saw it, so load balancing can be watched from a client.
printf 'Content-Type: text/plain\r\n\r\n'
printf 'hello from %s\n' "$(hostname)"
printf 'request: %s %s from %s:%s\n' "$REQUEST_METHOD" "$REQUEST_URI" "$REMOTE_ADDR" "$REMOTE_PORT"
