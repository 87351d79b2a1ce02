#!/bin/sh
# Run GigaTwin's broker outside a container, with the shipped configuration (mosquitto.conf next to this script).
#
#   connectors/mosquitto/local.sh [--port PORT] [--data DIR] [--bind ADDRESS]
#
#   --port  the MQTT port (default 1883)
#   --data  where mosquitto keeps persistent sessions and queued messages; created if missing
#           (default ${XDG_STATE_HOME:-~/.local/state}/gigatwin/mosquitto)
#   --bind  the address to listen on (default 127.0.0.1: this machine only). Before binding another address,
#           set allow_anonymous false, a password_file and a TLS listener (see mosquitto.conf).
#
# The shipped file is written to DIR/mosquitto.conf with only its listener and persistence directory replaced (the
# integration tests start their brokers the same way), and mosquitto runs in the foreground as the user who started
# it, so that it can write DIR (started as root it would otherwise switch to user mosquitto). Stop it with Ctrl-C or
# SIGTERM: it saves its sessions on the way out.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
port=1883
data="${XDG_STATE_HOME:-$HOME/.local/state}/gigatwin/mosquitto"
bind=127.0.0.1
while [ $# -gt 0 ]; do
    case $1 in
        --port) port=${2:?--port needs a value}; shift 2 ;;
        --data) data=${2:?--data needs a value}; shift 2 ;;
        --bind) bind=${2:?--bind needs a value}; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "local.sh: unknown argument '$1' (expected --port, --data or --bind)" >&2; exit 2 ;;
    esac
done
case $port in
    ''|*[!0-9]*) echo "local.sh: --port must be a number from 1 to 65535, got '$port'" >&2; exit 2 ;;
esac
if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    echo "local.sh: --port must be a number from 1 to 65535, got '$port'" >&2
    exit 2
fi
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
if [ ! -x "$mosquitto" ]; then
    echo "local.sh: mosquitto is not installed (Debian/Ubuntu: apt-get install mosquitto)" >&2
    exit 2
fi

mkdir -p "$data"
data=$(cd "$data" && pwd)
conf="$data/mosquitto.conf"
awk -v listener="listener $port $bind" -v location="persistence_location $data/" -v user="user $(id -un)" '
    $1 == "listener" { print listener; next }
    $1 == "persistence_location" { print location; next }
    { print }
    END { print ""; print "# written by local.sh: run as the user who started it"; print user }
' "$here/mosquitto.conf" >"$conf"
echo "local.sh: mosquitto on $bind:$port, persistence in $data/ (configuration $conf)" >&2
exec "$mosquitto" -c "$conf"
